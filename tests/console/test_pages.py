"""The console in headless Chromium against a real ``oculi console`` server: every page loads with no console error
and no failed request (1280×800 and phone width), the jobs list filters and pages on the server, a tiny training
job submitted from the form shows its curve gaining points and its log growing live and stops from its page, and a
dataset grid draws boxes and masks. Screenshots of each page go to the test's temp folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from oculi.console.app import NAV
from oculi.data import synthetic
from oculi.jobs.store import JobStore
from tests.console.conftest import fake_job, until
from tests.helpers import TINY

pytestmark = pytest.mark.usefixtures("browser")


def _shot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"console-{name}.png"), full_page=True)


def test_every_page_loads_clean_at_desktop_and_phone_width(console, page, home_env, classifier, tiny_split,
                                                            tmp_path):
    store = JobStore()
    fake_job(store, "finished-1", epochs=4, model_dir=classifier, log="epoch 1\nepoch 2\n")
    fake_job(store, "stopped-1", "Stopped", epochs=2)
    store.register("model", "tiny-copy", str(classifier), {"algorithm": "image-classification"})
    p = page.page

    # register a dataset through its form: it is recognised, checked, and its page shows
    p.goto(f"{console.url}/datasets")
    p.fill("#dataset-name", "tiny")
    p.fill("#dataset-path", str(tiny_split["train"]))
    p.click("#register")
    p.wait_for_url("**/datasets/tiny")
    assert "can be trained on" in p.inner_text("#verdict")
    p.wait_for_selector("#histogram svg rect")
    until(p, "document.querySelectorAll('.cell .classtag').length > 0")

    pages = {"jobs": "/jobs", "job": "/jobs/finished-1", "new-job": "/jobs/new", "models": "/models",
             "model": "/models/finished-1", "compare": "/models/compare?m=finished-1&m=tiny-copy",
             "datasets": "/datasets", "dataset": "/datasets/tiny", "endpoints": "/endpoints",
             "new-detection-job": "/jobs/new?algorithm=object-detection"}
    for name, path in pages.items():
        p.goto(f"{console.url}{path}")
        p.wait_for_load_state("load")
        assert p.locator("header.topbar nav a").count() == len(NAV)
        if name in ("job", "model", "compare"):
            p.wait_for_selector("#charts svg path.series", state="attached")
        time.sleep(0.3)  # late module errors and requests
        _shot(p, tmp_path, name)
        page.check(f"{path} at 1280×800")
    # the finished job's page: its curves (4 epochs), its hyperparameters with the auto value marked, its model
    p.goto(f"{console.url}/jobs/finished-1")
    p.wait_for_selector("#charts svg path.series", state="attached")
    assert p.get_attribute("#charts", "data-points") == str(4 * 3)
    assert p.locator("#hyperparameters div:has-text('learning_rate') .auto").count() == 1
    assert p.get_attribute("#model-link", "href") == "/models/finished-1"

    p.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("jobs-phone", "/jobs"), ("job-phone", "/jobs/finished-1"), ("dataset-phone", "/datasets/tiny"),
                       ("new-job-phone", "/jobs/new")):
        p.goto(f"{console.url}{path}")
        p.wait_for_load_state("load")
        time.sleep(0.2)
        overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a 390-px phone"
        _shot(p, tmp_path, name)
        page.check(f"{path} at 390 px")


def test_jobs_list_filters_and_pages_on_the_server(console, page, home_env):
    store = JobStore()
    start = time.time() - 10_000
    for n in range(120):
        fake_job(store, f"bulk-{n:03d}", "Stopped" if n % 2 else "Failed", created=start + n)
    fake_job(store, "budget-1", "MaxRuntimeExceeded", epochs=1)
    p = page.page
    p.goto(f"{console.url}/jobs?name=bulk")
    assert p.inner_text("#count").startswith("1–50 of 120 jobs")
    assert p.locator("#jobs tbody tr").first.inner_text().startswith("bulk-119")  # newest first
    p.click("a[rel=next]")
    p.wait_for_url("**page=2")
    assert p.inner_text("#count").startswith("51–100 of 120")
    assert p.locator("#jobs tbody tr").first.inner_text().startswith("bulk-069")
    p.select_option("select[name=status]", "Stopped")
    p.click(".filters button[type=submit]")
    p.wait_for_url("**status=Stopped**")
    assert p.inner_text("#count").startswith("1–50 of 60 jobs")
    assert p.locator("#jobs tbody .badge.Failed").count() == 0
    p.fill("input[name=name]", "BULK-007")  # a part of the name, any case
    p.click(".filters button[type=submit]")
    assert p.inner_text("#count").startswith("1–1 of 1 job")
    # the secondary status of a job its max_runtime budget stopped (primary Stopped) is a filter of its own
    p.fill("input[name=name]", "")
    p.select_option("select[name=status]", "MaxRuntimeExceeded")
    p.click(".filters button[type=submit]")
    p.wait_for_url("**status=MaxRuntimeExceeded**")
    assert p.inner_text("#count").startswith("1–1 of 1 job")
    assert p.locator("#jobs tbody tr").first.inner_text().startswith("budget-1")
    page.check("jobs list")


def test_curves_read_by_keyboard_and_on_a_log_scale(console, page, home_env):
    fake_job(JobStore(), "curves-1", epochs=4)  # train:loss 1/epoch, validation:loss 1.2/epoch
    p = page.page
    p.goto(f"{console.url}/jobs/curves-1")
    loss = p.locator(".chart", has=p.locator("h3", has_text="Loss"))
    plot = loss.locator("svg")
    plot.focus()  # focusable: the newest epoch's values show at once
    tip = loss.locator(".tip")
    assert "epoch 4" in tip.inner_text() and "train:loss: 0.25" in tip.inner_text()
    p.keyboard.press("Home")
    assert "epoch 1" in tip.inner_text() and "validation:loss: 1.2" in tip.inner_text()
    p.keyboard.press("ArrowRight")
    assert "epoch 2" in tip.inner_text() and "train:loss: 0.5" in tip.inner_text()
    p.keyboard.press("Tab")
    assert tip.is_hidden()

    def gaps() -> tuple[float, float]:  # train:loss at epochs 1, 2, 4: 1, 0.5, 0.25
        cy = [float(c.get_attribute("cy")) for c in plot.locator("g.c0 circle").all()]
        return cy[1] - cy[0], cy[3] - cy[1]

    linear = gaps()
    assert linear[0] > 1.5 * linear[1]  # a linear axis: halving 1 → 0.5 spans twice 0.5 → 0.25
    loss.locator("input.log-scale").check()
    logged = gaps()
    assert abs(logged[0] - logged[1]) < 0.5  # a log axis: equal ratios, equal distances
    assert plot.locator("text", has_text="(log)").count() == 1
    page.check("keyboard and log scale")


def test_a_job_submitted_from_the_form_trains_live_and_stops(console, page, home_env, tiny_split, tmp_path):
    p = page.page
    p.goto(f"{console.url}/jobs/new")
    p.fill("#channel-train", str(tiny_split["train"]))
    p.fill("#channel-validation", str(tiny_split["validation"]))
    p.click("#tiny")
    assert p.input_value("#hp-epochs") == "2"
    # a bad value: the CLI's message, inline at its field, and no job is created
    p.fill("#hp-epochs", "0")
    p.fill("#name", "from-the-form")
    p.click("#submit")
    p.wait_for_selector("#form-error")
    assert "`epochs` got '0'" in p.inner_text("#err-epochs")
    assert JobStore().find("from-the-form") is None
    page.problems.clear()  # the refused submission answered 400, on purpose
    p.fill("#hp-epochs", "200")
    p.fill("#hp-mini_batch_size", TINY["mini_batch_size"])
    p.click("#submit")
    p.wait_for_url("**/jobs/from-the-form")
    store = JobStore()

    def points() -> int:
        return int(p.get_attribute("#charts", "data-points") or 0)

    until(p, "Number(document.getElementById('charts')?.dataset.points || 0) > 0", timeout=240)
    seen, log_before = points(), len(p.inner_text("#log"))
    until(p, f"Number(document.getElementById('charts')?.dataset.points || 0) > {seen}", timeout=120)
    shown = int(p.get_attribute("#charts", "data-last"))
    delay = time.time() - next(m["time"] for m in store.metrics_after("from-the-form") if m["id"] == shown)
    # a hang guard on a loaded CI machine; the ≤ 2 s target is measured by bench/console_latency.py
    assert delay <= 15.0, f"a new epoch took {delay:.2f} s to show on the open job page"
    until(p, f"(document.getElementById('log')?.textContent.length || 0) > {log_before}", timeout=60)
    assert p.inner_text("#secondary") == "Training"
    _shot(p, tmp_path, "job-live")
    page.check("the live job page")

    p.click("#stop")
    p.wait_for_url("**flash=**")
    until(p, "document.getElementById('status')?.textContent === 'Stopped'", timeout=120)
    assert store.get("from-the-form")["secondary_status"] == "Stopped"
    p.wait_for_selector("#resume")
    _shot(p, tmp_path, "job-stopped")
    page.check("the stopped job page")


def _bars(p, name: str) -> dict[str, int]:
    """The bars of the dataset page's ``name`` histogram: {bin label: count} (from each bar's hover title)."""
    titles = p.evaluate(f"[...document.querySelectorAll('.statistic[data-name=\"{name}\"] rect title')]"
                        ".map((t) => t.textContent)")
    assert titles, f"no {name} histogram drawn"
    return {t.split(" (")[0]: int(t.rsplit(": ", 1)[1]) for t in titles}


def _in_bin(label: str, value: float) -> bool:
    if label.startswith("≥ "):
        return value >= float(label[2:])
    lo, hi = (float(v) for v in label.split("–"))
    return lo <= value < hi


def test_dataset_grid_draws_boxes_and_masks(console, page, home_env, tmp_path):
    data = tmp_path / "data"
    detection = synthetic.write_detection_data(data / "detection", count=6)
    synthetic.write_segmentation_data(data / "segmentation", count=4)
    p = page.page
    for name, path in (("shapes-boxes", detection["train"]), ("shapes-masks", data / "segmentation")):
        p.goto(f"{console.url}/datasets")
        p.fill("#dataset-name", name)
        p.fill("#dataset-path", str(path))
        p.click("#register")
        p.wait_for_url(f"**/datasets/{name}")
        until(p, "document.querySelectorAll('.cell.drawn').length === document.querySelectorAll('.cell')"
                            ".length")
        _shot(p, tmp_path, name)
    p.goto(f"{console.url}/datasets/shapes-boxes")
    until(p, "document.querySelectorAll('.cell.drawn').length === 6")
    assert p.locator(".cell svg.overlay rect").count() >= 6  # every generated image has a box
    # the box-size histogram counts every box of the split, in the bin of its size
    boxes = json.loads(detection["train"].read_text())["annotations"]
    bars = _bars(p, "box-size")
    assert sum(bars.values()) == len(boxes)
    lows = [float(label.removeprefix("≥ ").split("–")[0]) for label in bars]
    assert lows == sorted(lows), f"bins drawn out of order: {list(bars)}"
    side = (boxes[0]["bbox"][2] * boxes[0]["bbox"][3]) ** 0.5
    assert any(_in_bin(label, side) and n > 0 for label, n in bars.items())
    p.click(".cell a.imglink >> nth=0")
    p.wait_for_selector("#zoom[open] svg.overlay rect")
    p.goto(f"{console.url}/datasets/shapes-masks")
    until(p, "document.querySelectorAll('.cell.drawn').length === 4")
    assert p.locator(".cell canvas.maskimg").count() == 4
    coloured = p.evaluate("""() => { const c = document.querySelector('.cell canvas.maskimg');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0; return n; }""")
    assert coloured > 0, "the mask overlay is empty"
    bars = _bars(p, "mask-area")  # one area per class per image: each generated scene shows at least one shape
    assert sum(bars.values()) >= 4 and all(n >= 0 for n in bars.values())
    p.goto(f"{console.url}/datasets/shapes-masks?split=validation")
    until(p, "document.querySelectorAll('.cell.drawn').length === 2")
    page.check("dataset grids")
