"""Monitoring schedules and their executions (SageMaker's CreateMonitoringSchedule / ListMonitoringExecutions):
a schedule checks the traffic captured since its last execution every ``every`` seconds; each execution is
recorded in the store's catalog (kind ``mon-execution``) with its window, status and violations, writes its outputs
under ``OUTPUT/<schedule>/<yyyy-mm-ddThh-mm-ss-mmm>/`` and leaves its drift scores where the endpoint's ``/metrics``
reads them (:func:`scores_path`). Each violation can be POSTed as JSON to an alert URL."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from oculi.errors import ConfigError, OculiError
from oculi.jobs.store import JobStore
from oculi.monitoring.monitor import check

SCHEDULE = "mon-schedule"
EXECUTION = "mon-execution"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(every: str) -> int:
    """``30s``, ``15m``, ``1h``, ``1d`` → seconds."""
    try:
        seconds = int(float(every[:-1]) * UNITS[every[-1]])
    except (KeyError, ValueError, IndexError):
        raise ConfigError(f"--every {every!r}: give a number and s, m, h or d, e.g. 1h.") from None
    if seconds < 1:
        raise ConfigError(f"--every {every!r}: at least one second.")
    return seconds


def scores_path(endpoint: str, schedule: str) -> Path:
    """Where a schedule leaves its latest drift scores for ``endpoint``'s ``/metrics``."""
    from oculi.settings import oculi_home

    return oculi_home() / "monitoring" / endpoint / f"{schedule}.json"


def _post(url: str, body: dict[str, Any]) -> str | None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - the user's own alert URL
            response.read()
        return None
    except OSError as e:
        return f"alert to {url} failed: {e}"


def run_execution(name: str, spec: dict[str, Any], since: datetime, until: datetime,
                  store: JobStore) -> dict[str, Any]:
    """One execution of schedule ``name`` over ``[since, until)``; recorded whatever happens (a failed check is
    an execution with status ``Failed`` and its reason)."""
    stamp = f"{until:%Y-%m-%dT%H-%M-%S}-{until.microsecond // 1000:03d}"  # two executions in one second stay apart
    output = Path(spec["output"]) / name / stamp
    info: dict[str, Any] = {"schedule": name, "window": {"since": since.isoformat(), "until": until.isoformat()},
                            "output": str(output), "started": datetime.now(UTC).isoformat()}
    try:
        report = check(spec["capture"], spec["baseline"], output, endpoint=spec.get("endpoint"), since=since,
                       until=until)
    except OculiError as e:
        info.update(status="Failed", failure_reason=str(e))
    else:
        violations = json.loads((output / "constraint_violations.json").read_text())["violations"]
        info.update(status="CompletedWithViolations" if violations else "Completed", images=report["images"],
                    violations=len(violations), bad_lines=len(report["bad_lines"]))
        scores = {t["feature"]: {"effect": t["effect"], "p_adjusted": t["p_adjusted"], "flagged": t["flagged"]}
                  for t in report["tests"]}
        if spec.get("endpoint") and report["tests"]:  # a window too small to test keeps the last scores
            path = scores_path(spec["endpoint"], name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"schedule": name, "until": until.isoformat(), "violations": len(violations),
                                        "scores": scores}))
        alerts = [_post(spec["alert_url"], {"schedule": name, "endpoint": spec.get("endpoint"),
                                            "window": info["window"], "output": str(output), **v})
                  for v in violations] if spec.get("alert_url") else []
        info["alert_errors"] = [a for a in alerts if a]
    info["ended"] = datetime.now(UTC).isoformat()
    store.register(EXECUTION, f"{name}/{stamp}", str(output), info)
    return info


def executions(name: str, store: JobStore | None = None) -> list[dict[str, Any]]:
    """The recorded executions of schedule ``name``, oldest first."""
    store = store or JobStore()
    rows = [r for r in store.registered(EXECUTION) if r["name"].startswith(f"{name}/")]
    return sorted(rows, key=lambda r: r["name"])


