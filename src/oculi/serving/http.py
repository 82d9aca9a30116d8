"""What every HTTP server oculi starts shares (``oculi serve``, ``oculi jobs serve``, the console): one app
factory (:func:`oculi_app`) with the access guard (:mod:`oculi.serving.guard`), one set of exception handlers so
every error — oculi's own, 404, 405, a request that fails validation, an unexpected failure — is JSON
``{"error": <kind>, "message": <what was wrong and the fix>}``, Swagger UI served from the installed
``swagger-ui-bundle-v2`` package (``/docs`` works offline), and :func:`listen_socket`, which checks and binds the
port before anything says "serving at"."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oculi.errors import ConfigError, JobError, OculiError
from oculi.serving.guard import Access, Guard

log = logging.getLogger("oculi.serving")

DOCS_ASSETS = "/docs-assets"  # where Swagger UI's files are served from
_REASONS = {404: "NotFound", 405: "MethodNotAllowed", 406: "NotAcceptable", 415: "UnsupportedMediaType"}


def error_response(status: int, kind: str, message: str, retry_after: int | None = None) -> JSONResponse:
    """The JSON error every route answers with; ``x-Amzn-ErrorType`` lets boto3 name the error."""
    amzn = "ServiceUnavailable" if status == 503 else "InternalFailure" if status >= 500 else "ValidationError"
    headers = {"x-Amzn-ErrorType": amzn}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"error": kind, "message": message}, status_code=status, headers=headers)


def oculi_error_response(exc: OculiError) -> JSONResponse:
    """An :class:`~oculi.errors.OculiError` as its JSON response (503s carry ``Retry-After``). A
    :class:`~oculi.errors.JobError` is 404 when the job does not exist, else 409 (the job's state forbids it)."""
    status = exc.http_status
    if isinstance(exc, JobError):
        status = 404 if str(exc).startswith("No job named") else 409
    return error_response(status, type(exc).__name__, str(exc), getattr(exc, "retry_after", None))


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` the JSON ``{"error", "message"}`` shape: OculiError, HTTP errors (404 no such
    route, 405 wrong method…), validation errors (400 naming each bad field) and unexpected failures (500)."""

    @app.exception_handler(OculiError)
    def _oculi(_request: Request, exc: OculiError) -> JSONResponse:
        return oculi_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _REASONS.get(exc.status_code, "HTTPError")
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.url.path}; the routes are listed at /docs (schema: /openapi.json)."
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow") or (exc.headers or {}).get("allow")
            message = (f"{request.method} is not allowed on {request.url.path}"
                       + (f"; use {allowed}." if allowed else "; see /docs for the methods of each route."))
        else:
            message = str(exc.detail)
        response = error_response(exc.status_code, kind, message)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return error_response(400, "ValidationError", f"invalid request ({problems}). See /docs for the "
                              "request schema.")

    @app.exception_handler(Exception)
    def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request to %s failed", request.url.path, exc_info=exc)
        return error_response(500, "InternalFailure", f"the server failed on this request ({type(exc).__name__}: "
                              f"{exc}). It keeps running; report this with the server's log if it persists.")


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` with its JavaScript, CSS and icon from the installed package (no CDN)."""
    from starlette.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} — API",
                                   swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
                                   swagger_ui_parameters={"validatorUrl": None})  # no call to swagger.io


def oculi_app(title: str, description: str, access: Access, lifespan: Callable[[FastAPI], Any] | None = None,
              ) -> FastAPI:
    """A FastAPI app with what every oculi server has: the access guard (``app.state.oculi_access``), the JSON
    error handlers and offline ``/docs``. Add routes, then serve it."""
    from oculi import __version__

    app = FastAPI(title=title, version=__version__, description=description, lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.oculi_access = access
    install_error_handlers(app)
    install_docs(app)
    app.add_middleware(Guard, access=access)
    return app


def listen_socket(host: str, port: int, fix: str = "--port {port}") -> socket.socket:
    """A socket bound to ``host:port`` (not yet listening), or a :class:`~oculi.errors.ConfigError` naming the
    address, why it cannot be used and the fix (``fix``: how the caller passes a port, ``{port}`` a suggested
    one)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is not a TCP port: use a number from 1 to 65535, e.g. "
                          f"{fix.format(port=8080)}.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({e}); use 127.0.0.1 (this machine "
                          "only) or 0.0.0.0 (every network interface).") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            other = fix.format(port=port + 1 if 0 < port < 65535 else 8080)
            raise ConfigError(f"port {port} on {host} is already in use (another server, perhaps another oculi "
                              f"serve); stop that one or pick another port: {other}.") from None
        if e.errno == errno.EACCES:
            raise ConfigError(f"no permission to listen on port {port} (ports below 1024 need root); use a higher "
                              f"one, e.g. {fix.format(port=8080)}.") from None
        if e.errno == errno.EADDRNOTAVAIL:
            raise ConfigError(f"--host {host} is not an address of this machine; use 127.0.0.1 (this machine "
                              "only) or 0.0.0.0 (every network interface).") from None
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror}); try another port: "
                          f"{fix.format(port=8080)}.") from None
    return sock
