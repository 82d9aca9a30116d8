"""The console's pages and the few JSON/stream routes they use. Each handler reads through the Python API the CLI
uses — the job store and runner (:mod:`oculi.jobs`), :func:`oculi.jobs.describe.describe`, the algorithm registry
and :func:`oculi.config.describe`, :mod:`oculi.artifacts`, the task registry and the data check — and hands plain
values to a template; nothing here decides what a job, model or dataset is."""

from __future__ import annotations

import asyncio
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse

from oculi.errors import ConfigError, DataError, JobError, OculiError
from oculi.jobs import status as S
from oculi.jobs.store import JobStore, iso

PAGE_SIZE = 50
# the jobs list's status filter: the primary statuses, and the secondary one a user looks for on its own (a job
# stopped by its max_runtime budget, primary Stopped)
FILTER_STATUSES = (*S.PRIMARY_STATUSES, S.MAX_RUNTIME_EXCEEDED)
GRID_SIZE = 24
LOG_TAIL_BYTES = 32 * 1024
EVENT_POLL_SECONDS = 0.5  # how often an open job page's event stream looks for new epochs, log lines, statuses
STREAM_SECONDS = 300  # an event stream ends after this long; the browser reconnects where it left off


def store_of(request: Request) -> JobStore:
    """The app's job store (one engine per app, created on first use)."""
    store = getattr(request.app.state, "store", None)
    if store is None:
        store = request.app.state.store = JobStore()
    return store


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered with ``context`` (the console's Jinja environment)."""
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status_code)


@lru_cache(maxsize=64)
def _algorithm(name: str) -> Any:
    """The registered algorithm ``name``, or None (script jobs, transforms, algorithms no longer registered)."""
    from oculi.algorithms import ALGORITHMS

    return ALGORITHMS.get(name) if name in ALGORITHMS else None


def _duration(job: dict[str, Any]) -> str:
    start = job["training_start"]
    if not start:
        return ""
    end = job["training_end"] or (None if job["status"] == S.IN_PROGRESS else job["updated_at"])
    seconds = int((end or time.time()) - start)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def _headline(job: dict[str, Any], metrics: dict[str, float]) -> str:
    """The one metric a row shows: a transform's counts, else the algorithm's objective metric (or the first
    validation metric that is not a loss)."""
    if job["kind"] == "transform":
        return f"{int(metrics.get('Done', 0))} done, {int(metrics.get('Failed', 0))} failed" if metrics else ""
    algorithm = _algorithm(job["algorithm"])
    name = algorithm.metric if algorithm is not None and algorithm.metric in metrics else next(
        (k for k in metrics if k.startswith("validation:") and "loss" not in k), None)
    return f"{name} {metrics[name]:.4f}" if name else ""