def schedule(name: str, *, capture: str | Path, baseline: str | Path, every: str, output: str | Path,
             endpoint: str | None = None, alert_url: str | None = None, max_executions: int | None = None,
             store: JobStore | None = None, echo: Callable[[dict[str, Any]], None] | None = None,
             sleep: Callable[[float], None] = time.sleep) -> list[dict[str, Any]]:
    """Record schedule ``name`` and run it in this process: one execution every ``every`` over the traffic captured
    since the previous one (the first covers the last ``every``), until ``max_executions`` (None: until
    interrupted). Returns the executions this call ran."""
    import os

    from oculi.processes import process_token

    store = store or JobStore()
    seconds = parse_every(every)
    if running(name, store) is not None:
        raise ConfigError(f"monitoring schedule {name!r} already runs (process {running(name, store)}); stop it "
                          f"first: oculi monitor stop {name}")
    spec = {"capture": str(Path(capture).resolve()), "baseline": str(Path(baseline).resolve()), "every": every,
            "output": str(Path(output).resolve()), "endpoint": endpoint, "alert_url": alert_url,
            "pid": os.getpid(), "process_token": process_token(os.getpid())}
    store.unregister(SCHEDULE, name)  # running it again updates its settings; its executions stay
    store.register(SCHEDULE, name, spec["output"], spec)
    done: list[dict[str, Any]] = []
    previous = executions(name, store)
    since = (datetime.fromisoformat(previous[-1]["info"]["window"]["until"]) if previous
             else datetime.now(UTC) - timedelta(seconds=seconds))
    try:
        while max_executions is None or len(done) < max_executions:
            until = datetime.now(UTC)
            info = run_execution(name, spec, since, until, store)
            done.append(info)
            if echo:
                echo(info)
            since = until
            if max_executions is not None and len(done) >= max_executions:
                break
            sleep(max(0.0, seconds - (datetime.now(UTC) - until).total_seconds()))
    finally:  # no process runs it any more (Ctrl-C, `oculi monitor stop`, --executions reached)
        store.unregister(SCHEDULE, name)
        store.register(SCHEDULE, name, spec["output"], {**spec, "pid": None, "process_token": None})
    return done


def running(name: str, store: JobStore | None = None) -> int | None:
    """The pid of the process that runs schedule ``name`` (foreground or ``--detach``), or None when none does."""
    from oculi.processes import is_alive

    store = store or JobStore()
    found = [s for s in store.registered(SCHEDULE) if s["name"] == name]
    info = found[0]["info"] if found else {}
    return info["pid"] if is_alive(info.get("pid"), info.get("process_token")) else None


def start_detached(name: str, arguments: list[str], output: str | Path) -> int:
    """Run ``oculi monitor schedule NAME ARGUMENTS…`` in the background (its own session: it outlives the shell);
    its output goes to ``OUTPUT/NAME/schedule.log``. Returns its pid."""
    from oculi.processes import start_background

    log = Path(output).resolve() / name / "schedule.log"
    return start_background(["oculi.cli", "monitor", "schedule", name, *arguments], log).pid


def stop(name: str, store: JobStore | None = None, timeout: float = 30.0) -> bool:
    """Stop the process running schedule ``name`` (SIGINT, as Ctrl-C: an execution in progress is cut, the next
    run resumes from the last recorded window); True when one ran. Raises :class:`ConfigError` for an unknown
    schedule."""
    import os
    import signal

    store = store or JobStore()
    if not any(s["name"] == name for s in store.registered(SCHEDULE)):
        raise ConfigError(f"no monitoring schedule named {name!r}; `oculi monitor schedules` lists them.")
    pid = running(name, store)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while running(name, store) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    if running(name, store) is not None:
        os.kill(pid, signal.SIGKILL)
    return True
