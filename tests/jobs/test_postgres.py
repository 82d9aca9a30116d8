"""The job store on a real PostgreSQL server: a throw-away instance (:func:`tests.postgres.throwaway_postgres`;
skipped, with the reason, where the PostgreSQL binaries are absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oculi.jobs import runner
from oculi.jobs import status as S
from oculi.jobs.store import JobStore
from tests.jobs.conftest import spec
from tests.postgres import PostgresUnavailable, throwaway_postgres


@pytest.fixture(scope="module")
def postgres_url():
    try:
        with throwaway_postgres() as url:
            yield url
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    except RuntimeError as e:
        pytest.fail(str(e))


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
