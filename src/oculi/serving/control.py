"""The control plane: a REST API over the job store (create, list, describe and stop training jobs; metrics;
logs). The server only enqueues and reports — workers train (DESIGN rule 10).

``create_app()`` returns a FastAPI app whose routes live on one ``APIRouter`` under ``/api``; the data plane
(``/ping``, ``/invocations``) adds its own router to the same app later (:func:`create_app` takes extra routers).

Security: :func:`serve` binds 127.0.0.1 by default. On any other address it refuses to start without
``OCULI_TOKEN``; when a token is set every request must carry ``Authorization: Bearer <token>`` (the OpenAPI
schema and docs included).
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import os
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from oculi.errors import ConfigError, JobError, OculiError

LOOPBACK = "127.0.0.1"
DISPATCH_SECONDS = 2.0  # how often the server looks for dead workers and starts queued jobs


class CreateTrainingJob(BaseModel):
    """CreateTrainingJob, local form: channels are local paths."""

    model_config = ConfigDict(extra="forbid")
    TrainingJobName: str | None = Field(None, description="Unique name; default <algorithm>-<timestamp>.")
    AlgorithmName: str | None = Field(None, description="Built-in algorithm, e.g. image-classification.")
    HyperParameters: dict[str, str] = Field(default_factory=dict, description="SageMaker string forms.")
    InputDataConfig: dict[str, str] = Field(default_factory=dict,
                                            description="Channel name → local path, e.g. {\"train\": \"data/train\"}.")
    OutputPath: str | None = Field(None, description="Folder for the model bundle (default: the job's folder).")
    EntryPoint: str | None = Field(None, description="Script mode: the training script.")
    SourceDir: str | None = Field(None, description="Script mode: the folder holding the script.")
    MetricDefinitions: list[dict[str, str]] | None = Field(None, description="Script mode: [{Name, Regex}].")


def authorised(request: Request, token: str) -> bool:
    """Whether ``request`` carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


