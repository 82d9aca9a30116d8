"""The console's tuning pages: ``/tuning`` (the tuning jobs) and ``/tuning/{name}`` (a tuning job's trials table,
objective per trial with the best so far, Optuna's hyperparameter importances, and the trials in parallel
coordinates, drawn on the server as an SVG). They read through the same API as ``oculi jobs describe``
(:mod:`oculi.tuning.report`)."""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from oculi.errors import JobError
from oculi.jobs.store import iso

PAGE_SIZE = 50
# the parallel-coordinates drawing (SVG units): one column per axis, the margins hold the tick labels and names
COLUMN, PC_HEIGHT, PC_LEFT, PC_RIGHT, PC_TOP, PC_BOTTOM = 150, 290, 40, 70, 44, 14


def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values covering ``[lo, hi]`` at 1/2/5 × 10^k steps, about ``count`` of them (chart.js's ``ticks``)."""
    raw = (hi - lo) / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if raw <= m * mag)
    first = math.ceil(lo / step - 1e-9)
    return [float(f"{k * step:.12g}") for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Tick values for a log axis over ``[lo, hi]`` (both > 0): decades, with 2/5 or 3 between them on short
    ranges, or round values inside a range shorter than a decade (chart.js's ``logTicks``)."""
    span = math.log10(hi) - math.log10(lo)
    steps = [1.0] if span > 3 else [1.0, 3.0] if span > 1.5 else [1.0, 2.0, 5.0]
    out = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1) for m in steps]
    out = [float(f"{v:.12g}") for v in out if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]
    return out if len(out) >= 2 else [v for v in _nice_ticks(lo, hi, 4) if v > 0]


def _axis(name: str, p: Any) -> dict[str, Any]:
    """One hyperparameter's axis over its whole range: ``{name, scale, position, ticks: [(position, label)]}``,
    ``position(value)`` being 0 at the bottom … 1 at the top. Logarithmic ranges get a log axis, ReverseLogarithmic
    ones a log(1 − x) axis (values near 1 spread out, as they were searched), categorical ones a tick per value."""
    if p.kind == "categorical":
        index = {v: i for i, v in enumerate(p.values)}

        def position(v: Any) -> float:
            return (index[str(v)] + 0.5) / len(index)

        return {"name": name, "scale": "categorical", "position": position,
                "ticks": [(position(v), v) for v in p.values]}
    lo, hi = float(p.min_value), float(p.max_value)
    scale = {"Logarithmic": "log", "ReverseLogarithmic": "reverse-log"}.get(p.scaling_type, "linear")
    warp = {"log": math.log10, "reverse-log": lambda v: -math.log10(1 - v)}.get(scale, float)
    a, b = warp(lo), warp(hi)

    def position(v: Any) -> float:
        return (warp(float(v)) - a) / (b - a)

    if scale == "log":
        values = _log_ticks(lo, hi)
    elif scale == "reverse-log":
        values = [float(f"{1 - v:.12g}") for v in _log_ticks(1 - hi, 1 - lo)]
    else:
        values = _nice_ticks(lo, hi, 4)
    if p.kind == "integer":
        values = sorted({round(v) for v in values if lo <= round(v) <= hi})
    return {"name": name, "scale": scale, "position": position, "ticks": [(position(v), f"{v:g}") for v in values]}


