"""Fixtures for the tuning tests: the tiny three-class data and helpers to read a tuning job's trials."""

from __future__ import annotations

from pathlib import Path

import pytest

from oculi.jobs.runner import JobSpec
from oculi.jobs.store import JobStore
from tests.console.conftest import browser, page  # noqa: F401 - headless Chromium fixtures, reused
from tests.helpers import TINY
from tests.jobs.test_postgres import postgres_url  # noqa: F401 - the throw-away PostgreSQL server, reused


@pytest.fixture
def store(oculi_home) -> JobStore:
    s = JobStore()
    yield s
    s.dispose()


def training(data: dict[str, Path], **hp: str) -> JobSpec:
    """A tiny image-classification training template (the static hyperparameters of every trial)."""
    static = {k: v for k, v in {**TINY, **hp}.items() if v is not None}
    return JobSpec(algorithm="image-classification", channels={k: str(v) for k, v in data.items()},
                   hyperparameters=static)


def starts(store: JobStore, name: str) -> int:
    """How many times job ``name`` was started (its Starting transitions)."""
    return sum(t["secondary_status"] == "Starting" for t in store.transitions(name))