def control_router() -> APIRouter:
    """The /api/training-jobs routes."""
    from oculi.jobs import runner
    from oculi.jobs.describe import describe, metric_table
    from oculi.jobs.store import JobStore

    router = APIRouter(prefix="/api", tags=["training jobs"])

    def store() -> JobStore:
        return JobStore()

    @router.post("/training-jobs", status_code=201, summary="CreateTrainingJob")
    def create(body: CreateTrainingJob) -> dict[str, Any]:
        s = store()
        spec = runner.JobSpec(algorithm=body.AlgorithmName, channels=body.InputDataConfig,
                              hyperparameters=body.HyperParameters, name=body.TrainingJobName,
                              output=body.OutputPath, entry_point=body.EntryPoint, source_dir=body.SourceDir,
                              metric_definitions=body.MetricDefinitions)
        job = runner.submit(spec, s)
        runner.dispatch(s)
        return {"TrainingJobName": job["name"], "TrainingJobArn": f"arn:oculi:local:training-job/{job['name']}"}

    @router.get("/training-jobs", summary="ListTrainingJobs")
    def list_jobs(status: str | None = Query(None, description="InProgress, Completed, Failed, Stopping, Stopped"),
                  algorithm: str | None = None, limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        s = store()
        jobs = s.list(status=status, algorithm=algorithm, limit=limit)
        from oculi.jobs.store import iso

        return {"TrainingJobSummaries": [
            {"TrainingJobName": j["name"], "TrainingJobArn": f"arn:oculi:local:training-job/{j['name']}",
             "AlgorithmName": j["algorithm"], "TrainingJobStatus": j["status"],
             "SecondaryStatus": j["secondary_status"], "CreationTime": iso(j["created_at"]),
             "TrainingEndTime": iso(j["training_end"]), "LastModifiedTime": iso(j["updated_at"])} for j in jobs]}

    @router.get("/training-jobs/{name}", summary="DescribeTrainingJob")
    def describe_job(name: str) -> dict[str, Any]:
        s = store()
        return describe(s.get(name), s)

    @router.post("/training-jobs/{name}/stop", summary="StopTrainingJob")
    def stop(name: str) -> dict[str, Any]:
        s = store()
        job = runner.stop(name, s)
        return {"TrainingJobName": name, "TrainingJobStatus": job["status"], "SecondaryStatus": job["secondary_status"]}

    @router.get("/training-jobs/{name}/metrics", summary="Per-epoch metrics time series")
    def metrics(name: str) -> dict[str, Any]:
        s = store()
        s.get(name)
        rows = s.metrics(name)
        names, table = metric_table(rows)
        return {"TrainingJobName": name, "MetricNames": names, "Epochs": table, "Series": rows}

    @router.get("/training-jobs/{name}/logs", summary="The job's log", response_class=PlainTextResponse)
    def logs(name: str, offset: int = Query(0, ge=0, description="Start at this byte (for polling)")) -> Any:
        s = store()
        job = s.get(name)
        from pathlib import Path

        path = Path(job["log_path"])
        data = b""
        if path.exists():
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
        return PlainTextResponse(data.decode("utf-8", "replace"),
                                 headers={"X-Next-Offset": str(offset + len(data))})

    return router


def create_app(token: str | None = None, routers: Sequence[APIRouter] = (), dispatch_loop: bool = True) -> FastAPI:
    """The oculi server app: the control plane plus any extra ``routers`` (the data plane, later). ``token``:
    when set, every request (docs and schema included) needs ``Authorization: Bearer <token>``.
    ``dispatch_loop``: find dead workers and start queued jobs at startup and every few seconds."""
    from oculi import __version__

    stop = threading.Event()

    def loop() -> None:
        from oculi.jobs.runner import dispatch

        while not stop.is_set():
            try:
                dispatch()
            except Exception:  # noqa: BLE001 - keep the server up; the next round retries
                pass
            stop.wait(DISPATCH_SECONDS)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if dispatch_loop:  # server start: dead workers are found, queued jobs start
            threading.Thread(target=loop, name="oculi-dispatch", daemon=True).start()
        yield
        stop.set()

    app = FastAPI(title="oculi", version=__version__,
                  description="Local SageMaker-style computer vision: control plane (training jobs).",
                  lifespan=lifespan)
    if token:
        # A middleware, not a route dependency, so the OpenAPI schema and docs are guarded too.
        @app.middleware("http")
        async def _require_token(request: Request, call_next: Any) -> Any:
            if not authorised(request, token):
                return JSONResponse({"error": "Unauthorized", "message": "Missing or wrong token: send "
                                     "`Authorization: Bearer $OCULI_TOKEN`."}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
            return await call_next(request)

    app.include_router(control_router())
    for router in routers:
        app.include_router(router)

    @app.exception_handler(OculiError)
    def _oculi_error(_request: Request, exc: OculiError) -> JSONResponse:
        status = 404 if isinstance(exc, JobError) and str(exc).startswith("No job named") else exc.http_status
        if isinstance(exc, JobError) and status != 404:
            status = 409  # the job is in a state that does not allow it
        return JSONResponse({"error": type(exc).__name__, "message": str(exc)}, status_code=status)

    return app


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback and not token:
        raise ConfigError(f"Refusing to listen on {host} without a token: anyone who can reach it could start "
                          "and stop jobs. Set OCULI_TOKEN (e.g. OCULI_TOKEN=$(openssl rand -hex 16)) or bind "
                          "127.0.0.1.")


def serve(host: str = LOOPBACK, port: int = 8080, token: str | None = None) -> None:
    """Run the control-plane server (blocking). ``token`` defaults to ``$OCULI_TOKEN``."""
    import uvicorn

    token = token if token is not None else (os.environ.get("OCULI_TOKEN") or None)
    check_bind(host, token)
    uvicorn.run(create_app(token), host=host, port=port, log_level="info")
