"""Running the endpoint server: in the foreground for ``oculi serve`` (SIGTERM or Ctrl-C finish the requests in
flight, then exit), or in a background thread for the Python SDK (:mod:`oculi.serving.sdk`)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from oculi.errors import ConfigError
from oculi.serving.app import ServerSettings, create_serving_app
from oculi.serving.capture import DataCapture
from oculi.serving.config import Batching, ServingConfig, config_from_models, endpoint_name_for, load_config
from oculi.serving.endpoints import Endpoint, Runtime, load_endpoints
from oculi.serving.http import listen_socket
from oculi.serving.metrics import ServingMetrics

GRACEFUL_SHUTDOWN_SECONDS = 30  # SageMaker sends SIGKILL 30 s after SIGTERM


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``oculi serve`` and ``Model.deploy`` take besides the endpoints: batching defaults for
    variants that set none, the model runtime, request limits, data capture, the control-plane token, and the
    address the server binds (``host``) with the extra Host names it answers to (``allowed_hosts``)."""

    batching: Batching = field(default_factory=Batching)
    runtime: Runtime = "auto"
    max_body_bytes: int | None = None
    capture_dir: Path | None = None
    capture_percent: float = 20.0
    token: str | None = None
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    record_history: bool = True  # record deployments and weight changes in the model registry's history


def endpoint_config(models: list[Path], config: Path | None) -> ServingConfig:
    """The endpoints to serve: from ``config`` (a file), or one per model path; not both."""
    if config is not None and models:
        raise ConfigError("pass either model paths or --config, not both: the config file names the models of "
                          "its variants.")
    if config is not None:
        return load_config(config)
    if not models:
        raise ConfigError("nothing to serve: pass one or more model bundles (oculi serve models/ants) or "
                          "--config endpoint.yaml.")
    return config_from_models(models)


class DeploymentRecorder:
    """Records an app's endpoints in the model registry's deployment history: Deployed at start-up, each
    WeightsChanged, Stopped at shutdown (see :func:`oculi.model_registry.serving_at`)."""

    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []

    @staticmethod
    def _record(endpoint: Endpoint, event: str) -> None:
        from oculi.model_registry import record_deployment

        weights = endpoint.weights
        record_deployment(endpoint.name, event, [
            {"VariantName": v.name, "ModelDataUrl": str(v.model), "ModelPackageArn": v.package_arn,
             "Weight": weights[v.name]} for v in endpoint.variants.values()])

    def deployed(self, endpoints: list[Endpoint]) -> None:
        """Record the endpoints as deployed; from now on weight changes are recorded too."""
        self.endpoints = endpoints
        for endpoint in endpoints:
            self._record(endpoint, "Deployed")

    def weights_changed(self, endpoint: Endpoint) -> None:
        """Record new weights (ignored while the endpoints are being built)."""
        if endpoint in self.endpoints:
            self._record(endpoint, "WeightsChanged")

    def stopped(self) -> None:
        """Record that the endpoints stopped serving."""
        for endpoint in self.endpoints:
            self._record(endpoint, "Stopped")


def build_app(config: ServingConfig, options: ServeOptions,
              echo: Callable[[str], None] = print) -> FastAPI:
    """Load every model now and return the app serving them."""
    if not 0 <= options.capture_percent <= 100:
        raise ConfigError(f"--capture-percent must be between 0 and 100, got {options.capture_percent:g}.")
    metrics = ServingMetrics()
    history = DeploymentRecorder() if options.record_history else None
    endpoints = load_endpoints(config, metrics, options.batching, options.runtime, echo,
                               on_weights=history.weights_changed if history else None)
    if history is not None:
        history.deployed(endpoints)
    capture = None
    if options.capture_dir is not None:
        capture = DataCapture(options.capture_dir, options.capture_percent,
                              on_drop=lambda e: metrics.capture_dropped.labels(e).inc())
        echo(f"data capture: {options.capture_percent:g} % of invocations → {options.capture_dir}")
    settings = ServerSettings(capture=capture, token=options.token, host=options.host,
                              allowed_hosts=options.allowed_hosts, on_stop=history.stopped if history else None,
                              **({"max_body_bytes": options.max_body_bytes} if options.max_body_bytes else {}))
    return create_serving_app(endpoints, metrics, settings)


