"""The console's data-audit page in headless Chromium: the dataset page lists the audit, its page shows the counts and
the findings per kind with thumbnails, a job of other classes is refused with a message on the page, and the form
queues the suspects and lands on the labeling job's page; clean at desktop and phone width. The image and report
routes serve only what the audit lists. Screenshots in the test's temp folder (or $OCULI_SCREENSHOTS)."""

from __future__ import annotations

import os
import shutil
import time

import httpx

from oculi.analysis.audit import audit
from oculi.console.app import NAV
from oculi.jobs.store import JobStore
from oculi.labeling import jobs
from oculi.labeling.audits import read_audit, record_audit, suspects
from tests.helpers import make_class_folders
from tests.labeling.test_audits import leaky_folders


def _images_loaded(p, selector: str) -> None:
    deadline = time.monotonic() + 30
    while not p.evaluate(f"[...document.querySelectorAll('{selector}')].every(i => i.complete && i.naturalWidth > 0)"):
        assert time.monotonic() < deadline, f"{selector} images did not load"
        p.mouse.wheel(0, 600)
        time.sleep(0.1)


def test_audit_page_shows_findings_and_sends_suspects_to_labeling(console, page, home_env, tmp_path):
    shots = os.environ.get("OCULI_SCREENSHOTS") or str(tmp_path)
    data = leaky_folders(tmp_path / "data")
    out = tmp_path / "audit"
    audit([data], out, labels=False, progress=False, echo=lambda _line: None)
    name = record_audit(out)["name"]
    expected = suspects(read_audit(out))
    store = JobStore()
    store.register("dataset", "shapes", str(data), {"task": "classification", "format": "folders"})

    p = page.page
    p.goto(f"{console.url}/datasets/shapes")
    assert name in p.inner_text("#audits")
    p.screenshot(path=f"{shots}/dataset-audits.png")
    page.check("/datasets/shapes with an audit")
    p.click(f"#audits a[href='/audits/{name}']")
    p.wait_for_url(f"**/audits/{name}")
    assert p.locator("header.topbar nav a").count() == len(NAV)
    counts = read_audit(out)["counts"]
    assert p.locator("#counts tbody tr").count() == len(counts)
    for kind, n in counts.items():
        assert p.locator(f"#kind-{kind} .finding").count() == min(n, 24), kind
    assert "leak_square.png" in p.inner_text("#kind-leakage")
    assert str(out / "clean.manifest") in p.inner_text("#clean-manifest")
    assert p.inner_text("#send-button") == f"Send {len(expected)} suspects to labeling"
    _images_loaded(p, "main img")
    p.evaluate("window.scrollTo(0, 0)")
    p.screenshot(path=f"{shots}/audit.png", full_page=True)
    page.check(f"/audits/{name} at 1280×800")
    p.click("#report-link")  # the static report, its style and thumbnails under the console's CSP
    p.wait_for_url(f"**/audits/{name}/report/report.html")
    _images_loaded(p, "img")
    assert p.evaluate("getComputedStyle(document.querySelector('.card')).borderTopStyle") == "solid"
    page.check(f"/audits/{name}/report/report.html")
    p.go_back()
    p.wait_for_url(f"**/audits/{name}")

    # a job of other classes: the reason on the page, not a traceback
    jobs.create("two-shapes", "classification", make_class_folders(tmp_path / "two", per_class=1,
                                                                   classes=("circle", "square")), ["circle", "square"])
    p.fill("#send-job", "two-shapes")
    p.click("#send-button")
    p.wait_for_selector("#send-error")
    assert "its classes are circle, square" in p.inner_text("#send-error")
    assert "two-shapes-audit" in p.inner_text("#send-error")
    assert p.input_value("#send-job") == "two-shapes"
    page.problems.clear()  # the 400 is the point
    assert len(store.labeling_items("two-shapes")) == 2

    p.fill("#send-job", "shapes-fix")
    p.click("#send-button")
    p.wait_for_url("**/labeling/shapes-fix")
    assert "InProgress" in p.inner_text("#status")
    assert str(len(expected)) in p.inner_text("#counters")
    assert len(store.labeling_items("shapes-fix")) == len(expected)
    page.check("/labeling/shapes-fix after sending")
    p.goto(f"{console.url}/audits/{name}")
    assert f"{len(expected)} queued in shapes-fix" in p.inner_text("#sent")

    p.set_viewport_size({"width": 390, "height": 844})
    for shot, path in (("audit-phone", f"/audits/{name}"), ("dataset-audits-phone", "/datasets/shapes")):
        p.goto(f"{console.url}{path}")
        p.wait_for_load_state("load")
        _images_loaded(p, "#kind-leakage img" if shot == "audit-phone" else "#grid img")
        p.evaluate("window.scrollTo(0, 0)")
        overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a 390-px phone"
        p.screenshot(path=f"{shots}/{shot}.png", full_page=True)
        page.check(f"{path} at 390 px")

    # the image and report routes serve only what the audit lists; a cross-origin POST changes nothing
    assert httpx.get(f"{console.url}/audits/{name}/finding/0").content[:2] == b"\xff\xd8"
    for path in (f"/audits/{name}/finding/100000", f"/audits/{name}/finding/-1", f"/audits/{name}/finding/x",
                 f"/audits/{name}/finding/..%2F..%2Faudit.json", f"/audits/{name}/finding/0%2F..%2F..%2Fetc%2Fpasswd",
                 f"/audits/{name}/report/..%2Faudit.json", f"/audits/{name}/report/%2Fetc%2Fpasswd",
                 f"/audits/{name}/report/thumbs/..%2F..%2Faudit.json", f"/audits/{name}/report/clean.manifest",
                 "/audits/nope/finding/0", "/audits/nope/report/report.html"):
        assert httpx.get(f"{console.url}{path}").status_code in (403, 404), path
    refused = httpx.post(f"{console.url}/audits/{name}/send", data={"job": "evil"},
                         headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403
    assert "evil" not in {j["name"] for j in store.labeling_jobs()}
    response = p.goto(f"{console.url}/audits/nope")
    assert response.status == 404 and "No audit named 'nope'" in p.inner_text("main")
    page.problems.clear()  # the 404 is the point


def test_the_dataset_page_starts_an_audit_in_the_background(console, page, home_env, tmp_path):
    data = leaky_folders(tmp_path / "data")
    store = JobStore()
    store.register("dataset", "leaky", str(data), {"task": "classification", "format": "folders"})
    p = page.page
    p.goto(f"{console.url}/datasets/leaky")
    assert "No audit yet" in p.inner_text("#audits")
    shots = os.environ.get("OCULI_SCREENSHOTS") or str(tmp_path)
    p.locator("#audits").screenshot(path=f"{shots}/dataset-audit-form.png")
    p.uncheck("#audit-labels")  # no fold trainings: quality, duplicates, leakage, outliers
    p.click("#audit-button")
    p.wait_for_url("**/datasets/leaky*")
    deadline = time.monotonic() + 180  # a hang guard: the background process imports torch and embeds
    while p.locator("#audits table").count() == 0:
        assert p.locator("#audit-failure").count() == 0, p.inner_text("#audit-failure")
        assert time.monotonic() < deadline, "the audit did not finish"
        if p.locator("#audit-running").count():
            assert p.locator("#audit-form").count() == 0  # one audit of the data at a time
        time.sleep(1)
        p.reload()
    row = p.locator("#audits tbody tr").first
    assert "leakage" in row.inner_text()
    p.locator("#audits").screenshot(path=f"{shots}/dataset-audit-done.png")
    p.set_viewport_size({"width": 390, "height": 844})
    assert p.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    p.locator("#audits").screenshot(path=f"{shots}/dataset-audit-phone.png")
    p.set_viewport_size({"width": 1280, "height": 800})
    row.locator("a").click()
    p.wait_for_url("**/audits/*")
    assert "leak_square.png" in p.inner_text("#kind-leakage")
    page.check("an audit started from the dataset page")

    shutil.rmtree(data)  # the data moved away: the form says so instead of starting a doomed audit
    store.unregister("dataset", "leaky")
    store.register("dataset", "leaky", str(data), {"task": "classification", "format": "folders"})
    answer = httpx.post(f"{console.url}/datasets/leaky/audit", data={"labels": "on", "folds": "3"},
                        headers={"Origin": console.url})
    assert answer.status_code in (400, 404) and "does not exist" in answer.text
