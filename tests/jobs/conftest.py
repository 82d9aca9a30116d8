"""Fixtures for the jobs tests: tiny data, a job spec factory and helpers that watch the store."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from oculi.errors import JobError
from oculi.jobs import runner
from oculi.jobs.runner import JobSpec
from oculi.jobs.store import JobStore
from tests.helpers import TINY, make_class_folders


@pytest.fixture(scope="session")
def job_data(tiny_split: dict[str, Path]) -> dict[str, Path]:
    """The suite's generated three-class train/validation split (tests/conftest.py's ``tiny_split``)."""
    return tiny_split


@pytest.fixture(scope="session")
def mini_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The smallest useful data: 4 images per class (fast jobs for the queue test)."""
    root = tmp_path_factory.mktemp("minidata")
    return {"train": make_class_folders(root / "train", per_class=4, seed=1),
            "validation": make_class_folders(root / "validation", per_class=2, seed=2)}


def spec(data: dict[str, Path], **hp: str) -> JobSpec:
    return JobSpec(algorithm="image-classification", channels={k: str(v) for k, v in data.items()},
                   hyperparameters={**TINY, **hp})


def until(predicate, timeout: float = 120, poll: float = 0.1, what: str = "condition",
          explain: Callable[[], str] | None = None):
    """Poll ``predicate`` until it returns a true value (returned). ``timeout`` is a hang guard, not a speed
    assertion: when it runs out the test fails with ``explain()`` (e.g. :func:`story`), saying what happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"hang guard: timed out after {timeout} s waiting for {what}"
                         + (f"\n{explain()}" if explain else ""))


def story(store: JobStore, name: str, log_chars: int = 4000) -> str:
    """What happened to job ``name``: its status, checkpoint and failure reason, every status transition with its
    time and message, and the end of its log — the message of a hang-guard failure."""
    job = store.get(name)
    start = job["created_at"]
    steps = "\n".join(f"  +{t['time'] - start:7.1f} s  {t['secondary_status']}: {t['message']}"
                      for t in store.transitions(name))
    log = Path(job["log_path"])
    tail = log.read_text(errors="replace")[-log_chars:] if log.exists() else "(no log written)"
    return (f"job {name}: {job['status']}/{job['secondary_status']}, pid {job['pid']}, checkpoint {job['checkpoint']}, "
            f"failure reason {job['failure_reason']!r}\ntransitions:\n{steps}\nlog ({log}), last {log_chars} "
            f"characters:\n{tail}")


def wait_ended(store: JobStore, name: str, timeout: float = 300, poll: float = 0.1) -> dict:
    """``runner.wait`` for job ``name`` to end (returns its record) under a generous hang guard: a job still
    running after ``timeout`` seconds fails the test with the job's :func:`story`."""
    try:
        return runner.wait(name, store, timeout=timeout, poll=poll)
    except JobError as e:
        raise AssertionError(f"hang guard: {e}\n{story(store, name)}") from None


@pytest.fixture
def store(oculi_home) -> JobStore:
    s = JobStore()
    yield s
    s.dispose()
