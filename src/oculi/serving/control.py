"""The control plane: a REST API over the job store (create, list, describe and stop training jobs; metrics;
logs). The server only enqueues and reports — workers train (DESIGN rule 10).

``create_app()`` returns a FastAPI app whose routes live on one ``APIRouter`` under ``/api``; the data plane
(``/ping``, ``/invocations``) adds its own router to the same app later (:func:`create_app` takes extra routers).

Security (:mod:`oculi.serving.guard`): :func:`serve` binds 127.0.0.1 by default. On any other address it refuses
to start without ``OCULI_TOKEN``; when a token is set every request must carry ``Authorization: Bearer <token>``
(the OpenAPI schema and docs included). Without one, Host names other than this server's are refused (DNS
rebinding), state changes from other web origins are refused, and a script-mode job — code that will run — needs
the per-process token :func:`serve` writes to ``$OCULI_HOME/servers/<port>.token`` (readable by its user only).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from oculi.errors import ConfigError
from oculi.serving.guard import Access, is_loopback, require_token, write_token_file
from oculi.serving.http import listen_socket, oculi_app

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
    StoppingCondition: dict[str, int] | None = Field(None, description="{\"MaxRuntimeInSeconds\": N}: the "
                                                     "max_runtime hyperparameter (built-in algorithms).")


def control_router() -> APIRouter:
    """The /api/training-jobs routes."""
    from oculi.jobs import runner
    from oculi.jobs.describe import describe, metric_table
    from oculi.jobs.store import JobStore

    router = APIRouter(prefix="/api", tags=["training jobs"])

    def store() -> JobStore:
        return JobStore()

    @router.post("/training-jobs", status_code=201, summary="CreateTrainingJob")
    def create(body: CreateTrainingJob, request: Request) -> dict[str, Any]:
        if body.EntryPoint is not None or body.SourceDir is not None:
            require_token(request, "a script-mode job (EntryPoint/SourceDir) runs the script's code")
        s = store()
        hyperparameters = dict(body.HyperParameters)
        for key, value in (body.StoppingCondition or {}).items():
            if key != "MaxRuntimeInSeconds":
                raise ConfigError(f"StoppingCondition.{key} is not supported; oculi takes MaxRuntimeInSeconds.")
            if "max_runtime" in hyperparameters:
                raise ConfigError("StoppingCondition.MaxRuntimeInSeconds and HyperParameters.max_runtime are the "
                                  "same setting; pass one.")
            hyperparameters["max_runtime"] = str(value)
        spec = runner.JobSpec(algorithm=body.AlgorithmName, channels=body.InputDataConfig,
                              hyperparameters=hyperparameters, name=body.TrainingJobName,
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


def dispatch_lifespan() -> Callable[[FastAPI], Any]:
    """A FastAPI lifespan that runs the queue while the server runs: at startup and every few seconds, dead
    workers are found and queued jobs start (what every server over the job store does)."""
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
        threading.Thread(target=loop, name="oculi-dispatch", daemon=True).start()
        yield
        stop.set()

    return lifespan


def create_app(token: str | None = None, routers: Sequence[APIRouter] = (), dispatch_loop: bool = True,
               host: str = LOOPBACK, allowed_hosts: Sequence[str] = ()) -> FastAPI:
    """The oculi server app: the control plane plus any extra ``routers`` (the data plane, later). ``token``:
    when set, every request (docs and schema included) needs ``Authorization: Bearer <token>``; ``host``: the
    address it will be bound to and ``allowed_hosts`` extra Host names it answers to (see
    :class:`~oculi.serving.guard.Access`; ``app.state.oculi_access.secret`` is the token script-mode jobs need).
    ``dispatch_loop``: find dead workers and start queued jobs at startup and every few seconds."""
    lifespan = dispatch_lifespan() if dispatch_loop else None
    # With a token the guard (a middleware) asks for it on every request, so the schema and docs are guarded too.
    access = Access(host=host, allowed_hosts=tuple(allowed_hosts), token=token or None, token_everywhere=True)
    app = oculi_app("oculi", "Local SageMaker-style computer vision: control plane (training jobs).", access,
                    lifespan)
    app.include_router(control_router())
    for router in routers:
        app.include_router(router)
    return app


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise ConfigError(f"Refusing to listen on {host} without a token: anyone who can reach it could start "
                          "and stop jobs. Set OCULI_TOKEN (e.g. OCULI_TOKEN=$(openssl rand -hex 16)) or bind "
                          "127.0.0.1.")


def serve(host: str = LOOPBACK, port: int = 8080, token: str | None = None, allowed_hosts: Sequence[str] = (),
          echo: Callable[[str], None] = print) -> None:
    """Run the control-plane server (blocking). ``token`` defaults to ``$OCULI_TOKEN``, ``allowed_hosts`` adds
    to ``$OCULI_ALLOWED_HOSTS``. The port is bound (or a clear error raised) before "serving at" is printed;
    without a token the per-process token is written to ``$OCULI_HOME/servers/<port>.token`` while it runs."""
    import uvicorn

    from oculi.serving.server import local_url
    from oculi.settings import settings

    current = settings()
    token = token if token is not None else current.token
    check_bind(host, token)
    sock = listen_socket(host, port)
    port = int(sock.getsockname()[1])  # --port 0: the free port the system chose
    app = create_app(token, host=host, allowed_hosts=(*current.allowed_hosts, *allowed_hosts))
    secret_file = None
    try:
        if not token:
            secret_file = write_token_file(port, app.state.oculi_access.secret)
            echo(f"script-mode jobs over HTTP need `Authorization: Bearer <token>`; the token is in {secret_file} "
                 "(readable by you only)")
        echo(f"serving at {local_url(host, port)}: /api/training-jobs, docs at /docs")
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
        # uvicorn raises SIGTERM again after its shutdown: with this handler that ends run() normally, so the
        # token file is removed below instead of the process dying by the signal.
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        server.run(sockets=[sock])
    finally:
        sock.close()
        if secret_file is not None:
            secret_file.unlink(missing_ok=True)
