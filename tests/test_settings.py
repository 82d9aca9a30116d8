"""Every OCULI_* variable through one typed settings object: read when asked (a test's setenv counts at once),
bad values are ConfigErrors naming the variable, and the README's table lists every variable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from oculi.errors import ConfigError
from oculi.jobs.runner import job_dir, max_parallel
from oculi.jobs.store import default_url
from oculi.settings import Settings, oculi_home, settings, variable

README = Path(__file__).resolve().parents[1] / "README.md"


def test_settings_follow_the_environment_of_the_moment(monkeypatch, tmp_path):
    monkeypatch.setenv("OCULI_HOME", str(tmp_path / "a"))
    assert oculi_home() == tmp_path / "a" and job_dir("j") == tmp_path / "a" / "jobs" / "j"
    assert default_url() == f"sqlite:///{tmp_path / 'a' / 'oculi.db'}"
    monkeypatch.setenv("OCULI_HOME", "~/elsewhere")
    assert oculi_home() == Path("~/elsewhere").expanduser()
    monkeypatch.setenv("OCULI_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "3")
    monkeypatch.setenv("OCULI_ALLOWED_HOSTS", " oculi.lan, .Corp.Example ,")
    monkeypatch.setenv("OCULI_TOKEN", "")  # empty counts as unset
    now = settings()
    assert (default_url(), max_parallel(), now.allowed_hosts, now.token) == (
        "postgresql+psycopg://u@h/db", 3, ("oculi.lan", ".corp.example"), None)
    monkeypatch.delenv("OCULI_MAX_PARALLEL_JOBS")
    assert max_parallel() == 1


@pytest.mark.parametrize(("name", "value", "fragment"), [
    ("OCULI_MAX_PARALLEL_JOBS", "abc", "valid integer"),
    ("OCULI_MAX_PARALLEL_JOBS", "0", "greater than or equal to 1"),
    ("OCULI_DEBUG", "maybe", "valid boolean"),
])
def test_a_bad_value_names_the_variable_and_the_fix(monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        settings()
    message = str(raised.value)
    assert f"{name} is {value!r}" in message and fragment in message and f"Set it like {name}=" in message


def test_the_cli_reports_a_bad_variable_without_a_traceback(monkeypatch):
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "abc")
    result = subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", "jobs", "list"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "OCULI_MAX_PARALLEL_JOBS is 'abc'" in result.stderr and "Traceback" not in result.stderr


def test_the_readme_table_lists_every_variable_and_nothing_reads_the_environment_elsewhere():
    table = README.read_text()
    for field in Settings.model_fields:
        assert re.search(rf"^\| `{variable(field)}` \|", table, re.M), f"README's table lacks {variable(field)}"
    src = Path(__file__).resolve().parents[1] / "src" / "oculi"
    readers = [f"{p.relative_to(src)}:{i}" for p in src.rglob("*.py") if p.name != "settings.py"
               for i, line in enumerate(p.read_text().splitlines(), 1)
               if re.search(r"environ\.get\([\"']OCULI_|environ\[[\"']OCULI_\w+[\"']\](?!\s*=)|getenv\([\"']OCULI_",
                            line)]
    assert readers == [], f"OCULI_* read outside oculi.settings: {readers}"
