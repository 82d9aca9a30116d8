"""The console's monitoring pages: ``/monitoring`` lists the monitoring schedules (``oculi monitor schedule``) with
their latest execution, ``/monitoring/{name}`` a schedule's executions, its drift over time (each feature's effect
size per execution, drawn on the server as an SVG), the latest violations and example images — captured images of
the latest execution that raised violations beside baseline training images — and a form that sends that
execution's images to a labeling job (:func:`oculi.monitoring.monitor.export_for_labeling`, what ``oculi monitor
export-for-labeling`` does).

Images are served by id only: ``/monitoring/{name}/capture/{stamp}/{event_id}`` serves the image that execution's
``drift.json`` lists for that event, ``/monitoring/{name}/baseline/{index}`` the training image ``index`` of the
baseline's dataset; nothing else can be reached through them."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from oculi.errors import DataError, JobError, OculiError

EXAMPLES = 8  # captured and baseline images shown side by side
# the chart's drawing area (SVG units; the SVG scales to its column)
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 960, 300, 70, 16, 12, 40
SHOWN = 100  # the newest executions in the table and the chart
LABEL_BELOW = 0.6  # the labeling form's default: a calm window sends the images the model is least sure of
# execution status → the badge colour class console.css has
BADGE = {"Completed": "Completed", "CompletedWithViolations": "Stopped", "Failed": "Failed"}


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _when(value: str | None) -> str:
    """An ISO time as ``yyyy-mm-dd hh:mm:ss`` (UTC as recorded)."""
    return (value or "")[:19].replace("T", " ")


def _schedule(store: Any, name: str) -> dict[str, Any]:
    from oculi.monitoring.schedule import SCHEDULE

    found = [s for s in store.registered(SCHEDULE) if s["name"] == name]
    if not found:
        raise JobError(f"No monitoring schedule named {name!r}; the Monitoring page lists them, `oculi monitor "
                       f"schedule {name} --capture … --baseline … --every 1h` starts one.")
    return found[0]


def _execution(store: Any, name: str, stamp: str) -> dict[str, Any]:
    from oculi.monitoring.schedule import executions

    for row in executions(name, store):
        if row["name"] == f"{name}/{stamp}":
            return row
    raise JobError(f"No execution {stamp!r} of monitoring schedule {name!r}.")


def _drift(row: dict[str, Any]) -> dict[str, Any]:
    return _read_json(Path(row["location"]) / "drift.json") or {}


def _chart(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The drift-over-time chart: x one step per execution (oldest left), y each feature's effect size; returns
    ``{series: [{feature, cls, d, dots: [{x, y, flagged, title}]}], xticks, yticks, ...}``."""
    features = list(dict.fromkeys(t["feature"] for run in runs for t in run["tests"]))
    top = max([t["effect"] for run in runs for t in run["tests"]] + [0.1])
    top = next(v for v in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, top) if v >= top)
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return round(LEFT + (inner_w / 2 if len(runs) == 1 else inner_w * i / (len(runs) - 1)), 1)

    def y(v: float) -> float:
        return round(TOP + inner_h * (1 - min(v, top) / top), 1)

    series = []
    for n, feature in enumerate(features):
        dots = []
        for i, run in enumerate(runs):
            test = next((t for t in run["tests"] if t["feature"] == feature), None)
            if test is not None:
                dots.append({"x": x(i), "y": y(test["effect"]), "flagged": test["flagged"],
                             "title": f"{feature} · {run['stamp']}: effect {test['effect']:.3g}, "
                                      f"p adj. {test['p_adjusted']:.2g}{' · flagged' if test['flagged'] else ''}"})
        d = " ".join(f"{'M' if k == 0 else 'L'}{dot['x']},{dot['y']}" for k, dot in enumerate(dots))
        series.append({"feature": feature, "cls": f"c{n % 8}" + (" dashed" if n >= 8 else ""), "d": d,
                       "dots": dots})
    step = max(1, -(-len(runs) // 6))  # at most about 6 time labels
    last = len(runs) - 1
    xticks = [{"x": x(i), "label": f"{run['stamp'][5:10]} {run['stamp'][11:19].replace('-', ':')}",
               "anchor": "middle" if not last else "start" if i == 0 else "end" if i == last else "middle",
               "mid": 0 < i < last} for i, run in enumerate(runs) if i % step == 0 or i == last]
    yticks = [{"y": y(top * k / 4), "label": f"{top * k / 4:g}"} for k in range(5)]
    return {"series": series, "xticks": xticks, "yticks": yticks, "width": WIDTH, "height": HEIGHT,
            "left": LEFT, "right": WIDTH - RIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM,
            "points": sum(len(s["dots"]) for s in series)}


def _spread(count: int, k: int = EXAMPLES) -> list[int]:
    """Up to ``k`` indices spread evenly over ``range(count)``."""
    return sorted({i * count // k for i in range(k)}) if count > k else list(range(count))


@lru_cache(maxsize=8)
def _baseline_images(data: str, stamp: float) -> tuple[Path, ...]:
    """The training images of a baseline's dataset (``stamp``: the dataset's mtime, so an edit re-reads)."""
    from oculi.analysis.audit import read_sets

    _, sets = read_sets([data])
    split = sets.get("train") or next(iter(sets.values()))
    return tuple(dict.fromkeys(s.image for s in split.samples))


def baseline_images(baseline: str) -> tuple[Path, ...]:
    """The training images the baseline folder's ``baseline.json`` names through its dataset (none when it or
    the dataset cannot be read)."""
    info = _read_json(Path(baseline) / "baseline.json") or {}
    data = info.get("data")
    if not data or not Path(data).exists():
        return ()
    try:
        return _baseline_images(str(data), Path(data).stat().st_mtime)
    except (OculiError, OSError):
        return ()


def _run(row: dict[str, Any]) -> dict[str, Any]:
    """An execution as the schedule page shows it: its catalog row and info, its drift tests, notes, events and
    violations (read from its output folder)."""
    info, report = row["info"], _drift(row)
    violations = (_read_json(Path(row["location"]) / "constraint_violations.json") or {}).get("violations", [])
    stamp = row["name"].partition("/")[2]
    return {"row": row, "stamp": stamp, "day": stamp[:10], "time": stamp[11:].replace("-", ":"), "info": info,
            "tests": report.get("tests", []), "notes": report.get("notes", []), "events": report.get("events", []),
            "violations": violations if isinstance(violations, list) else [],
            "since": _when((info.get("window") or {}).get("since")),
            "until": _when((info.get("window") or {}).get("until"))}


def _missing(message: str) -> Response:
    """A 404 for an image that is not listed (an image request: the JSON error shape, not a page)."""
    from oculi.serving.http import error_response

    return error_response(404, "NotFound", message)


def _row(store: Any, item: dict[str, Any]) -> dict[str, Any]:
    from oculi.monitoring.schedule import executions, running

    runs = executions(item["name"], store)
    last = runs[-1]["info"] if runs else {}
    return {"name": item["name"], "endpoint": item["info"].get("endpoint"), "every": item["info"].get("every"),
            "pid": running(item["name"], store),
            "executions": len(runs), "status": last.get("status"), "violations": last.get("violations"),
            "last": _when((last.get("window") or {}).get("until"))}


def router() -> APIRouter:
    """The monitoring pages and their image routes."""
    from oculi.console.pages import render, store_of
    from oculi.monitoring.schedule import SCHEDULE, executions, running

    r = APIRouter(include_in_schema=False)

    @r.get("/monitoring")
    def monitoring(request: Request) -> HTMLResponse:
        store = store_of(request)
        return render(request, "monitoring.html", badge=BADGE,
                      schedules=[_row(store, s) for s in store.registered(SCHEDULE)])

    def page(request: Request, name: str, error: str | None = None, values: dict[str, str] | None = None,
             status_code: int = 200) -> HTMLResponse:
        store = store_of(request)
        item = _schedule(store, name)
        rows = executions(name, store)
        runs = [_run(row) for row in rows[-SHOWN:]]  # each reads its drift.json: the newest SHOWN only
        latest = runs[-1] if runs else None
        flagged = next((row for row in reversed(rows) if row["info"].get("violations")), None)
        alarm = None if flagged is None else next((run for run in runs if run["row"] is flagged), None) or \
            _run(flagged)
        captured = []
        if alarm is not None:
            events = [e for e in alarm["events"] if e.get("event_id")]
            captured = [{"src": f"/monitoring/{quote(name)}/capture/{quote(alarm['stamp'])}/"
                                f"{quote(str(events[i]['event_id']), safe='')}",
                         "caption": _when(events[i].get("time"))} for i in _spread(len(events))]
        training = baseline_images(item["info"].get("baseline", ""))
        base = [{"src": f"/monitoring/{quote(name)}/baseline/{i}",
                 "caption": f"{training[i].parent.name}/{training[i].name}"} for i in _spread(len(training))]
        charted = [run for run in runs if run["tests"]]
        # the execution the labeling form sends: the latest that raised violations, else the latest with images
        target = alarm or next((run for run in reversed(runs) if run["events"]), None)
        return render(request, "monitoring_schedule.html", status_code, badge=BADGE, name=name, spec=item["info"],
                      runs=list(reversed(runs)), total=len(rows), shown=SHOWN, latest=latest, alarm=alarm,
                      captured=captured, base=base, chart=_chart(charted) if charted else None, target=target,
                      pid=running(name, store),
                      confidence_below=LABEL_BELOW, error=error,
                      values=values or {"job": f"{name}-relabel", "confidence_below": str(LABEL_BELOW)})

    @r.get("/monitoring/{name}")
    def schedule_page(request: Request, name: str) -> HTMLResponse:
        return page(request, name)

    @r.post("/monitoring/{name}/label")
    async def send_to_labeling(request: Request, name: str) -> Response:
        from oculi.monitoring.monitor import export_for_labeling

        store = store_of(request)
        _schedule(store, name)
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        job = form.get("job", "")
        try:
            row = _execution(store, name, form.get("stamp", ""))
            try:
                below = float(form.get("confidence_below") or LABEL_BELOW)
            except ValueError:
                raise DataError(f"confidence below {form.get('confidence_below')!r} is not a number; give one "
                                "between 0 and 1.") from None
            if not 0 < below <= 1:
                raise DataError(f"confidence below {below:g} is outside (0, 1]; give one between 0 and 1.")
            await run_in_threadpool(export_for_labeling, row["location"], job, confidence_below=below, store=store)
        except OculiError as e:
            return page(request, name, str(e), form, 400)
        return RedirectResponse(f"/labeling/{quote(job)}", status_code=303)

    @r.get("/monitoring/{name}/capture/{stamp}/{event_id}")
    def captured_image(request: Request, name: str, stamp: str, event_id: str) -> Response:
        try:
            row = _execution(store_of(request), name, stamp)
        except JobError as e:
            return _missing(str(e))
        listed = next((e.get("image") for e in _drift(row).get("events", []) if e.get("event_id") == event_id), None)
        if not listed or not Path(listed).is_file():
            return _missing(f"no captured image {event_id!r} in execution {stamp!r} of schedule {name!r}.")
        return FileResponse(listed, headers={"Cache-Control": "private, max-age=300"})

    @r.get("/monitoring/{name}/baseline/{index}")
    def baseline_image(request: Request, name: str, index: int) -> Response:
        try:
            item = _schedule(store_of(request), name)
        except JobError as e:
            return _missing(str(e))
        images = baseline_images(item["info"].get("baseline", ""))
        if not 0 <= index < len(images) or not images[index].is_file():
            return _missing(f"no baseline image {index} of schedule {name!r}.")
        return FileResponse(images[index], headers={"Cache-Control": "private, max-age=300"})

    return r
