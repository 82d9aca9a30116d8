"""The job status machine: every legal and every illegal transition, in the pure table and through the store."""

from __future__ import annotations

import itertools

import pytest

from oculi.jobs import status as S
from oculi.jobs.store import JobStore

LEGAL = {
    (None, "Pending"),
    ("Pending", "Starting"), ("Pending", "Stopping"), ("Pending", "Failed"),
    ("Starting", "Training"), ("Starting", "Stopping"), ("Starting", "Failed"),
    ("Starting", "Transforming"),
    ("Transforming", "Completed"), ("Transforming", "Stopping"), ("Transforming", "Failed"),
    ("Training", "Uploading"), ("Training", "Stopping"), ("Training", "Failed"),
    ("Uploading", "Completed"), ("Uploading", "Stopping"), ("Uploading", "Failed"),
    ("Stopping", "Stopped"), ("Stopping", "Failed"),
    ("Training", "MaxRuntimeExceeded"), ("Uploading", "MaxRuntimeExceeded"), ("Stopping", "MaxRuntimeExceeded"),
    ("Completed", "Pending"), ("Stopped", "Pending"), ("Failed", "Pending"), ("MaxRuntimeExceeded", "Pending"),
    ("Starting", "Tuning"), ("Tuning", "Completed"), ("Tuning", "Stopping"), ("Tuning", "Failed"),
}
ALL_PAIRS = list(itertools.product([None, *S.SECONDARY_STATUSES], S.SECONDARY_STATUSES))


def test_primary_status_of_every_secondary_status():
    assert {s: S.PRIMARY[s] for s in S.SECONDARY_STATUSES} == {
        "Pending": "InProgress", "Starting": "InProgress", "Training": "InProgress", "Uploading": "InProgress",
        "Stopping": "Stopping", "Stopped": "Stopped", "Completed": "Completed", "Failed": "Failed",
        "Transforming": "InProgress", "MaxRuntimeExceeded": "Stopped", "Tuning": "InProgress"}


@pytest.mark.parametrize(("current", "new"), ALL_PAIRS)
def test_every_transition_is_legal_or_rejected(current, new):
    assert S.is_legal(current, new) == ((current, new) in LEGAL)
    if (current, new) in LEGAL:
        S.check_transition(current, new)
    else:
        with pytest.raises(S.IllegalTransition, match="Cannot move"):
            S.check_transition(current, new)


def test_unknown_status_is_rejected():
    with pytest.raises(S.IllegalTransition, match="not a job status"):
        S.check_transition("Pending", "LaunchingMLInstances")


def _record(name):
    return {"name": name, "algorithm": "image-classification", "spec": {}, "job_dir": "/tmp/x",
            "model_dir": "/tmp/x/model", "log_path": "/tmp/x/log"}


def _walk_to(store, name, target):
    """Create job ``name`` and move it to ``target`` along legal transitions."""
    paths = {"Pending": [], "Starting": ["Starting"], "Training": ["Starting", "Training"],
             "Uploading": ["Starting", "Training", "Uploading"],
             "Completed": ["Starting", "Training", "Uploading", "Completed"],
             "Stopping": ["Stopping"], "Stopped": ["Stopping", "Stopped"], "Failed": ["Failed"],
             "Transforming": ["Starting", "Transforming"],
             "MaxRuntimeExceeded": ["Starting", "Training", "MaxRuntimeExceeded"], "Tuning": ["Starting", "Tuning"]}
    store.create(_record(name))
    for step in paths[target]:
        store.transition(name, step)


def test_store_applies_the_machine_and_records_history(oculi_home):
    store = JobStore()
    for i, (current, new) in enumerate(p for p in ALL_PAIRS if p[0] is not None):
        name = f"job-{i}"
        _walk_to(store, name, current)
        before = store.get(name)
        if (current, new) in LEGAL:
            after = store.transition(name, new, "test")
            assert (after["status"], after["secondary_status"]) == (S.PRIMARY[new], new)
            assert store.transitions(name)[-1]["secondary_status"] == new
        else:
            with pytest.raises(S.IllegalTransition):
                store.transition(name, new, "test")
            assert store.get(name)["secondary_status"] == before["secondary_status"]  # nothing half-written
    history = [t["secondary_status"] for t in store.transitions("job-0")]
    assert history[0] == "Pending"
