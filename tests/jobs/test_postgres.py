"""The job store on a real PostgreSQL server: a throw-away instance made with initdb/pg_ctl in a temp folder on a
loopback port (skipped, with the reason, where the PostgreSQL binaries are absent). As root — CI — the server
runs as the `postgres` (or `nobody`) user, since initdb refuses to run as root."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from oculi.jobs import runner
from oculi.jobs import status as S
from oculi.jobs.store import JobStore
from tests.helpers import free_port
from tests.jobs.conftest import spec


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return candidates[-1] if candidates else None



@pytest.fixture(scope="module")
def postgres_url():
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are absent; `apt-get install postgresql` provides them")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="oculi-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as an unprivileged user
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        runuser = shutil.which("runuser")
        if user is None or runuser is None:
            pytest.skip("running as root without a `postgres`/`nobody` user and runuser to start PostgreSQL as")
        prefix = [runuser, "-u", user, "--"]
        entry = pwd.getpwnam(user)
        os.chmod(root, 0o755)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, port = root / "data", free_port()
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-U", "oculi", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {e.stderr.decode(errors='replace')}")
    try:
        yield f"postgresql+psycopg://oculi@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def test_store_on_postgresql(postgres_url, monkeypatch):
    monkeypatch.setenv("OCULI_DATABASE_URL", postgres_url)
    store = JobStore()
    assert store.engine.dialect.name == "postgresql"
    record = {"name": "pg-1", "algorithm": "image-classification", "spec": {"channels": {"train": "/x"}},
              "job_dir": "/tmp/pg-1", "model_dir": "/tmp/pg-1/model", "log_path": "/tmp/pg-1/log"}
    store.create(record)
    for new in ("Starting", "Training", "Uploading", "Completed", "Pending"):
        store.transition("pg-1", new, expect=None)
    with pytest.raises(S.IllegalTransition):
        store.transition("pg-1", "Completed")
    store.add_metrics("pg-1", {"validation:accuracy": 0.5}, epoch=1, step=3)
    assert store.metrics("pg-1")[0]["value"] == 0.5
    assert [t["secondary_status"] for t in store.transitions("pg-1")] == [
        "Pending", "Starting", "Training", "Uploading", "Completed", "Pending"]
    store.dispose()


def test_a_detached_job_runs_against_postgresql(postgres_url, mini_data, monkeypatch):
    monkeypatch.setenv("OCULI_DATABASE_URL", postgres_url)  # the worker inherits it
    store = JobStore()
    job = runner.submit(spec(mini_data), store)
    runner.dispatch(store)
    done = runner.wait(job["name"], store, timeout=120)
    assert done["secondary_status"] == "Completed", done["failure_reason"]
    assert store.metrics(job["name"]) and (Path(done["model_dir"]) / "model.json").exists()
    store.dispose()
