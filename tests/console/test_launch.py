"""Endpoint servers started from the console, in headless Chromium: the Endpoints page's form starts a real
``oculi serve`` process for a tiny detection model the store knows; it is listed running, keeps running across a
console restart, answers the try-it box, and its Stop button ends the process."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from oculi.console.launch import start_server
from oculi.jobs.runner import is_alive
from oculi.jobs.store import JobStore
from tests.console.conftest import start_console, stop_console, until
from tests.serving.bundles import tiny_bundle

pytestmark = pytest.mark.usefixtures("browser")


def _state(p, name: str) -> str:
    return p.evaluate(f"document.querySelector('section.server[data-name=\"{name}\"] .launch-state')?.textContent "
                      "|| ''")


def test_start_try_and_stop_an_endpoint_server_from_the_form(page, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("OCULI_HOME", str(home))
    bundle = tiny_bundle(tmp_path / "shapes", "object-detection")
    JobStore().register("model", "shapes", str(bundle), {"algorithm": "object-detection", "task": "detection"})
    console = start_console(home)
    p = page.page
    try:
        p.goto(f"{console.url}/endpoints")
        assert "shapes" in p.inner_text("#start-model")
        p.fill("#start-name", "shapes-serve")
        p.click("#start-form button[type=submit]")
        p.wait_for_url("**/endpoints")
        assert _state(p, "shapes-serve") in ("starting", "running")
        until(p, "document.querySelector('.launch-state')?.textContent === 'running'", timeout=120,
              what="the started server answering")
        record = JobStore().lookup("endpoint", "shapes-serve")
        pid, token = record["info"]["pid"], record["info"]["process_token"]
        assert record["location"].startswith("http://127.0.0.1:") and is_alive(pid, token)
        page.check("the started server")
    finally:
        stop_console(console)

    # the server outlives the console; a new console on the same home finds it running
    assert is_alive(pid, token)
    console = start_console(home)
    try:
        p.goto(f"{console.url}/endpoints")
        assert _state(p, "shapes-serve") == "running"
        assert "shapes" in p.inner_text("section.server h3")

        image = tmp_path / "shapes.jpg"
        pixels = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
        pixels[20:60, 30:90] = (220, 40, 40)
        Image.fromarray(pixels).save(image)
        p.set_input_files(".tryit-file", str(image))
        until(p, "document.querySelector('.tryit').classList.contains('answered')", timeout=60,
              what=f"the drawn answer ({page.problems})")
        answer = json.loads(p.inner_text(".tryit-json"))
        assert answer["prediction"] and len(answer["prediction"][0]) == 6
        p.screenshot(path=str(tmp_path / "console-endpoints-started.png"), full_page=True)

        p.click("section.server button.stop")
        p.wait_for_url("**/endpoints?stopped=shapes-serve")
        assert "Stopped endpoint server shapes-serve" in p.inner_text("main")
        assert p.locator("section.server").count() == 0
        assert not is_alive(pid, token)
        assert JobStore().registered("endpoint") == []
        page.check("the stopped server")
    finally:
        stop_console(console)
        if is_alive(pid, token):  # a failed assertion above: do not leave the server running
            import os
            import signal

            os.kill(pid, signal.SIGKILL)


def test_a_bad_start_is_refused_on_the_form_and_a_dead_server_shows_its_log(console, page, home_env):
    store = JobStore()
    p = page.page
    p.goto(f"{console.url}/endpoints")
    p.evaluate("document.getElementById('start-model').innerHTML = '<option value=\"nowhere\">nowhere</option>'")
    p.click("#start-form button[type=submit]")
    assert "No model named 'nowhere'" in p.inner_text("[role=alert]")
    page.problems.clear()  # the refused start answered 400, on purpose

    # a server whose process has ended (a bundle that cannot be served): listed dead with the end of its log
    broken = home_env / "broken-model"
    broken.mkdir()
    (broken / "model.json").write_text("{}")
    store.register("model", "broken", str(broken), {})
    start_server(store, "broken-serve", "broken")
    p.goto(f"{console.url}/endpoints")
    until(p, "document.querySelector('section.server[data-name=\"broken-serve\"] .launch-state')?.textContent "
             "=== 'dead'", timeout=120, what="the broken server listed dead (the page reloads while it starts)")
    assert "error" in p.inner_text("section.server[data-name='broken-serve'] pre.log").lower()
    p.click("section.server[data-name='broken-serve'] button.stop")
    p.wait_for_url("**/endpoints?stopped=broken-serve")
    assert p.locator("section.server[data-name='broken-serve']").count() == 0
