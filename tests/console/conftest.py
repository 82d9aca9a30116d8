"""Fixtures for the console tests: ``oculi console`` as a real uvicorn server (a child process on a free loopback
port, like the control-plane tests) and headless Chromium driven by Playwright, with every console error and failed
request recorded. The browser tests skip, with the reason, where Chromium or Playwright is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

CHROMIUM = os.environ.get("OCULI_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]



@dataclass
class Console:
    """A running ``oculi console``: base ``url``, its ``home`` and the process."""

    url: str
    home: Path
    proc: subprocess.Popen
    token: str | None = None

    def output(self) -> str:
        """What the server printed so far (after it was stopped)."""
        return self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""


def start_console(home: Path, token: str | None = None, extra_env: dict[str, str] | None = None) -> Console:
    """Start ``oculi console`` on a free port with ``OCULI_HOME=home`` and wait until it answers."""
    port = free_port()
    env = {**os.environ, "OCULI_HOME": str(home), **(extra_env or {})}
    env.pop("OCULI_TOKEN", None)
    if token:
        env["OCULI_TOKEN"] = token
    proc = subprocess.Popen([sys.executable, "-c", "from oculi.cli import main; main()", "console", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180  # hang guard: a loaded 2-core machine takes a while to import torch
    while True:
        try:
            httpx.get(f"{url}/static/favicon.svg", timeout=2)
            return Console(url, home, proc, token)
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"oculi console did not start:\n{proc.stdout.read().decode()}") from None
            time.sleep(0.2)


def stop_console(console: Console) -> None:
    console.proc.terminate()
    try:
        console.proc.wait(30)
    except subprocess.TimeoutExpired:
        console.proc.kill()
        console.proc.wait()


@pytest.fixture(scope="module")
def console_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The OCULI_HOME of the module's console (the tests write the store there before they look)."""
    return tmp_path_factory.mktemp("console-home")


@pytest.fixture(scope="module")
def console(console_home: Path) -> Iterator[Console]:
    """``oculi console`` without a token, for the whole module."""
    served = start_console(console_home)
    yield served
    stop_console(served)


@pytest.fixture
def home_env(console_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this test process at the console's OCULI_HOME (to write jobs into the store it reads)."""
    monkeypatch.setenv("OCULI_HOME", str(console_home))
    return console_home


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """Headless Chromium (Debian's package) through Playwright; skipped with the reason when either is absent. One per
    test package, closed at its end: while Playwright's sync API lives it keeps an event loop running in the main
    thread, which would break ``asyncio.run`` in later packages' tests (and a second sync Playwright)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright; its browser download is not needed)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """A browser page with what went wrong on it: console errors, page errors, failed and refused requests."""

    page: object
    problems: list[str] = field(default_factory=list)

    def check(self, where: str) -> None:
        """Fail naming every console error and failed request seen so far (then start a fresh list)."""
        problems, self.problems[:] = list(self.problems), []
        assert not problems, f"{where}: " + "\n".join(problems)


@pytest.fixture
def page(browser, request) -> Iterator[Watched]:
    """A fresh 1280×800 browser page whose console errors, uncaught exceptions, failed requests and HTTP errors are
    recorded (``Watched.check``)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    p = context.new_page()
    watched = Watched(p)
    p.on("console", lambda m: m.type == "error" and watched.problems.append(f"console error: {m.text}"))
    p.on("pageerror", lambda e: watched.problems.append(f"page error: {e}"))
    # net::ERR_ABORTED is Chromium cancelling a request in flight because the page navigated or reloaded (a
    # prefetch the test's reload cut short); the console's scripts never abort a request themselves
    p.on("requestfailed", lambda r: watched.problems.append(f"request failed: {r.url} ({r.failure})")
         if "/events" not in r.url and "ERR_ABORTED" not in (r.failure or "") else None)
    p.on("response", lambda r: r.status >= 400 and watched.problems.append(f"HTTP {r.status}: {r.url}"))
    p.set_default_timeout(60_000)
    yield watched
    context.close()


def until(page, expression: str, timeout: float = 60, what: str = "") -> object:
    """Poll the page's ``expression`` (JavaScript) every 0.1 s until it is truthy; returns its value. Playwright's
    ``wait_for_function`` evaluates strings with ``eval``, which the console's Content-Security-Policy forbids.
    A navigation in between is waited out. ``timeout`` is a hang guard, not a speed assertion."""
    from playwright.sync_api import Error

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = page.evaluate(expression)
        except Error as e:  # the page is navigating (a form's redirect, the job page reloading as the job ends),
            # or the new document is still being parsed and the element is not there yet (null.textContent)
            if not any(sign in str(e) for sign in ("context was destroyed", "navigat", "of null")):
                raise
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"hang guard: {what or expression} still false after {timeout} s")
        time.sleep(0.1)


def fake_job(store, name: str, end: str = "Completed", *, epochs: int = 0, model_dir: Path | None = None,
             log: str = "", algorithm: str = "image-classification", created: float | None = None) -> dict:
    """Record a job that ran elsewhere: created attached (so no queue starts a worker for it), moved through the
    statuses to ``end`` (Completed, Stopped, MaxRuntimeExceeded, Failed, or Training to leave it running), with
    ``epochs`` epochs of metrics, a log and, for a completed job, ``model_dir`` as its model. ``created``
    back-dates it."""
    job_dir = Path(store.url.removeprefix("sqlite:///")).parent / "jobs" / name
    (job_dir / "logs").mkdir(parents=True, exist_ok=True)
    (job_dir / "logs" / "train.log").write_text(log)
    store.create({"name": name, "algorithm": algorithm, "job_dir": str(job_dir),
                  "model_dir": str(model_dir or job_dir / "output" / "model"),
                  "log_path": str(job_dir / "logs" / "train.log"),
                  "spec": {"attached": True, "channels": {"train": "/data/train"},
                           "hyperparameters": {"epochs": str(max(1, epochs)), "learning_rate": "auto"}}})
    if created is not None:
        store.update(name, created_at=created)
    path = {"Completed": ("Starting", "Training", "Uploading", "Completed"), "Stopped": ("Stopping", "Stopped"),
            "Failed": ("Failed",), "Training": ("Starting", "Training"),
            "MaxRuntimeExceeded": ("Starting", "Training", "MaxRuntimeExceeded")}[end]
    for status in path:
        fields = {"training_start": time.time()} if status == "Training" else {}
        if status in ("Completed", "Stopped", "Failed", "MaxRuntimeExceeded"):
            fields["training_end"] = time.time()
        if status == "Training":
            fields["hyperparameters"] = {"epochs": max(1, epochs), "learning_rate": 0.05, "mini_batch_size": 8}
        store.transition(name, status, f"test: {status}", **fields)
    for epoch in range(1, epochs + 1):
        store.add_metrics(name, {"train:loss": 1.0 / epoch, "validation:loss": 1.2 / epoch,
                                 "validation:accuracy": 1 - 0.5 / epoch}, epoch=epoch)
    return store.get(name)