def parallel_coordinates(rows: list[dict[str, Any]], ranges: dict[str, Any], objective: str, maximize: bool,
                         best: str | None) -> dict[str, Any] | None:
    """The trials (``rows`` of :func:`oculi.tuning.report.trials`) in parallel coordinates, laid out for the
    tuning page's server-rendered SVG: one vertical axis per hyperparameter in ``ranges`` (name → range) over its
    whole range, then the objective's axis over the values reached, higher at the top. A trial with an objective is
    a polyline through its values with a ``shade`` (0 the worst … 10 the best objective); ``best`` (a training job
    name) is marked. A trial that ended without one (stopped, failed) is a faint dashed line through its
    hyperparameters; running trials are left out and counted. None until a trial has ended.

    Returns ``{width, height, top, bottom, axes: [{x, name, scale, ticks: [{y, label}]}], lines: [{points, shade,
    best, job, title}], faint: [{points, job, title}], running}`` (axes also carry ``anchor`` and ``name_x``
    for their names); coordinates are SVG units."""
    ended = [r for r in rows if r["state"] in ("COMPLETE", "PRUNED", "FAIL")]
    if not ended:
        return None
    axes = [_axis(n, p) for n, p in ranges.items()]
    values = [r["objective"] for r in ended if r["objective"] is not None]
    if values:
        lo, hi = min(values), max(values)
        if hi - lo < 1e-12:  # one value: put it in the middle
            lo, hi = lo - (abs(lo) or 1) / 2, hi + (abs(hi) or 1) / 2

        def position(v: float) -> float:
            return (v - lo) / (hi - lo)

        axes.append({"name": objective, "scale": "objective", "position": position,
                     "ticks": [(position(v), f"{v:g}") for v in _nice_ticks(lo, hi, 4)]})
    span = COLUMN * max(1, len(axes) - 1)
    bottom = PC_HEIGHT - PC_BOTTOM

    def x(i: int) -> float:
        return round(PC_LEFT + (span / 2 if len(axes) == 1 else COLUMN * i), 1)

    def y(position: float) -> float:
        return round(bottom - (bottom - PC_TOP) * min(1.0, max(0.0, position)), 1)

    def anchor(i: int) -> str:  # the outer axes' names lean inwards, so that they stay inside the drawing
        return "middle" if len(axes) == 1 or 0 < i < len(axes) - 1 else "start" if i == 0 else "end"

    lines, faint = [], []
    for r in ended:
        shown = [(i, r["hyperparameters"][a["name"]]) for i, a in enumerate(axes[:len(ranges)])
                 if a["name"] in r["hyperparameters"]]
        points = [(x(i), y(axes[i]["position"](v))) for i, v in shown]
        title = f"#{r['index']} {r['job']}: " + ", ".join(f"{axes[i]['name']}={v}" for i, v in shown)
        if r["objective"] is None:
            faint.append({"points": " ".join(f"{a},{b}" for a, b in points), "job": r["job"],
                          "title": f"{title} · {r['secondary_status']}, no {objective}"})
            continue
        t = axes[-1]["position"](r["objective"])
        points.append((x(len(axes) - 1), y(t)))
        lines.append({"points": " ".join(f"{a},{b}" for a, b in points),
                      "shade": round(10 * (t if maximize else 1 - t)), "best": r["job"] == best, "job": r["job"],
                      "title": f"{title} → {objective} {r['objective']:.4f}"})
    lines.sort(key=lambda line: (line["best"], line["shade"]))  # better trials drawn over worse ones, the best last
    return {"width": PC_LEFT + PC_RIGHT + span, "height": PC_HEIGHT, "top": PC_TOP, "bottom": bottom,
            "axes": [{"x": x(i), "name": a["name"], "scale": a["scale"], "anchor": anchor(i),
                      "name_x": {"start": 2, "end": PC_LEFT + PC_RIGHT + span - 2}.get(anchor(i), x(i)),
                      "ticks": [{"y": y(pos), "label": label} for pos, label in a["ticks"]]}
                     for i, a in enumerate(axes)],
            "lines": lines, "faint": faint, "running": len(rows) - len(ended)}


def _importances(job: dict[str, Any], tuned: list[str]) -> dict[str, float]:
    """Optuna's hyperparameter importances (its default evaluator) of the ``tuned`` hyperparameters over the
    completed trials; empty while there are too few of them."""
    import optuna

    from oculi.tuning import study as studies

    studies.quiet()
    study = optuna.load_study(study_name=job["name"], storage=studies.storage(job["spec"]["storage"],
                                                                              job["job_dir"]))
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if len(tuned) < 2 or len(done) < 3 or len({json.dumps(t.params, sort_keys=True) for t in done}) < 2:
        return {}
    try:
        found = optuna.importance.get_param_importances(study, params=tuned)
        return {k: round(float(v), 4) for k, v in found.items()}
    except (RuntimeError, ValueError, ImportError):  # e.g. one value only per parameter
        return {}


def router() -> APIRouter:
    """The tuning page routes."""
    from oculi.console.pages import _duration, render, store_of
    from oculi.tuning.config import TuningConfig
    from oculi.tuning.report import best_trial, describe, trials

    r = APIRouter(include_in_schema=False)

    @r.get("/tuning")
    def tuning_jobs(request: Request, page: int = Query(1, ge=1)) -> HTMLResponse:
        store = store_of(request)
        rows, total = store.page(kind="tuning", offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
        jobs = [{"name": j["name"], "status": j["status"], "secondary": j["secondary_status"],
                 "algorithm": j["algorithm"], "created": (iso(j["created_at"]) or "")[:19].replace("T", " "),
                 "duration": _duration(j), "best": next(iter((j["final_metrics"] or {}).items()), None),
                 "max_jobs": j["spec"]["tuning"]["config"]["ResourceLimits"]["MaxNumberOfTrainingJobs"]}
                for j in rows]
        return render(request, "tuning_jobs.html", jobs=jobs, total=total, page=page,
                       pages=max(1, -(-total // PAGE_SIZE)))

    @r.get("/tuning/{name}")
    def tuning_job(request: Request, name: str) -> HTMLResponse:
        store = store_of(request)
        job = store.get(name)
        if job.get("kind") != "tuning":
            raise JobError(f"{name} is not a tuning job; see /jobs/{name}.")
        cfg = TuningConfig.from_record(job["spec"]["tuning"])
        rows = trials(job, store)
        best = best_trial(rows, cfg.objective_type)
        points = [{"index": t["index"], "objective": t["objective"]} for t in rows if t["objective"] is not None]
        tuned = [n for n, p in cfg.ranges.items() if p.kind != "categorical" or len(p.values) > 1]
        parallel = parallel_coordinates(rows, {n: cfg.ranges[n] for n in tuned}, cfg.objective,
                                        cfg.objective_type == "Maximize", best["job"] if best else None)
        return render(request, "tuning_job.html", job=job, cfg=cfg, described=describe(job, store), trials=rows,
                       best=best, names=list(cfg.ranges), duration=_duration(job), parallel=parallel,
                       chart=json.dumps({"points": points, "maximize": cfg.objective_type == "Maximize",
                                         "objective": cfg.objective, "importances": _importances(job, tuned)}))

    return r