def build_multi_model_app(directory: Path, options: ServeOptions, max_loaded: int, name: str | None = None,
                          echo: Callable[[str], None] = print) -> FastAPI:
    """The app of one multi-model endpoint serving the bundles under ``directory`` on demand
    (:mod:`oculi.serving.multimodel`); ``name`` defaults to the folder's name."""
    from oculi.serving.multimodel import model_names, multi_model_endpoint

    metrics = ServingMetrics()
    name = name or endpoint_name_for(directory)
    endpoint = multi_model_endpoint(directory, name, metrics, options.batching, max_loaded, options.runtime)
    found = model_names(endpoint.directory)
    echo(f"multi-model endpoint {name}: {len(found)} model{'s' if len(found) != 1 else ''} under "
         f"{endpoint.directory} ({', '.join(found[:5])}{', …' if len(found) > 5 else ''}), loaded on first use, "
         f"at most {max_loaded} at once")
    settings = ServerSettings(token=options.token, host=options.host, allowed_hosts=options.allowed_hosts,
                              **({"max_body_bytes": options.max_body_bytes} if options.max_body_bytes else {}))
    return create_serving_app([endpoint], metrics, settings)


def _uvicorn(app: FastAPI, host: str, port: int, log_level: str, access_log: bool) -> Any:
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                                         timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS, lifespan="on"))


def serve(config: ServingConfig | None, options: ServeOptions, host: str = "127.0.0.1", port: int = 8080,
          access_log: bool = False, echo: Callable[[str], None] = print, multi_model: Path | None = None,
          max_loaded_models: int = 5) -> None:
    """Bind the port (a clear error when it cannot be used), load the models, then serve until SIGTERM or Ctrl-C
    (blocking); requests in flight are finished first (up to 30 s). ``options.token`` defaults to
    ``$OCULI_TOKEN``; ``$OCULI_ALLOWED_HOSTS`` adds to ``options.allowed_hosts``. ``multi_model``: serve that
    folder's bundles as one multi-model endpoint instead of ``config``."""
    from oculi.serving.control import check_bind
    from oculi.settings import settings

    current = settings()
    token = options.token if options.token is not None else current.token
    options = replace(options, token=token, host=host,
                      allowed_hosts=(*current.allowed_hosts, *options.allowed_hosts))
    sock = listen_socket(host, port)
    port = int(sock.getsockname()[1])  # --port 0: the free port the system chose
    try:
        if multi_model is not None:
            app = build_multi_model_app(multi_model, options, max_loaded_models, echo=echo)
        else:
            app = build_app(config, options, echo)
        try:
            check_bind(host, token)
        except ConfigError:
            echo(f"note: listening on {host} without OCULI_TOKEN: the data plane is open to the network; the "
                 "control plane (/api/…) answers this machine only. Set OCULI_TOKEN to manage endpoints remotely.")
        served = [e.name for e in config.endpoints] if multi_model is None else [endpoint_name_for(multi_model)]
        names = ", ".join(f"/endpoints/{e}/invocations" for e in served)
        echo(f"serving at {local_url(host, port)}: POST /invocations (= {served[0]}), {names}; "
             "GET /ping, /metrics, /docs")
        server = _uvicorn(app, host, port, "info", access_log)
        # uvicorn drains on SIGTERM, then raises SIGTERM again with the handler found here: make that a clean exit
        # (status 0) rather than death by signal. Before uvicorn takes over, the same handler starts the drain.
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        server.run(sockets=[sock])
    finally:
        sock.close()
    echo("stopped: requests in flight were finished")


def local_url(host: str, port: int) -> str:
    """``http://host:port`` with ``0.0.0.0``/``::`` replaced by the loopback address a local client can reach."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


class BackgroundServer:
    """The server in a daemon thread of this process (``port=None`` picks a free port): :meth:`start` returns
    once it accepts connections; :meth:`stop` finishes the requests in flight and joins the thread."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self._socket = listen_socket(host, port or 0, fix="port={port}, or port=None for a free one")
        self.host = host
        self.port = int(self._socket.getsockname()[1])
        self._server = _uvicorn(app, host, self.port, "warning", access_log=False)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"oculi-serve-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return local_url(self.host, self.port)

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        """Start serving; raises if the server has not started within ``timeout`` seconds."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the endpoint server on port {self.port} did not start (within {timeout:g} s); "
                                  "its log above says why.")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Finish the requests in flight (up to 30 s), stop the server and free the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(GRACEFUL_SHUTDOWN_SECONDS + 5)
        self._socket.close()
