"""The console's labeling pages: the labeling jobs list and create form, a job's page (counters, automated-labeling
rounds, export / stop), and the annotation page of each annotation kind (classes, boxes, masks), with the small
JSON API they call. Everything goes through :mod:`oculi.labeling` — the same calls ``oculi label`` makes.

Each browser gets a labeler id in an HttpOnly cookie (``oculi_labeler``) the first time it opens an annotation
page; the item queue leases images to that id, so a reload shows the same image and two browsers never get the
same one."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from oculi.console.pages import render, store_of
from oculi.errors import ConfigError, DataError, JobError, OculiError
from oculi.jobs.store import JobStore, iso

LABELER_COOKIE = "oculi_labeler"
TASKS = ("classification", "detection", "segmentation")


def _labeler(request: Request) -> str:
    worker = request.cookies.get(LABELER_COOKIE, "")
    if not (8 <= len(worker) <= 64 and worker.isalnum()):
        raise ConfigError("this browser has no labeler id; open the job's annotation page first (it sets one).")
    return worker


def _exclude(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"exclude={text!r} is not a comma-separated list of item indices.") from None


def _job_row(store: JobStore, job: dict[str, Any]) -> dict[str, Any]:
    from oculi.labeling.jobs import counters

    return {"name": job["name"], "task": job["task"], "status": job["status"], "counters": counters(store, job["name"]),
            "created": (iso(job["created_at"]) or "")[:19].replace("T", " ")}


def router() -> APIRouter:
    """The labeling pages and their JSON API."""
    from oculi.labeling import jobs

    r = APIRouter(include_in_schema=False)

    def listing(request: Request, error: str | None = None, values: dict[str, str] | None = None,
                status_code: int = 200) -> HTMLResponse:
        store = store_of(request)
        return render(request, "labeling_jobs.html", status_code, jobs=[_job_row(store, j)
                                                                         for j in store.labeling_jobs()],
                       tasks=TASKS, error=error, values=values or {},
                       datasets=store.registered("dataset"))

    @r.get("/labeling")
    def labeling_jobs(request: Request) -> HTMLResponse:
        return listing(request)

    @r.post("/labeling")
    async def create(request: Request) -> Response:
        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        try:
            job = await run_in_threadpool(
                jobs.create, form.get("name", ""), form.get("task", ""), form.get("input", ""),
                form.get("classes", ""), multi_label=form.get("multi_label") == "on",
                instructions=form.get("instructions") or None, store=store_of(request))
        except OculiError as e:
            return listing(request, str(e), form, 400)
        return RedirectResponse(f"/labeling/{job['name']}", status_code=303)

    def job_page_of(request: Request, name: str, error: str | None = None, values: dict[str, str] | None = None,
                    status_code: int = 200) -> HTMLResponse:
        from oculi.labeling.auto import MIN_HUMAN, auto_label_running, last_auto_label_failure

        store = store_of(request)
        described = jobs.describe(name, store)
        job = store.labeling_job(name)
        return render(request, "labeling_job.html", status_code, job=job, described=described,
                      rounds=described.get("AutomatedLabeling", []), running=auto_label_running(job),
                      failure=last_auto_label_failure(job), min_human=MIN_HUMAN, error=error,
                      values=values or {"accuracy": "0.95", "hyperparameters": ""})

    @r.get("/labeling/{name}")
    def job_page(request: Request, name: str) -> HTMLResponse:
        return job_page_of(request, name)

    @r.post("/labeling/{name}/auto")
    async def auto(request: Request, name: str) -> Response:
        from oculi.config import parse_assignments
        from oculi.labeling.auto import start_auto_label

        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        try:
            try:
                accuracy = float(form.get("accuracy") or 0.95)
            except ValueError:
                raise ConfigError(f"target accuracy {form.get('accuracy')!r} is not a number; give one in (0, 1), "
                                  "e.g. 0.95.") from None
            hyperparameters = parse_assignments(form.get("hyperparameters", "").split())
            await run_in_threadpool(start_auto_label, name, accuracy=accuracy,
                                    hyperparameters={k: str(v) for k, v in hyperparameters.items()},
                                    store=store_of(request))
        except OculiError as e:
            return job_page_of(request, name, str(e), form, 400)
        return RedirectResponse(f"/labeling/{name}", status_code=303)

    @r.post("/labeling/{name}/{action}")
    async def act(request: Request, name: str, action: str) -> Response:
        store = store_of(request)
        if action == "export":
            await run_in_threadpool(jobs.export, name, None, store)
        elif action == "stop":
            await run_in_threadpool(jobs.stop, name, store)
        else:
            raise JobError(f"No action {action!r} for labeling jobs; use export or stop.")
        return RedirectResponse(f"/labeling/{name}", status_code=303)

    @r.get("/labeling/{name}/annotate")
    def annotate(request: Request, name: str) -> HTMLResponse:
        store = store_of(request)
        job = store.labeling_job(name)
        kind = jobs.kind_of(job)
        response = render(request, "labeling_annotate.html", job=job, kind=kind.name, module=kind.page,
                           categories=job["spec"]["categories"], multi_label=bool(job["spec"].get("multi_label")),
                           counters=jobs.counters(store, name))
        if not request.cookies.get(LABELER_COOKIE):
            response.set_cookie(LABELER_COOKIE, secrets.token_hex(16), httponly=True, samesite="strict", path="/",
                                max_age=365 * 24 * 3600)
        return response

    @r.get("/labeling/{name}/image/{idx}")
    def image(request: Request, name: str, idx: int) -> Response:
        path = Path(store_of(request).labeling_item(name, idx)["source"]["image"])
        if not path.is_file():
            raise DataError(f"{path} (item {idx} of labeling job {name!r}) no longer exists.")
        return FileResponse(path, headers={"Cache-Control": "private, max-age=3600"})

    @r.get("/api/labeling/{name}/next")
    async def next_item(request: Request, name: str, exclude: str = "") -> JSONResponse:
        store = store_of(request)
        worker = _labeler(request)
        item = await run_in_threadpool(jobs.next_item, name, worker, _exclude(exclude), store)
        job = store.labeling_job(name)
        return JSONResponse({"item": None if item is None else jobs.item_view(job, item),
                             "counters": jobs.counters(store, name), "status": job["status"]})

    @r.get("/api/labeling/{name}/mine")
    def mine(request: Request, name: str) -> JSONResponse:
        return JSONResponse({"labeled": store_of(request).labeled_by(name, _labeler(request))})

    @r.get("/api/labeling/{name}/items/{idx}")
    def item(request: Request, name: str, idx: int) -> JSONResponse:
        store = store_of(request)
        job = store.labeling_job(name)
        return JSONResponse({"item": jobs.item_view(job, store.labeling_item(name, idx)),
                             "counters": jobs.counters(store, name), "status": job["status"]})

    @r.post("/api/labeling/{name}/items/{idx}")
    async def save(request: Request, name: str, idx: int) -> JSONResponse:
        store = store_of(request)
        try:
            body = await request.json()
        except ValueError:
            raise ConfigError("the label must be a JSON body, e.g. {\"classes\": [0]}.") from None
        saved = await run_in_threadpool(jobs.save_label, name, idx, body, _labeler(request), store=store)
        return JSONResponse({"saved": saved["idx"], "counters": jobs.counters(store, name)})

    @r.post("/api/labeling/{name}/items/{idx}/mask")
    async def save_mask(request: Request, name: str, idx: int, width: int, height: int) -> JSONResponse:
        from oculi.labeling.masks import decode_runs

        store = store_of(request)
        values = decode_runs(await request.body(), width, height)
        await run_in_threadpool(jobs.save_label, name, idx, {"width": width, "height": height}, _labeler(request),
                                mask=values, store=store)
        return JSONResponse({"saved": idx, "counters": jobs.counters(store, name)})

    @r.get("/api/labeling/{name}/items/{idx}/mask")
    def mask(request: Request, name: str, idx: int, proposal: bool = False) -> Response:
        from oculi.labeling.masks import encode_runs, load_values, mask_path, proposal_path

        job = store_of(request).labeling_job(name)
        path = (proposal_path if proposal else mask_path)(jobs.output_dir(job), idx)
        if not path.is_file():
            return Response(status_code=204)
        return Response(encode_runs(load_values(path)), media_type="application/octet-stream")

    @r.post("/api/labeling/{name}/items/{idx}/release")
    def release(request: Request, name: str, idx: int) -> JSONResponse:
        store_of(request).release_item(name, idx, _labeler(request))
        return JSONResponse({"released": idx})

    return r
