"""Step progress of a running training job, for a foreground command to draw.

The training process that reports (rank 0 of a distributed run, the only one otherwise) writes
``<job folder>/progress.json`` at most every :data:`WRITE_SECONDS` — epoch, optimizer step out of the run's total,
the batch within the epoch, and whether it is training or validating. The file is replaced atomically, so a reader
never sees half of it. A foreground command (``oculi train`` attached, ``oculi jobs wait``, ``oculi jobs resume``)
reads it with :func:`follow_progress` and draws a rich bar when its output is a terminal; in a log or a pipe
nothing is drawn and the per-epoch lines say it all. The store is not written per step: a file costs no database
lock."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PROGRESS_FILE = "progress.json"
WRITE_SECONDS = 0.25  # at most this often a record is written (and an epoch's end always)
POLL_SECONDS = 0.2  # how often the foreground reads it


def progress_path(job_dir: Path | str) -> Path:
    """The job's step-progress file, ``<job folder>/progress.json``."""
    return Path(job_dir) / PROGRESS_FILE


def write_progress(path: Path, record: dict[str, Any]) -> None:
    """Replace ``path`` with ``record`` (plain JSON values) atomically: a temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_progress(path: Path, since: float = 0.0) -> dict[str, Any] | None:
    """The last record in ``path`` written at or after ``since`` (UNIX seconds); None when there is none yet (a
    record from an earlier attempt of the job is older than ``since``)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or float(record.get("time", 0)) < since:
        return None
    return record


class ProgressRecorder:
    """Writes a training process's step progress to ``path``, at most every ``every`` seconds unless ``force``.
    Each call passes the whole state: ``epoch`` (from 1), ``epochs``, ``step`` (optimizer steps done), ``steps``
    (the run's total, None when unknown), ``phase`` ("train" / "validate"), ``batch`` / ``batches`` (within the
    phase). Errors writing it are ignored: progress is a courtesy, never a reason for a job to fail."""

    def __init__(self, path: Path, every: float = WRITE_SECONDS) -> None:
        self.path, self.every = path, every
        self._last = 0.0

    def __call__(self, *, force: bool = False, **state: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every:
            return
        self._last = now
        with contextlib.suppress(OSError):
            write_progress(self.path, {**state, "time": time.time()})


def total_steps(trainer: Any) -> int | None:
    """A Lightning trainer's optimizer steps over the whole run (None when it cannot tell, e.g. no epoch limit)."""
    try:
        steps = float(trainer.estimated_stepping_batches)
    except Exception:  # noqa: BLE001 - an estimate Lightning cannot make is simply not shown
        return None
    return int(steps) if math.isfinite(steps) and steps > 0 else None


def describe(record: dict[str, Any]) -> str:
    """The bar's label for a record, e.g. ``epoch 2/5`` or ``epoch 2/5 validating 3/10``."""
    label = f"epoch {record.get('epoch', '?')}/{record.get('epochs', '?')}"
    if record.get("phase") == "validate":
        label += f" validating {record.get('batch', 0)}/{record.get('batches', '?')}"
    return label


@contextlib.contextmanager
def follow_progress(job_dir: Path | str, console: Any, enabled: bool = True) -> Iterator[None]:
    """While the block runs, draw job ``job_dir``'s step progress as a rich bar on ``console`` (a
    ``rich.console.Console``; lines printed on it appear above the bar). Drawn only when ``enabled`` and the
    console is a terminal; the bar is removed when the block ends. Before the first step it says what the job is
    doing ("preparing the data")."""
    if not enabled or not console.is_terminal:
        yield
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    path = progress_path(job_dir)
    since = time.time() - 1.0  # records of an earlier attempt (a resumed job) are older
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                   MofNCompleteColumn(), TextColumn("steps"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=console, transient=True)
    task = bar.add_task("preparing the data", total=None)
    done = threading.Event()

    def poll() -> None:
        while not done.wait(POLL_SECONDS):
            record = read_progress(path, since)
            if record is not None:
                bar.update(task, description=describe(record), completed=int(record.get("step") or 0),
                           total=record.get("steps"))

    follower = threading.Thread(target=poll, name="oculi-progress", daemon=True)
    with bar:
        follower.start()
        try:
            yield
        finally:
            done.set()
            follower.join()
