"""Who may use the console, against a real ``oculi console`` server: it refuses a non-loopback address without
``OCULI_TOKEN``; with a token every page and API call needs it (bearer header or the login cookie), the login form
sets an HttpOnly SameSite=Strict cookie, and a POST carrying that cookie from another web origin is refused. Every
response carries the Content-Security-Policy that keeps the console to its own server."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from oculi.jobs.store import JobStore
from tests.console.conftest import fake_job, free_port, start_console, stop_console

TOKEN = "console-test-token"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    served = start_console(tmp_path_factory.mktemp("console-token-home"), token=TOKEN)
    yield served
    stop_console(served)


def test_refuses_to_listen_beyond_loopback_without_a_token(oculi_home):
    env = {**os.environ, "OCULI_HOME": str(oculi_home)}
    env.pop("OCULI_TOKEN", None)
    done = subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", "console", "--host", "0.0.0.0",
                           "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "Refusing to listen on 0.0.0.0 without a token" in done.stderr + done.stdout
    assert "OCULI_TOKEN" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_token_mode_needs_the_token_for_pages_and_api(guarded, monkeypatch):
    monkeypatch.setenv("OCULI_HOME", str(guarded.home))
    fake_job(JobStore(), "guarded-1", epochs=1)
    url = guarded.url
    for path in ("/jobs", "/jobs/guarded-1", "/jobs/guarded-1/events", "/api/training-jobs", "/datasets",
                 "/openapi.json"):
        refused = httpx.get(f"{url}{path}", timeout=10)
        assert refused.status_code == 401, path
        assert refused.json()["error"] == "Unauthorized"
        assert "content-security-policy" in refused.headers
    page = httpx.get(f"{url}/jobs", headers={"Accept": "text/html"}, timeout=10)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=/jobs"
    assert httpx.get(f"{url}/jobs", cookies={"oculi_console": "wrong"}, timeout=10).status_code == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    shown = httpx.get(f"{url}/jobs", headers=bearer, timeout=10)
    assert shown.status_code == 200 and "guarded-1" in shown.text
    assert "default-src 'self'" in shown.headers["content-security-policy"]
    api = httpx.get(f"{url}/api/training-jobs", headers=bearer, timeout=10)
    assert [j["TrainingJobName"] for j in api.json()["TrainingJobSummaries"]] == ["guarded-1"]
    # the login page and its assets are open; a wrong token is refused there too
    assert httpx.get(f"{url}/login", timeout=10).status_code == 200
    assert httpx.get(f"{url}/static/console.css", timeout=10).status_code == 200
    assert httpx.post(f"{url}/login", data={"token": "nope"}, timeout=10).status_code == 401


def test_login_cookie_reads_but_cannot_post_from_another_origin(guarded, monkeypatch):
    monkeypatch.setenv("OCULI_HOME", str(guarded.home))
    fake_job(JobStore(), "guarded-2", "Training", epochs=1)
    url = guarded.url
    login = httpx.post(f"{url}/login", data={"token": TOKEN, "next": "/jobs/guarded-2"}, timeout=10)
    assert login.status_code == 303 and login.headers["location"] == "/jobs/guarded-2"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    jar = {"oculi_console": login.cookies["oculi_console"]}
    assert httpx.get(f"{url}/jobs/guarded-2", cookies=jar, timeout=10).status_code == 200
    # a page on another site making the browser post with the cookie (CSRF) is refused; nothing changes
    forged = httpx.post(f"{url}/jobs/guarded-2/stop", cookies=jar, timeout=10,
                        headers={"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"})
    assert forged.status_code == 403
    assert JobStore().get("guarded-2")["secondary_status"] == "Training"
    # a login posted from another origin is refused as well (login CSRF)
    assert httpx.post(f"{url}/login", data={"token": TOKEN}, headers={"Origin": "http://attacker.example"},
                      timeout=10).status_code == 403
    # the same form from the console's own origin works
    done = httpx.post(f"{url}/jobs/guarded-2/stop", cookies=jar, headers={"Origin": url}, timeout=10)
    assert done.status_code == 303
    assert JobStore().get("guarded-2")["secondary_status"] in ("Stopping", "Stopped")
    assert "/login?next=" not in done.headers["location"]


def test_login_in_the_browser(guarded, browser, monkeypatch, tmp_path):
    monkeypatch.setenv("OCULI_HOME", str(guarded.home))
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{guarded.url}/datasets")
    assert page.url.endswith("/login?next=/datasets")
    page.fill("#token", "not-it")
    page.click("#login")
    assert "wrong token" in page.inner_text("[role=alert]")
    page.fill("#token", TOKEN)
    page.click("#login")
    page.wait_for_url("**/datasets")
    page.screenshot(path=str(tmp_path / "console-after-login.png"))
    cookie = next(c for c in context.cookies() if c["name"] == "oculi_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it
    page.click("text=Log out")
    page.wait_for_url("**/login")
    context.close()
