"""Fixtures for the jobs tests: tiny data, a job spec factory and helpers that watch the store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

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


def until(predicate, timeout: float = 120, poll: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def store(oculi_home) -> JobStore:
    s = JobStore()
    yield s
    s.dispose()
