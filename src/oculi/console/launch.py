"""Endpoint servers started from the console: the Endpoints page's form picks a model the store knows and starts
``oculi serve MODEL --host 127.0.0.1 --port <free port>`` as a long-running process of its own (its own session,
so it outlives the console), recorded in the store as an ``endpoint`` with its pid; the page shows it running,
starting or dead, and its Stop button ends the process (SIGTERM: requests in flight finish) and forgets it.

A console restarted on the same ``OCULI_HOME`` finds the servers it started still running: the record holds the
process's pid and start-time token (:func:`oculi.jobs.runner.process_token`), so a pid reused by another program
after the server died reads as dead and is never signalled."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from oculi.errors import ConfigError
from oculi.processes import reap_children, start_background

STOP_GRACE_SECONDS = 35.0  # `oculi serve` finishes requests in flight for up to 30 s on SIGTERM
LOG_TAIL_BYTES = 2000

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(store: Any, name: str, model: str) -> dict[str, Any]:
    """Start ``oculi serve`` for ``model`` on a free loopback port, recorded as endpoint server ``name``; returns
    the store's record. Its output goes to ``$OCULI_HOME/endpoints/NAME/serve.log``."""
    from oculi.console.pages import find_model
    from oculi.jobs.runner import process_token
    from oculi.jobs.store import NAME_RULE
    from oculi.settings import oculi_home

    if not NAME_RULE.match(name):
        raise ConfigError(f"endpoint server name {name!r} is not valid: use 1–63 letters, digits and hyphens, "
                          "starting with a letter or digit, e.g. ants-serve.")
    if any(item["name"] == name for item in store.registered("endpoint")):
        raise ConfigError(f"an endpoint server named {name!r} is already listed; pick another name or stop it "
                          "first.")
    bundle, _ = find_model(store, model)
    log = oculi_home() / "endpoints" / name / "serve.log"
    port = _free_port()
    child = start_background(["oculi.cli", "serve", str(bundle), "--host", "127.0.0.1", "--port", str(port)], log)
    try:
        return store.register("endpoint", name, f"http://127.0.0.1:{port}", {
            "launched": True, "pid": child.pid, "process_token": process_token(child.pid), "model": model,
            "bundle": str(bundle), "log": str(log), "started_at": time.time()})
    except Exception:
        child.terminate()
        raise


def server_state(item: dict[str, Any], reachable: bool) -> dict[str, Any] | None:
    """``{"state": running | starting | dead, "model", "log"}`` of a server the console started (None for one
    registered by URL): ``starting`` while the process lives but does not answer yet; a dead one's log tail."""
    from oculi.jobs.runner import is_alive

    info = item["info"]
    if not info.get("launched"):
        return None
    reap_children()
    alive = is_alive(info.get("pid"), info.get("process_token"))
    state = ("running" if reachable else "starting") if alive else "dead"
    tail = ""
    if state == "dead":
        log = Path(info.get("log", ""))
        if log.is_file():
            with log.open("rb") as f:
                f.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
                tail = f.read().decode("utf-8", "replace")
    return {"state": state, "model": info.get("model"), "log": tail}


def stop_server(store: Any, name: str) -> bool:
    """End the ``oculi serve`` process of server ``name`` (SIGTERM, SIGKILL after the drain time) and forget the
    record; returns whether a live process was stopped. A server registered by URL is a ConfigError (it is not
    this console's to stop)."""
    from oculi.jobs.runner import is_alive

    item = store.lookup("endpoint", name)
    info = item["info"]
    if not info.get("launched"):
        raise ConfigError(f"endpoint server {name!r} was registered by URL, not started here: stop it where it "
                          "runs (Ctrl-C or SIGTERM to its `oculi serve`).")
    pid, token = info.get("pid"), info.get("process_token")
    was_alive = is_alive(pid, token)
    if was_alive:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while is_alive(pid, token) and time.monotonic() < deadline:
            reap_children()
            time.sleep(0.1)
        if is_alive(pid, token):
            os.kill(pid, signal.SIGKILL)
    reap_children()
    store.unregister("endpoint", name)
    return was_alive


def router() -> APIRouter:
    """``POST /endpoints/start`` (the form) and ``POST /endpoints/NAME/stop``."""
    from starlette.concurrency import run_in_threadpool

    from oculi.console.pages import store_of

    r = APIRouter(include_in_schema=False)

    @r.post("/endpoints/start")
    async def start(request: Request) -> Response:
        from oculi.console.pages import endpoints_page
        from oculi.errors import OculiError

        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        model = form.get("model", "")
        try:
            if not model:
                raise ConfigError("pick the model to serve.")
            await run_in_threadpool(start_server, store_of(request), form.get("name") or model, model)
        except OculiError as e:
            return await endpoints_page(request, 400, start_error=str(e), start_values=form)
        return RedirectResponse("/endpoints", status_code=303)

    @r.post("/endpoints/{name}/stop")
    async def stop(request: Request, name: str) -> Response:
        await run_in_threadpool(stop_server, store_of(request), name)
        return RedirectResponse(f"/endpoints?stopped={quote(name)}", status_code=303)

    return r
