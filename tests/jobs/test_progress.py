"""``oculi train`` shows its progress: a step bar on a terminal (a pseudo-terminal here), one line per epoch in a
pipe, and neither bar nor step counts with ``--no-progress``. The real entry point runs in a subprocess."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from oculi.jobs.progress import ProgressRecorder, progress_path, read_progress
from tests.helpers import TINY

EPOCHS = 2
BAR = "━"  # rich's bar glyph
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _command(data: dict[str, Path], *extra: str) -> list[str]:
    params = {**TINY, "epochs": str(EPOCHS), "mini_batch_size": "2"}  # 24 steps an epoch: time to draw the bar
    args = [sys.executable, "-c", "from oculi.cli import main; main()", "train", "image-classification",
            "--train", str(data["train"]), "--validation", str(data["validation"]), *extra]
    for k, v in params.items():
        args += ["-p", f"{k}={v}"]
    return args


def _env(oculi_home: Path) -> dict[str, str]:
    return {**os.environ, "OCULI_HOME": str(oculi_home), "TERM": "xterm-256color", "COLUMNS": "160",
            "PYTHONPATH": os.pathsep.join(sys.path)}


def _run_in_pty(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run ``args`` with stdin/stdout/stderr on a pseudo-terminal; returns (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child has closed its side
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    rc = proc.wait(timeout=600)
    reader.join(timeout=30)
    os.close(master)
    return rc, b"".join(chunks).decode(errors="replace")


def _step_counts(text: str) -> list[int]:
    """The completed-step counts the bar showed ("17/72 steps"), in order."""
    total = EPOCHS * 24
    return [int(n) for n in re.findall(rf"(\d+)/{total} steps", ANSI.sub("", text))]


def test_terminal_shows_an_advancing_step_bar(job_data, oculi_home):
    rc, out = _run_in_pty(_command(job_data), _env(oculi_home))
    assert rc == 0, out[-3000:]
    counts = _step_counts(out)
    assert BAR in out and f"epoch 1/{EPOCHS}" in ANSI.sub("", out)
    assert len(set(counts)) >= 2 and max(counts) > min(counts), counts  # it advanced while training ran
    assert all(0 <= c <= EPOCHS * 24 for c in counts)
    assert "done" in out and "Traceback" not in out


def test_a_pipe_gets_plain_epoch_lines_and_no_bar(job_data, oculi_home):
    result = subprocess.run(_command(job_data), capture_output=True, text=True, env=_env(oculi_home), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout + result.stderr
    lines = [line for line in out.splitlines() if re.match(rf"epoch \d/{EPOCHS} ", line)]
    assert [line.split()[1] for line in lines] == [f"{e}/{EPOCHS}" for e in range(1, EPOCHS + 1)]
    assert BAR not in out and "\x1b[" not in out and not _step_counts(out)


def test_no_progress_on_a_terminal_draws_no_bar(job_data, oculi_home):
    rc, out = _run_in_pty(_command(job_data, "--no-progress"), _env(oculi_home))
    assert rc == 0, out[-3000:]
    assert BAR not in out and not _step_counts(out)
    plain = ANSI.sub("", out)
    assert all(f"epoch {e}/{EPOCHS} " in plain for e in range(1, EPOCHS + 1))  # the per-epoch lines remain


def test_progress_file_keeps_the_last_record_and_skips_an_earlier_attempt(tmp_path):
    path = progress_path(tmp_path)
    record = ProgressRecorder(path, every=3600)
    record(epoch=1, epochs=2, step=1, steps=10, phase="train", batch=1, batches=5)
    record(epoch=1, epochs=2, step=2, steps=10, phase="train", batch=2, batches=5)  # within `every`: not written
    assert read_progress(path)["step"] == 1
    record(force=True, epoch=1, epochs=2, step=5, steps=10, phase="train", batch=5, batches=5)
    last = read_progress(path)
    assert last["step"] == 5 and last["epochs"] == 2
    assert read_progress(path, since=last["time"] + 1) is None  # a resumed job ignores the old attempt's record
    path.write_text('{"step": ')  # never seen half-written in practice; a reader must not fail on it
    assert read_progress(path) is None


def test_waiting_on_a_detached_job_draws_its_workers_steps(job_data, oculi_home):
    env = _env(oculi_home)
    started = subprocess.run(_command(job_data, "--detach", "--name", "bar-1"), capture_output=True, text=True,
                             env=env, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    rc, out = _run_in_pty([sys.executable, "-c", "from oculi.cli import main; main()", "jobs", "wait", "bar-1"], env)
    assert rc == 0, out[-3000:]
    counts = _step_counts(out)
    assert BAR in out and len(set(counts)) >= 2, counts  # the worker (another process) wrote them, this one drew them
    assert "Completed" in out
