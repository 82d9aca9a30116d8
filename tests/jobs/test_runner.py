"""The local runner with real child processes: detach, kill -9 then exact resume, graceful stop, extend,
failures with reasons, and the queue limit under 10 simultaneous submissions."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from oculi.errors import DataError, JobError
from oculi.jobs import runner
from oculi.jobs.store import JobStore
from tests.jobs.conftest import spec, story, until, wait_ended


def _run_detached(store, job_spec):
    job = runner.submit(job_spec, store)
    runner.dispatch(store)
    return job["name"]


def test_kill_9_is_found_dead_and_resume_matches_an_uninterrupted_run(store, job_data, monkeypatch):
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "2")
    hp = {"epochs": "3", "augmentation_type": "crop_color_transform"}
    reference = _run_detached(store, spec(job_data, **hp))
    victim = _run_detached(store, spec(job_data, **hp))
    # kill the worker once its first epoch-end checkpoint is written
    until(lambda: (store.get(victim)["checkpoint"] or {}).get("epoch", 0) >= 1, poll=0.05, what="one epoch")
    pid = store.get(victim)["pid"]
    os.kill(pid, signal.SIGKILL)
    until(lambda: runner.is_alive(pid, None) is False, timeout=60, what="worker gone",
          explain=lambda: story(store, victim))
    at = store.get(victim)["checkpoint"]
    assert at["epoch"] in (1, 2) and not at["mid_epoch"]
    runner.dispatch(store)  # what every oculi command does first
    dead = store.get(victim)
    assert (dead["status"], dead["secondary_status"]) == ("Failed", "Failed")
    assert "worker process died" in dead["failure_reason"] and dead["pid"] is None

    job = runner.resume(victim, store=store)
    assert job["secondary_status"] == "Pending"
    runner.dispatch(store)
    done = wait_ended(store, victim)
    ref = wait_ended(store, reference)
    assert done["secondary_status"] == ref["secondary_status"] == "Completed"
    log = Path(done["log_path"]).read_text()
    assert f"resumed from epoch {at['epoch']}, step {6 * at['epoch']}" in log
    # Resume from an epoch-end checkpoint restores weights, optimizer, schedule, RNG and data order: the final
    # validation metrics equal the uninterrupted run's (tolerance 1e-6; they are bit-identical on one machine).
    for key in ("validation:accuracy", "validation:loss"):
        assert abs(done["final_metrics"][key] - ref["final_metrics"][key]) <= 1e-6, key
    epochs = sorted({r["epoch"] for r in store.metrics(victim)})
    assert epochs == [1, 2, 3]  # the time series has each epoch once, none lost, none doubled
    history = [t["secondary_status"] for t in store.transitions(victim)]
    assert history[:4] == ["Pending", "Starting", "Training", "Failed"]
    assert history[4:] == ["Pending", "Starting", "Training", "Uploading", "Completed"]


def test_stop_is_graceful_then_resume_and_extend(store, job_data):
    name = _run_detached(store, spec(job_data, epochs="50"))
    until(lambda: store.get(name)["secondary_status"] == "Training", what="training")
    until(lambda: store.get(name)["checkpoint"] is not None, what="first epoch", explain=lambda: story(store, name))
    finished = store.get(name)["checkpoint"]["epoch"]  # epochs done when the stop is asked (of 50)
    asked = time.monotonic()
    runner.stop(name, store)
    stopped = wait_ended(store, name)  # a generous hang guard; promptness is checked in epochs below
    took = time.monotonic() - asked
    at = stopped["checkpoint"]
    assert stopped["secondary_status"] == "Stopped", story(store, name)
    # The stop is honoured at the next step boundary: the checkpoint comes in the epoch running when it was asked
    # or, if that epoch ended meanwhile, the next one (``epoch`` counts completed epochs) — far from the 50 asked
    # for. Counted in epochs, not seconds, so a loaded machine cannot fail it; the seconds go in the message.
    assert at["epoch"] <= finished + 2, (f"asked after epoch {finished}, stopped at {at} after {took:.1f} s\n"
                                         + story(store, name))
    log = Path(stopped["log_path"]).read_text()
    assert "stop requested: checkpoint written" in log
    assert (Path(stopped["job_dir"]) / "checkpoints" / "last.ckpt").exists()
    assert (Path(stopped["model_dir"]) / "model.json").exists()  # the best epoch so far is a usable bundle
    assert [t["secondary_status"] for t in store.transitions(name)][-2:] == ["Stopping", "Stopped"]
    with pytest.raises(JobError, match="already ended"):
        runner.stop(name, store)

    # resume in this process to one epoch past the stop: continues from the stop's step, then completes
    # mid-epoch; or, when the stop came at an epoch's last step, after that epoch's validation (its own checkpoint)
    assert (at["mid_epoch"] and at["step"] > 6 * at["epoch"]) or (not at["mid_epoch"] and at["step"] == 6 * at["epoch"])
    runner.resume(name, epochs=at["epoch"] + 1, store=store, attached=True)
    lines: list[str] = []
    done = runner.run_attached(store.get(name), store, echo=lines.append)
    assert done["secondary_status"] == "Completed"
    assert f"resumed from epoch {at['epoch']}, step {at['step']}" in lines
    # a completed job: resume needs --epochs, and says so
    with pytest.raises(JobError, match="--epochs"):
        runner.resume(name, store=store)
    # extend by one more epoch
    total = at["epoch"] + 2
    runner.resume(name, epochs=total, store=store, attached=True)
    lines.clear()
    extended = runner.run_attached(store.get(name), store, echo=lines.append)
    assert extended["secondary_status"] == "Completed"
    assert f"resumed from epoch {total - 1}, step {6 * (total - 1)}" in lines
    assert any("learning-rate schedule restarted" in line for line in lines)
    assert max(r["epoch"] for r in store.metrics(name)) == total
    assert extended["hyperparameters"]["epochs"] == total


def test_failures_give_a_reason_and_leave_the_store_consistent(store, job_data, tmp_path, monkeypatch):
    # a bad input channel (one that does not exist is refused at submit: tests/jobs/test_submit_checks.py)
    (tmp_path / "nothing").mkdir()
    bad = spec({"train": tmp_path / "nothing"})
    job = runner.submit(bad, store, attached=True)
    with pytest.raises(DataError):
        runner.run_attached(job, store)
    failed = store.get(job["name"])
    assert failed["secondary_status"] == "Failed" and "nothing" in failed["failure_reason"]
    assert failed["pid"] is None and failed["training_end"] is not None

    # an unwritable output folder (a file stands where the folder should be)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = spec(job_data)
    unwritable.output = str(blocker / "model")
    job = runner.submit(unwritable, store, attached=True)
    with pytest.raises(OSError):
        runner.run_attached(job, store)
    reason = store.get(job["name"])["failure_reason"]
    assert "Cannot write" in reason and "--output" in reason

    # an exception inside the algorithm
    from oculi.algorithms.classification import ImageClassification

    def broken(*args, **kwargs):
        raise RuntimeError("boom in build_model")

    monkeypatch.setattr(ImageClassification, "build_model", broken)
    job = runner.submit(spec(job_data), store, attached=True)
    with pytest.raises(RuntimeError):
        runner.run_attached(job, store)
    failed = store.get(job["name"])
    assert "RuntimeError: boom in build_model" in failed["failure_reason"]
    assert "Traceback" in Path(failed["log_path"]).read_text()
    assert store.count_active() == 0


def test_ten_jobs_at_once_all_recorded_none_over_the_limit(store, mini_data, monkeypatch):
    monkeypatch.setenv("OCULI_MAX_PARALLEL_JOBS", "2")
    names: list[str] = []
    errors: list[BaseException] = []

    def submit_one():
        try:
            own = JobStore()
            names.append(runner.submit(spec(mini_data), own)["name"])
            runner.dispatch(own)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    most = [0]
    watching = threading.Event()

    def watch():
        while not watching.is_set():
            most[0] = max(most[0], store.count_active())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=submit_one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors and len(set(names)) == 10
        for name in names:
            assert wait_ended(store, name)["secondary_status"] == "Completed", story(store, name)
    finally:
        watching.set()
        watcher.join()
    assert 1 <= most[0] <= 2
    assert len(store.list(status="Completed")) == 10
