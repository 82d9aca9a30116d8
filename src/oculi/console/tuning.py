"""The console's tuning pages: ``/tuning`` (the tuning jobs) and ``/tuning/{name}`` (a tuning job's trials table,
objective per trial with the best so far, and Optuna's hyperparameter importances). They read through the same
API as ``oculi jobs describe`` (:mod:`oculi.tuning.report`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from oculi.errors import JobError
from oculi.jobs.store import iso

PAGE_SIZE = 50


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
        return render(request, "tuning_job.html", job=job, cfg=cfg, described=describe(job, store), trials=rows,
                       best=best, names=list(cfg.ranges), duration=_duration(job),
                       chart=json.dumps({"points": points, "maximize": cfg.objective_type == "Maximize",
                                         "objective": cfg.objective, "importances": _importances(job, tuned)}))

    return r
