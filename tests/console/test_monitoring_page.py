"""The console's monitoring pages in headless Chromium: a schedule with a clean execution and a drifted one (darkened
traffic) is listed, its page shows the executions newest first, the drift-over-time chart, the violations and
example images (captured beside baseline training images), clean at desktop and phone width; the drifted
window is sent to a labeling job from the page; the image routes serve
only what an execution's drift.json or the baseline's dataset lists. Screenshots in the test's temp folder (or
$OCULI_SCREENSHOTS)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
from PIL import Image

from oculi.console.app import NAV
from oculi.labeling import jobs as labeling_jobs
from oculi.monitoring.schedule import executions, schedule
from tests.monitoring.test_monitor import base, capture_images, jpeg_train, shapes  # noqa: F401 - fixtures


def test_monitoring_pages_show_executions_drift_violations_and_examples(console, page, home_env, base,  # noqa: F811
                                                                       tmp_path):
    shots = os.environ.get("OCULI_SCREENSHOTS") or str(tmp_path)
    p = page.page
    p.goto(f"{console.url}/monitoring")
    assert p.locator("header.topbar nav a").count() == len(NAV)
    assert "No monitoring schedule yet" in p.inner_text("#schedules")
    page.check("/monitoring, empty")

    capture = tmp_path / "cap"
    capture_images(capture, shapes(40, seed=21))
    first = schedule("shapes-hourly", capture=capture, baseline=base, every="1h", output=tmp_path / "mon",
                     endpoint="shapes", max_executions=1, sleep=lambda _s: None)
    time.sleep(1.1)  # executions are named by the second their window ends
    capture_images(capture, [Image.eval(img, lambda v: int(v * 0.3)) for img in shapes(30, seed=51)])
    second = schedule("shapes-hourly", capture=capture, baseline=base, every="1h", output=tmp_path / "mon",
                      endpoint="shapes", max_executions=1, sleep=lambda _s: None)
    assert [first[0]["status"], second[0]["status"]] == ["Completed", "CompletedWithViolations"]
    runs = executions("shapes-hourly")
    stamps = [r["name"].partition("/")[2] for r in runs]
    shown = [f"{s[:10]} {s[11:].replace('-', ':')}" for s in stamps]  # 2026-12-06T02-04-34 → 2026-12-06 02:04:34

    p.goto(f"{console.url}/monitoring")
    row = p.locator("#schedules tbody tr").first.inner_text()
    assert "shapes-hourly" in row and "1h" in row and "CompletedWithViolations" in row
    assert str(second[0]["violations"]) in row
    p.screenshot(path=f"{shots}/monitoring.png", full_page=True)
    page.check("/monitoring at 1280×800")

    p.click("#schedules a")
    p.wait_for_url("**/monitoring/shapes-hourly")
    rows = p.locator("#executions tbody tr")
    assert rows.count() == 2
    assert shown[1] in rows.nth(0).inner_text() and "CompletedWithViolations" in rows.nth(0).inner_text()
    assert shown[0] in rows.nth(1).inner_text() and "Completed" in rows.nth(1).inner_text()
    features = {t["feature"] for t in json.loads((Path(runs[1]["location"]) / "drift.json").read_text())["tests"]}
    series = p.locator("#drift svg g[data-feature]")
    assert series.count() == len(features) and {"brightness", "embedding"} <= features
    for n in range(series.count()):  # one line of two points per feature: both executions were tested
        assert series.nth(n).locator("path.series").get_attribute("d").count("L") == 1
        assert series.nth(n).locator("circle").count() == 2
    assert p.locator("#drift circle.flagged").count() >= 1
    assert "brightness drifted from the baseline" in p.inner_text("#violations")
    for grid in ("#captured", "#baseline"):
        images = p.locator(f"{grid} img")
        assert images.count() == 8, grid
        images.last.scroll_into_view_if_needed()
        deadline = time.monotonic() + 30
        while not p.evaluate(f"[...document.querySelectorAll('{grid} img')].every(i => i.complete "
                             "&& i.naturalWidth > 0)"):
            assert time.monotonic() < deadline, f"{grid} images did not load"
            p.mouse.wheel(0, 400)
            time.sleep(0.1)
    p.evaluate("window.scrollTo(0, 0)")
    time.sleep(0.2)
    p.screenshot(path=f"{shots}/monitoring-schedule.png", full_page=True)
    page.check("/monitoring/shapes-hourly at 1280×800")

    # the drifted window goes to labeling from the page: all 30 images, pre-labelled; a taken name is explained
    assert f"window of {shown[1]} drifted: all its 30 captured images" in p.inner_text("#label")
    p.fill("#label-job", "shapes-relabel")
    p.click("#label-button")
    p.wait_for_url("**/labeling/shapes-relabel")
    described = labeling_jobs.describe("shapes-relabel")
    assert described["LabelCounters"]["Unlabeled"] == 30
    assert all(item["proposal"] for item in labeling_jobs.JobStore().labeling_items("shapes-relabel"))
    p.goto(f"{console.url}/monitoring/shapes-hourly")
    p.fill("#label-job", "shapes-relabel")
    p.click("#label-button")
    p.wait_for_selector("#label-error")
    assert "shapes-relabel" in p.inner_text("#label-error")
    assert p.input_value("#label-job") == "shapes-relabel"  # what was typed is kept
    assert labeling_jobs.describe("shapes-relabel")["LabelCounters"]["Unlabeled"] == 30  # nothing added twice
    page.problems.clear()  # the 400 answer is the point

    p.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("monitoring-phone", "/monitoring"), ("monitoring-schedule-phone", "/monitoring/shapes-hourly")):
        p.goto(f"{console.url}{path}")
        p.wait_for_load_state("load")
        overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a 390-px phone"
        assert p.locator("header.topbar nav a").count() == len(NAV)
        assert p.evaluate("(n => n.scrollWidth <= n.clientWidth)(document.querySelector('header.topbar nav'))"), \
            "the top bar's nav scrolls sideways at 390 px"
        p.screenshot(path=f"{shots}/{name}.png", full_page=True)
        page.check(f"{path} at 390 px")

    # an unknown schedule is the console's 404 page; the image routes serve only what is listed
    response = p.goto(f"{console.url}/monitoring/nope")
    assert response.status == 404 and "No monitoring schedule named 'nope'" in p.inner_text("main")
    page.problems.clear()  # the 404 is the point
    listed = httpx.get(f"{console.url}/monitoring/shapes-hourly/baseline/0")
    assert listed.status_code == 200 and listed.content[:2] == b"\xff\xd8"
    for path in (f"/monitoring/shapes-hourly/capture/{stamps[1]}/not-an-event",
                 f"/monitoring/shapes-hourly/capture/{stamps[1]}/..%2F..%2Fdrift.json",
                 "/monitoring/shapes-hourly/capture/nope/x", "/monitoring/shapes-hourly/baseline/100000",
                 "/monitoring/shapes-hourly/baseline/-1", "/monitoring/nope/baseline/0",
                 f"/monitoring/shapes-hourly/capture/{stamps[1]}/%2Fetc%2Fpasswd"):
        assert httpx.get(f"{console.url}{path}").status_code in (403, 404), path
