"""Progress of ``oculi evaluate`` and ``oculi export`` on a terminal (a pseudo-terminal here) and in a pipe: a bar
or a spinner only on a terminal, nothing extra in a pipe, nothing with ``--no-progress``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.jobs.test_progress import ANSI, BAR, _run_in_pty


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "OCULI_HOME": str(home), "TERM": "xterm-256color", "COLUMNS": "160",
            "PYTHONPATH": os.pathsep.join(sys.path)}


def _oculi(*args: str) -> list[str]:
    return [sys.executable, "-c", "from oculi.cli import main; main()", *args]


def test_evaluate_draws_a_bar_on_a_terminal_only(classifier, tiny_split, oculi_home, tmp_path):
    env = _env(oculi_home)
    images = tmp_path / "many"  # enough images that the bar is drawn more than once
    for n in range(8):
        shutil.copytree(tiny_split["validation"], images / f"copy{n}", dirs_exist_ok=True)
    flat = tmp_path / "flat"
    for cls in ("circle", "square", "stripes"):
        (flat / cls).mkdir(parents=True)
        for n, path in enumerate(sorted(images.glob(f"copy*/{cls}/*.png"))):
            shutil.copy(path, flat / cls / f"{n:03d}.png")
    total = len(list(flat.rglob("*.png")))
    bar = re.compile(rf"evaluating {BAR}*.*?\b\d+/{total}\b")  # the bar's line: label, bar, images done/total
    rc, out = _run_in_pty(_oculi("evaluate", str(classifier), str(flat)), env)
    assert rc == 0, out[-2000:]
    assert bar.search(ANSI.sub("", out)) and "accuracy" in ANSI.sub("", out)
    rc, quiet = _run_in_pty(_oculi("evaluate", str(classifier), str(flat), "--no-progress"), env)
    assert rc == 0 and not bar.search(ANSI.sub("", quiet)) and "accuracy" in ANSI.sub("", quiet)
    piped = subprocess.run(_oculi("evaluate", str(classifier), str(flat)), capture_output=True, text=True, env=env,
                           timeout=600)
    assert piped.returncode == 0 and not bar.search(piped.stdout + piped.stderr)


def test_export_shows_a_spinner_on_a_terminal_and_nothing_in_a_pipe(classifier, oculi_home, tmp_path):
    env = _env(oculi_home)
    first, second = tmp_path / "a", tmp_path / "b"
    shutil.copytree(classifier, first)
    shutil.copytree(classifier, second)
    rc, out = _run_in_pty(_oculi("export", str(first), "--format", "onnx"), env)
    assert rc == 0, out[-2000:]
    assert "exporting" in ANSI.sub("", out) and (first / "model.onnx").exists()
    piped = subprocess.run(_oculi("export", str(second), "--format", "onnx"), capture_output=True, text=True,
                           env=env, timeout=600)
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert "exporting" not in piped.stdout + piped.stderr and "\x1b[" not in piped.stdout + piped.stderr
    assert "parity: passed" in piped.stdout


def test_convert_shows_a_spinner_on_a_terminal_and_nothing_in_a_pipe(oculi_home, tmp_path):
    from oculi.data.synthetic import write_detection_data

    env = _env(oculi_home)
    source = write_detection_data(tmp_path / "coco", count=4)["train"]
    rc, out = _run_in_pty(_oculi("data", "convert", str(source), "--to", "manifest", str(tmp_path / "a")), env)
    assert rc == 0, out[-2000:]
    assert "converting" in ANSI.sub("", out) and any((tmp_path / "a").iterdir())
    piped = subprocess.run(_oculi("data", "convert", str(source), "--to", "manifest", str(tmp_path / "b")),
                           capture_output=True, text=True, env=env, timeout=600)
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert "converting" not in piped.stdout + piped.stderr and any((tmp_path / "b").iterdir())