def _job_rows(store: JobStore, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    live = store.latest_metrics([j["name"] for j in jobs if not j["final_metrics"]])
    return [{"name": j["name"], "kind": j["kind"], "algorithm": j["algorithm"], "status": j["status"],
             "secondary": j["secondary_status"], "created": (iso(j["created_at"]) or "")[:19].replace("T", " "),
             "duration": _duration(j), "metric": _headline(j, j["final_metrics"] or live.get(j["name"], {}))}
            for j in jobs]


def _model_path(job: dict[str, Any]) -> Path | None:
    path = Path(job["model_dir"])
    return path if (path / "model.json").is_file() else None


def model_rows(store: JobStore, page: int = 1) -> tuple[list[dict[str, Any]], int]:
    """The Models page's rows ``{name, source, path, meta, created}``: on page 1 every registered model, then the
    completed training jobs of ``page`` that wrote a bundle; and the number of completed training jobs."""
    from oculi.artifacts import read_meta

    out = []
    for item in store.registered("model") if page == 1 else []:
        try:
            meta = read_meta(Path(item["location"]))
        except OculiError as e:
            meta = {"error": str(e)}
        out.append({"name": item["name"], "source": "registered", "path": item["location"], "meta": meta,
                    "created": (iso(item["created_at"]) or "")[:19].replace("T", " ")})
    jobs, total = store.page(status=S.COMPLETED, kind="training", offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    for job in jobs:
        path = _model_path(job)
        if path is None:
            continue
        try:
            meta = read_meta(path)
        except OculiError as e:
            meta = {"error": str(e)}
        out.append({"name": job["name"], "source": "job", "path": str(path), "meta": meta,
                    "created": (iso(job["training_end"] or job["created_at"]) or "")[:19].replace("T", " ")})
    return out, total


def find_model(store: JobStore, name: str) -> tuple[Path, dict[str, Any] | None]:
    """The bundle folder of model ``name`` — a registered model, or a training job that wrote one (then also the
    job) —, or a JobError pointing at the Models page."""
    try:
        return Path(store.lookup("model", name)["location"]), None
    except JobError:
        job = store.find(name)
        path = _model_path(job) if job else None
        if path is None:
            raise JobError(f"No model named {name!r}: it is neither a registered model nor a job that wrote one. "
                           "See the Models page.") from None
        return path, job


def _hyperparameters(job: dict[str, Any], shown: dict[str, str]) -> list[dict[str, Any]]:
    """Rows ``{name, value, auto, asked}``: ``auto`` when the value was resolved from ``auto`` (asked for, or the
    default) before training."""
    asked = job["spec"].get("hyperparameters") or {}
    algorithm = _algorithm(job["algorithm"])
    fields = algorithm.hyperparameters.model_fields if algorithm is not None else {}
    rows = []
    for name, value in shown.items():
        info = fields.get(name)
        from_auto = str(asked.get(name, info.default if info is not None else "")).lower() == "auto"
        rows.append({"name": name, "value": value, "auto": from_auto and str(value).lower() != "auto",
                     "asked": name in asked})
    return rows


def _read_log(path: Path, offset: int) -> tuple[str, int]:
    """The log's text from byte ``offset`` and the next offset (whole UTF-8 characters only)."""
    if not path.exists():
        return "", offset
    with path.open("rb") as f:
        f.seek(offset)
        data = f.read(1 << 20)
    cut = len(data)
    while cut and cut > len(data) - 4 and (data[cut - 1] & 0xC0) == 0x80:  # do not split a character
        cut -= 1
    if cut and data[cut - 1] >= 0xC0:
        cut -= 1
    data = data[:cut] if cut else data
    return data.decode("utf-8", "replace"), offset + len(data)


def _sse(event: str, data: Any, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _field_errors(message: str) -> dict[str, str]:
    """The problems of a ConfigError/DataError by the form field they name: a hyperparameter in backticks
    (`` `epochs` got 0 …``), a channel (``The train channel …``)."""
    import re

    out: dict[str, str] = {}
    for line in message.splitlines():
        line = line.strip().removeprefix("- ")
        hp = re.match(r"(?:unknown hyperparameter )?`([A-Za-z0-9_]+)`", line)
        if hp:
            out.setdefault(f"hp.{hp.group(1)}", line)
        channel = re.search(r"\bThe (\w+) channel\b", line)
        if channel:
            out.setdefault(f"channel.{channel.group(1)}", line)
    return out


class _Splits:
    """Read datasets, kept while their path is unchanged (the grid's image requests reuse the page's read)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[Any, ...]] = {}  # location: (mtime, data task, splits[, statistics])

    def get(self, location: str) -> tuple[Any, dict[str, Any]]:
        from oculi.data.tasks import recognise

        path = Path(location)
        stamp = path.stat().st_mtime if path.exists() else 0.0
        hit = self._cache.get(location)
        if hit is None or hit[0] != stamp:
            task = recognise(path)
            hit = (stamp, task, task.read_splits(path))
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[location] = hit
        return hit[1], hit[2]

    def statistics(self, location: str) -> list[dict[str, Any]]:
        """The task contract's label histograms of every split, merged per histogram: ``[{"name", "title",
        "unit", "note", "bins", "counts": {split: {bin: n}}}]`` (kept with the read dataset; [] when the task has
        none)."""
        from oculi.tasks import get_task

        task, sets = self.get(location)
        hit = self._cache[location]
        if len(hit) == 4:
            return hit[3]
        hook = get_task(task.name).label_statistics
        merged: dict[str, dict[str, Any]] = {}
        for split, sample_set in sets.items() if hook is not None else ():
            for h in hook(sample_set):
                entry = merged.setdefault(h["name"], {**h, "counts": {}, "note": ""})
                entry["counts"][split] = h["counts"]
                entry["note"] = "; ".join(n for n in (entry["note"], h["note"] and f"{split}: {h['note']}") if n)
        self._cache[location] = (*hit, list(merged.values()))
        return self._cache[location][3]


async def endpoints_page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    """The Endpoints page: every endpoint server the store knows, described by asking it (the servers this console
    started with their process state), the models it can start a server for, and ``context`` (a form's error and
    values)."""
    from oculi.console.launch import server_state
    from oculi.console.remote import describe_endpoints

    store = store_of(request)
    items = store.registered("endpoint")
    described = await asyncio.gather(*(asyncio.to_thread(describe_endpoints, i["location"]) for i in items))
    states = [server_state(i, not d["error"]) for i, d in zip(items, described, strict=True)]
    models = [m for m in model_rows(store)[0] if "error" not in m["meta"]]
    defaults = {"error": None, "values": {}, "start_error": None, "start_values": {}}
    return render(request, "endpoints.html", status_code, items=list(zip(items, described, states, strict=True)),
                   models=models, stopped=request.query_params.get("stopped"), **{**defaults, **context})


def router() -> APIRouter:
    """The page routes."""
    r = APIRouter(include_in_schema=False)
    splits = _Splits()

    @r.get("/")
    def home() -> Response:
        return RedirectResponse("/jobs", status_code=303)

    @r.get("/favicon.ico")
    def favicon() -> Response:
        return RedirectResponse("/static/favicon.svg", status_code=301)

    # ---- jobs -------------------------------------------------------------------------------------------------
    @r.get("/jobs")
    def jobs(request: Request, status: str = "", kind: str = "", name: str = "",
             page: int = Query(1, ge=1)) -> HTMLResponse:
        if status and status not in FILTER_STATUSES:
            raise ConfigError(f"status {status!r} is not a job status; use one of {', '.join(FILTER_STATUSES)}.")
        store = store_of(request)
        primary = status in S.PRIMARY_STATUSES
        rows, total = store.page(status=status if primary else None, secondary=status if not primary else None,
                                 kind=kind or None, name=name.strip() or None, offset=(page - 1) * PAGE_SIZE,
                                 limit=PAGE_SIZE)
        pages = max(1, -(-total // PAGE_SIZE))
        query = {k: v for k, v in (("status", status), ("kind", kind), ("name", name)) if v}
        return render(request, "jobs.html", jobs=_job_rows(store, rows), total=total, page=page, pages=pages,
                       first=(page - 1) * PAGE_SIZE + 1 if rows else 0, last=(page - 1) * PAGE_SIZE + len(rows),
                       filters={"status": status, "kind": kind, "name": name}, query=query,
                       statuses=FILTER_STATUSES, kinds=("training", "transform"))

    @r.get("/jobs/new")
    def new_job(request: Request, algorithm: str = "") -> HTMLResponse:
        return _new_job_form(request, algorithm, {}, None, {})

    @r.post("/jobs/new")
    async def submit_job(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from oculi.jobs import runner

        form = {k: str(v) for k, v in (await request.form()).items()}
        algorithm = form.get("algorithm", "")
        channels = {k.removeprefix("channel."): v.strip() for k, v in form.items()
                    if k.startswith("channel.") and v.strip()}
        for line in form.get("extra_channels", "").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and value.strip():
                channels[key.strip()] = value.strip()
            elif line.strip():
                return _new_job_form(request, algorithm, form, f"extra channel {line.strip()!r} is not NAME=PATH, "
                                     "e.g. train_annotation=data/train.json.", {"extra_channels": "NAME=PATH"})
        hyperparameters = {k.removeprefix("hp."): v.strip() for k, v in form.items()
                           if k.startswith("hp.") and v.strip()}
        spec = runner.JobSpec(algorithm=algorithm or None, channels=channels, hyperparameters=hyperparameters,
                              name=form.get("name", "").strip() or None)
        store = store_of(request)
        try:
            job = await run_in_threadpool(runner.submit, spec, store)
        except OculiError as e:
            return _new_job_form(request, algorithm, form, str(e), _field_errors(str(e)), status_code=400)
        await run_in_threadpool(runner.dispatch, store)
        return RedirectResponse(f"/jobs/{job['name']}", status_code=303)

    def _new_job_form(request: Request, algorithm: str, values: dict[str, str], error: str | None,
                      errors: dict[str, str], status_code: int = 200) -> HTMLResponse:
        from oculi.algorithms import ALGORITHMS
        from oculi.config import describe, field_choices

        names = list(ALGORITHMS)
        algorithm = algorithm if algorithm in names else names[0]
        chosen = ALGORITHMS.get(algorithm)
        fields = chosen.hyperparameters.model_fields
        rows = []
        for row in describe(chosen.hyperparameters):
            choices = field_choices(fields[row["name"]])
            rows.append({**row, "choices": choices if row["valid"] == " | ".join(choices) else [],
                         "suggest": choices, "value": values.get(f"hp.{row['name']}", ""),
                         "error": errors.get(f"hp.{row['name']}")})
        datasets = store_of(request).registered("dataset")
        return render(request, "new_job.html", status_code, algorithms=[(n, ALGORITHMS.get(n)) for n in names],
                       algorithm=chosen, rows=rows, values=values, error=error, errors=errors, datasets=datasets,
                       tiny=json.dumps(chosen.tiny_hyperparameters))

    @r.get("/jobs/{name}")
    def job_page(request: Request, name: str) -> HTMLResponse:
        from oculi.jobs.describe import describe

        store = store_of(request)
        job = store.get(name)
        described = describe(job, store)
        metrics = store.metrics_after(name)
        log_path = Path(job["log_path"])
        size = log_path.stat().st_size if log_path.exists() else 0
        tail, offset = _read_log(log_path, max(0, size - LOG_TAIL_BYTES))
        if size > LOG_TAIL_BYTES:
            tail = tail.partition("\n")[2]
        registered = {d["location"]: d["name"] for d in store.registered("dataset")}
        channels = [(c["ChannelName"], c["DataSource"]["FileSystemDataSource"]["DirectoryPath"])
                    for c in described.get("InputDataConfig", [])]
        return render(
            request, "job.html", job=job, described=described, terminal=job["secondary_status"] in S.TERMINAL,
            hyperparameters=_hyperparameters(job, described.get("HyperParameters", {})),
            channels=[(c, p, registered.get(p)) for c, p in channels], log=tail, log_offset=offset,
            metrics=json.dumps([[m["id"], m["epoch"], m["step"], m["name"], m["value"]] for m in metrics]),
            after=metrics[-1]["id"] if metrics else 0, model=_model_path(job),
            epochs=(job["hyperparameters"] or {}).get("epochs") or job["spec"].get("hyperparameters", {}).get("epochs"),
            flash=request.query_params.get("flash"))

    @r.get("/jobs/{name}/events")
    async def job_events(request: Request, name: str, after: int = Query(0, ge=0),
                         log: int = Query(0, ge=0)) -> StreamingResponse:
        store = store_of(request)
        job = await asyncio.to_thread(store.get, name)
        last_id = request.headers.get("last-event-id", "")  # a reconnecting browser: go on where it stopped
        if last_id.count(":") == 1 and all(part.isdigit() for part in last_id.split(":")):
            after, log = (int(part) for part in last_id.split(":"))
        log_path = Path(job["log_path"])

        async def events() -> Any:
            nonlocal after, log
            seen = None
            started = time.monotonic()
            yield "retry: 1000\n\n"
            while time.monotonic() - started < STREAM_SECONDS:
                current = await asyncio.to_thread(store.get, name)
                rows = await asyncio.to_thread(store.metrics_after, name, after)
                text, log = await asyncio.to_thread(_read_log, log_path, log)
                if rows:
                    after = rows[-1]["id"]
                    yield _sse("metrics", [[m["id"], m["epoch"], m["step"], m["name"], m["value"]] for m in rows],
                               f"{after}:{log}")
                if text:
                    yield _sse("log", text, f"{after}:{log}")
                state = (current["status"], current["secondary_status"])
                if state != seen:
                    seen = state
                    yield _sse("status", {"status": state[0], "secondary": state[1],
                                          "terminal": state[1] in S.TERMINAL,
                                          "duration": _duration(current)}, f"{after}:{log}")
                if state[1] in S.TERMINAL and not rows and not text:
                    yield _sse("end", {})
                    return
                await asyncio.sleep(EVENT_POLL_SECONDS)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @r.post("/jobs/{name}/{action}")
    async def job_action(request: Request, name: str, action: str) -> Response:
        from starlette.concurrency import run_in_threadpool

        from oculi.jobs import runner

        store = store_of(request)
        form = await request.form()
        if action == "stop":
            await run_in_threadpool(runner.stop, name, store)
            flash = "stop requested: the job checkpoints and stops at the next step."
        elif action in ("resume", "extend"):
            epochs = None
            if action == "extend":
                text = str(form.get("epochs", "")).strip()
                if not text.isdigit():
                    raise ConfigError(f"Extend needs the new total number of epochs, got {text!r}; e.g. 10.")
                epochs = int(text)
            await run_in_threadpool(runner.resume, name, epochs, store)
            await run_in_threadpool(runner.dispatch, store)
            flash = f"{'extended to ' + str(epochs) + ' epochs' if epochs else 'resumed'}: queued."
        else:
            raise JobError(f"No job action {action!r}: the job page offers stop, resume and extend.")
        from urllib.parse import quote

        return RedirectResponse(f"/jobs/{name}?flash={quote(flash)}", status_code=303)

    # ---- models -----------------------------------------------------------------------------------------------
    def _models(request: Request, page: int) -> tuple[list[dict[str, Any]], int]:
        return model_rows(store_of(request), page)

    @r.get("/models")
    def models(request: Request, page: int = Query(1, ge=1)) -> HTMLResponse:
        rows, total = _models(request, page)
        return render(request, "models.html", models=rows, page=page, pages=max(1, -(-total // PAGE_SIZE)),
                       error=None, values={})

    @r.post("/models")
    async def register_model(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from oculi.artifacts import read_meta, resolve_bundle_path

        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        name, location = form.get("name", ""), form.get("path", "")
        try:
            if not name or not location:
                raise ConfigError("a model needs a name and the path of its bundle folder (model.json + weights).")
            path = resolve_bundle_path(Path(location))
            meta = await run_in_threadpool(read_meta, path)
            store_of(request).register("model", name, str(path.resolve()),
                                     {"algorithm": meta["algorithm"], "task": meta.get("task")})
        except OculiError as e:
            rows, total = _models(request, 1)
            return render(request, "models.html", 400, models=rows, page=1, pages=max(1, -(-total // PAGE_SIZE)),
                           error=str(e), values=form)
        return RedirectResponse(f"/models/{name}", status_code=303)

    def _model(request: Request, name: str) -> tuple[Path, dict[str, Any], dict[str, Any] | None]:
        from oculi.artifacts import read_meta

        path, job = find_model(store_of(request), name)
        return path, read_meta(path), job

    @r.get("/models/compare")
    def compare(request: Request, m: Annotated[list[str] | None, Query()] = None) -> HTMLResponse:
        m = m or []
        if len(m) < 2:
            raise ConfigError("compare needs two or more models: tick them on the Models page, e.g. "
                              "/models/compare?m=first&m=second.")
        loaded = [(name, *_model(request, name)[:2]) for name in m]
        keys = sorted({k for _, _, meta in loaded for k in meta["hyperparameters"]})
        diff = [{"name": k, "values": [meta["hyperparameters"].get(k) for _, _, meta in loaded]} for k in keys]
        diff = [row for row in diff if len({json.dumps(v) for v in row["values"]}) > 1]
        curves = {name: meta.get("history", []) for name, _, meta in loaded}
        return render(request, "compare.html", models=loaded, diff=diff, curves=json.dumps(curves))

    @r.get("/models/{name}")
    def model_page(request: Request, name: str) -> HTMLResponse:
        path, meta, job = _model(request, name)
        reports = []
        for report in sorted(path.parent.glob("*/metrics.json")) + sorted(path.glob("*/metrics.json")):
            try:
                values = json.loads(report.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            images = [p.relative_to(path.parent).as_posix() for p in sorted(report.parent.glob("*.png"))]
            reports.append({"folder": report.parent, "metrics": values, "images": images})
        return render(request, "model.html", name=name, path=path, meta=meta, job=job, reports=reports,
                       history=json.dumps(meta.get("history", [])))

    @r.get("/models/{name}/file/{relative:path}")
    def model_file(request: Request, name: str, relative: str) -> Response:
        path, _, _ = _model(request, name)
        root = path.parent.resolve()
        file = (root / relative).resolve()
        if not file.is_relative_to(root) or file.suffix.lower() != ".png" or not file.is_file():
            raise JobError(f"No report image {relative!r} beside model {name!r}.")
        return FileResponse(file, media_type="image/png")

    # ---- datasets ---------------------------------------------------------------------------------------------
    @r.get("/datasets")
    def datasets(request: Request) -> HTMLResponse:
        return render(request, "datasets.html", datasets=store_of(request).registered("dataset"), error=None,
                       values={})

    @r.post("/datasets")
    async def register_dataset(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        from oculi.data.checks import check_path

        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        name, location = form.get("name", ""), form.get("path", "")
        store = store_of(request)
        try:
            if not name or not location:
                raise ConfigError("a dataset needs a name and a path (a folder, manifest, list file, COCO/VOC/YOLO "
                                  "annotations or a mask layout).")
            path = Path(location).expanduser().resolve()
            if not path.exists():
                raise DataError(f"{location} does not exist; give the path of a folder or annotation file on this "
                                "machine.")
            task, sets = await run_in_threadpool(splits.get, str(path))
            report = await run_in_threadpool(lambda: check_path(path, workers=1))
            store.register("dataset", name, str(path), {
                "task": task.name, "format": next(iter(sets.values())).format, "classes": report.classes,
                "images": report.num_images, "check": report.to_dict(), "checked_at": time.time()})
        except OculiError as e:
            return render(request, "datasets.html", 400, datasets=store.registered("dataset"), error=str(e),
                           values=form)
        return RedirectResponse(f"/datasets/{name}", status_code=303)

    @r.post("/datasets/{name}/check")
    async def recheck(request: Request, name: str) -> Response:
        from starlette.concurrency import run_in_threadpool

        from oculi.data.checks import check_path

        store = store_of(request)
        item = store.lookup("dataset", name)
        report = await run_in_threadpool(lambda: check_path(Path(item["location"]), workers=1))
        store.unregister("dataset", name)
        store.register("dataset", name, item["location"], {**item["info"], "check": report.to_dict(),
                                                            "classes": report.classes, "images": report.num_images,
                                                            "checked_at": time.time()})
        return RedirectResponse(f"/datasets/{name}", status_code=303)

    @r.post("/datasets/{name}/audit")
    async def audit_dataset(request: Request, name: str) -> Response:
        from starlette.concurrency import run_in_threadpool

        from oculi.labeling.audits import start_audit

        item = store_of(request).lookup("dataset", name)
        form = await request.form()
        try:
            folds = int(str(form.get("folds") or 3))
        except ValueError:
            folds = 0  # start_audit explains
        try:
            await run_in_threadpool(start_audit, item["location"], name, labels=form.get("labels") == "on",
                                    folds=folds)
        except OculiError as e:
            try:
                return dataset_view(request, name, error=str(e), status_code=400)
            except OculiError:  # the page itself cannot be shown (the data is gone): the error page says why
                raise e from None
        return RedirectResponse(f"/datasets/{name}#audits", status_code=303)

    @r.get("/datasets/{name}")
    def dataset_page(request: Request, name: str, split: str = "", page: int = Query(1, ge=1)) -> HTMLResponse:
        return dataset_view(request, name, split, page)

    def dataset_view(request: Request, name: str, split: str = "", page: int = 1, error: str | None = None,
                     status_code: int = 200) -> HTMLResponse:
        """The dataset page (``error``: why the audit form's request was refused)."""
        from oculi.console.audits import audit_rows
        from oculi.labeling.audits import audit_state
        from oculi.tasks import get_task

        store = store_of(request)
        item = store.lookup("dataset", name)
        data_task, sets = splits.get(item["location"])
        split = split if split in sets else next(iter(sets))
        samples = sets[split].samples
        start = (page - 1) * GRID_SIZE
        contract = get_task(data_task.name)
        classes = sets[split].classes
        cells = []
        for index in range(start, min(start + GRID_SIZE, len(samples))):
            sample = samples[index]
            try:
                labels = contract.view_labels(sample.target, classes)
            except OculiError as e:
                labels = {"error": str(e)}
            cells.append({"index": index, "file": sample.image.name, "labels": labels})
        check = item["info"].get("check") or {}
        return render(request, "dataset.html", status_code, item=item, check=check, split=split, splits=list(sets),
                      page=page, audit_error=error, audit_state=audit_state(item["location"]),
                      pages=max(1, -(-len(samples) // GRID_SIZE)), total=len(samples), view=contract.view,
                      cells=cells, cells_json=json.dumps(cells), histogram=json.dumps(check.get("counts", {})),
                      statistics=splits.statistics(item["location"]), audits=audit_rows(store, item["location"]))

    @r.get("/datasets/{name}/image/{split}/{index}")
    def dataset_image(request: Request, name: str, split: str, index: int) -> Response:
        item = store_of(request).lookup("dataset", name)
        _, sets = splits.get(item["location"])
        if split not in sets or not 0 <= index < len(sets[split].samples):
            raise JobError(f"No image {index} in split {split!r} of dataset {name!r}.")
        image = sets[split].samples[index].image
        if not image.is_file():
            raise DataError(f"{image} is listed by dataset {name!r} but does not exist.")
        return FileResponse(image, headers={"Cache-Control": "private, max-age=300"})

    # ---- endpoints ----------------------------------------------------------------------------------------------
    @r.get("/endpoints")
    async def endpoints(request: Request) -> HTMLResponse:
        return await endpoints_page(request)

    @r.post("/endpoints")
    async def register_endpoint(request: Request) -> Response:
        from oculi.console.remote import check_url, describe_endpoints

        form = {k: str(v).strip() for k, v in (await request.form()).items()}
        store = store_of(request)
        try:
            name = form.get("name", "")
            if not name:
                raise ConfigError("an endpoint server needs a name, e.g. local-8080.")
            url = check_url(form.get("url", ""))
            found = await asyncio.to_thread(describe_endpoints, url)
            if found.get("error"):
                raise ConfigError(f"cannot reach an oculi serve at {url}: {found['error']}")
            store.register("endpoint", name, url, {})
        except OculiError as e:
            return await endpoints_page(request, 400, error=str(e), values=form)
        return RedirectResponse("/endpoints", status_code=303)

    @r.post("/endpoints/{name}/{endpoint}/weights")
    async def weights(request: Request, name: str, endpoint: str) -> Response:
        from oculi.console.remote import set_weights

        item = store_of(request).lookup("endpoint", name)
        form = await request.form()
        values = {}
        for key, value in form.items():
            if key.startswith("weight."):
                try:
                    values[key.removeprefix("weight.")] = float(str(value))
                except ValueError:
                    raise ConfigError(f"the weight of variant {key.removeprefix('weight.')!r} got {value!r}; "
                                      "expected a number ≥ 0, e.g. 1.") from None
        await asyncio.to_thread(set_weights, item["location"], endpoint, values)
        return RedirectResponse("/endpoints", status_code=303)

    @r.post("/endpoints/{name}/{endpoint}/invoke")
    async def invoke(request: Request, name: str, endpoint: str) -> Response:
        from oculi.console.remote import invoke_endpoint

        item = store_of(request).lookup("endpoint", name)
        body = await request.body()
        status, content_type, answer = await asyncio.to_thread(
            invoke_endpoint, item["location"], endpoint, body, request.headers.get("content-type", "image/jpeg"))
        return Response(answer, status_code=status, media_type=content_type)

    return r
