"""Automated labeling from the labeling job's page in headless Chromium: the button waits for enough human labels,
then starts a round in the background (an ordinary training job in its own process); reloading shows it running,
then the round's row with the measured accuracy, and the counters add up."""

from __future__ import annotations

import os
import time

import pytest

from oculi.errors import JobError
from oculi.jobs.store import JobStore
from oculi.labeling import LabelingJob, jobs
from oculi.labeling.auto import start_auto_label
from tests.labeling.test_auto import CLASSES, _flat


def test_the_job_page_runs_a_round_of_automated_labeling_in_the_background(console, home_env, page, tmp_path):
    flat, truth = _flat(tmp_path, per_class=8, seed=5)
    LabelingJob.create("auto-page", "classification", flat, CLASSES)
    items = JobStore().labeling_items("auto-page")
    p = page.page
    p.goto(f"{console.url}/labeling/auto-page")
    assert p.locator("#auto-button").is_disabled()
    assert "Needs at least 10 human labels (0 so far)" in p.inner_text("#auto-form")
    with pytest.raises(JobError, match="at least 10"):
        start_auto_label("auto-page")
    for item in items[:14]:
        name = item["source"]["image"].rsplit("/", 1)[-1]
        jobs.save_label("auto-page", item["idx"], {"classes": [CLASSES.index(truth[name])]}, "alice")

    p.reload()
    p.screenshot(path=f"{os.environ.get('OCULI_SCREENSHOTS') or tmp_path}/labeling-auto-form.png", full_page=True)
    p.fill("#auto-accuracy", "0.5")
    p.fill("#auto-hp", "epochs=2 image_shape=3,32,32 num_layers=20 mini_batch_size=8 num_workers=0 "
                       "learning_rate=0.05")
    p.click("#auto-button")
    p.wait_for_load_state()
    assert p.locator("#auto-error").count() == 0, p.inner_text("#auto-error")
    p.wait_for_url("**/labeling/auto-page")
    deadline = time.monotonic() + 240  # a hang guard: the tiny training takes seconds
    while p.locator("#rounds").count() == 0 or p.locator("#auto-running").count():  # recorded, and ended
        assert p.locator("#auto-failure").count() == 0, p.inner_text("#auto-failure")
        assert time.monotonic() < deadline, "the round did not finish"
        if p.locator("#auto-running").count():
            assert "Round 1 runs in the background" in p.inner_text("#auto-running")
            assert p.locator("#auto-form").count() == 0  # one round at a time
        time.sleep(1)
        p.reload()
    row = p.locator("#rounds tbody tr").first.inner_text()
    described = jobs.describe("auto-page")
    record = described["AutomatedLabeling"][0]
    assert record["target"] == 0.5 and record["human_labels"] == 14
    assert record["training_job"] in row and JobStore().find(record["training_job"])["status"] == "Completed"
    if record["threshold"] is None:  # the row says what it would have taken
        assert f"it takes ≥ {record['needed']} right in a row" in row, row
    counters = described["LabelCounters"]
    assert counters["HumanLabeled"] == 14
    assert counters["MachineLabeled"] + counters["Unlabeled"] == len(items) - 14
    assert counters["MachineLabeled"] == record["machine_labeled"]
    # ready for the next round while images are left for people (all machine-labeled: the job is complete)
    assert p.locator("#auto-form").count() == (described["LabelingJobStatus"] == "InProgress")
    page.check("/labeling/auto-page after a round")
    shots = os.environ.get("OCULI_SCREENSHOTS") or str(tmp_path)
    p.screenshot(path=f"{shots}/labeling-auto-round.png", full_page=True)
    p.set_viewport_size({"width": 390, "height": 844})
    p.reload()
    assert p.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    p.screenshot(path=f"{shots}/labeling-auto-round-phone.png", full_page=True)
