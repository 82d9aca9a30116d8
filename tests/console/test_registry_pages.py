"""The console's model registry pages in headless Chromium: groups, versions with their approval, and the
deployment history, clean at desktop and phone width (screenshots in the test's temp folder)."""

from __future__ import annotations

import os
import time

from oculi.console.app import NAV
from oculi.model_registry import APPROVED, REJECTED, package_arn, record_deployment, register, set_approval
from tests.serving.bundles import tiny_bundle


def test_registry_pages_show_versions_approval_and_history(console, page, home_env, tmp_path):
    bundle = tiny_bundle(tmp_path / "ants", "image-classification")
    register(bundle, "ants", "first")
    register(bundle, "ants", "second, more epochs")
    set_approval("ants", 1, APPROVED)
    set_approval("ants", 2, REJECTED, "worse on night images")
    record_deployment("ants", "Deployed", [{"VariantName": "AllTraffic", "ModelDataUrl": str(bundle),
                                            "ModelPackageArn": package_arn("ants", 1), "Weight": 1.0}])
    shots = os.environ.get("OCULI_SCREENSHOTS") or str(tmp_path)
    p = page.page
    p.goto(f"{console.url}/registry")
    assert p.locator("header.topbar nav a").count() == len(NAV)
    row = p.locator("#groups tbody tr").first.inner_text()
    assert "ants" in row and "2" in row and "1" in row
    assert "ants/1" in p.inner_text("#deployments")
    p.click("#groups a")
    p.wait_for_url("**/registry/ants")
    versions = p.locator("#versions tbody tr")
    assert versions.count() == 2
    assert "Rejected" in versions.nth(0).inner_text() and "worse on night images" in versions.nth(0).inner_text()
    assert "Approved" in versions.nth(1).inner_text()
    assert "Deployed" in p.inner_text("#deployments")
    time.sleep(0.2)
    p.screenshot(path=f"{shots}/registry-group.png", full_page=True)
    page.check("/registry/ants at 1280×800")
    p.set_viewport_size({"width": 390, "height": 844})
    for name, path in (("registry-phone", "/registry"), ("registry-group-phone", "/registry/ants")):
        p.goto(f"{console.url}{path}")
        p.wait_for_load_state("load")
        overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than a 390-px phone"
        p.screenshot(path=f"{shots}/{name}.png", full_page=True)
        page.check(f"{path} at 390 px")
    p.goto(f"{console.url}/registry/nope")
    assert "No model package group named 'nope'" in p.inner_text("main")
    page.problems.clear()  # the 404 of the unknown group is the point
