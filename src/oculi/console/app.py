"""The console's app and server: :func:`create_app` builds it on the conventions every oculi server shares
(:func:`oculi.serving.http.oculi_app`: the access guard, JSON errors, offline ``/docs``), :func:`serve` runs it.

Security, as ``oculi jobs serve``: it binds 127.0.0.1 by default and refuses any other address without
``OCULI_TOKEN``. Without a token only this machine is answered and a page on another web origin cannot make it
change anything (the guard's Origin / ``Sec-Fetch-Site`` check on every POST). With a token every page and API call
needs it — ``Authorization: Bearer <token>``, or the HttpOnly, ``SameSite=Strict`` cookie the login form sets;
POSTs that come with the cookie still pass the cross-origin check. Every response carries a Content-Security-Policy
that allows this server only (no CDN, no inline script), so the console works with no network at all.

The console also serves the control plane's REST API (``/api/training-jobs``, what ``oculi jobs serve`` serves) and
runs the job queue, so one ``oculi console`` is all a user starts to train from the browser."""

from __future__ import annotations

import hmac
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from oculi.errors import JobError, OculiError
from oculi.serving.guard import Access, cross_origin
from oculi.serving.http import error_response, listen_socket, oculi_app, oculi_error_response

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
COOKIE = "oculi_console"
LOOPBACK = "127.0.0.1"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
NAV = (("/jobs", "Jobs"), ("/jobs/new", "New job"), ("/models", "Models"), ("/endpoints", "Endpoints"),
       ("/datasets", "Datasets"), ("/labeling", "Labeling"), ("/tuning", "Tuning"), ("/registry", "Registry"),
       ("/monitoring", "Monitoring"))


class SecurityHeaders:
    """ASGI middleware adding the Content-Security-Policy and its companions to every response."""

    HEADERS = ((b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY"))

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def templates() -> Jinja2Templates:
    """The console's Jinja2 environment (autoescaped HTML)."""
    from oculi import __version__

    env = Jinja2Templates(directory=str(TEMPLATES))
    env.env.globals.update(nav=NAV, version=__version__)
    return env


def wants_html(request: Request) -> bool:
    """Whether ``request`` is a browser asking for a page (not an API or fetch call)."""
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "")


def install_page_errors(app: FastAPI) -> None:
    """Errors of page requests as an HTML page (the message, the fix, a way back); API calls keep the JSON shape
    of :mod:`oculi.serving.http`."""

    def page(request: Request, status: int, kind: str, message: str) -> HTMLResponse:
        return app.state.templates.TemplateResponse(request, "error.html", {"status": status, "kind": kind,
                                                                            "message": message}, status_code=status)

    @app.exception_handler(OculiError)
    def _oculi(request: Request, exc: OculiError) -> Response:
        response = oculi_error_response(exc)
        if wants_html(request):
            status = 404 if isinstance(exc, JobError) and str(exc).startswith("No ") else response.status_code
            return page(request, status, type(exc).__name__, str(exc))
        return response

    @app.exception_handler(StarletteHTTPException)
    def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_html(request) and exc.status_code == 404:
            return page(request, 404, "NotFound", f"there is no page {request.url.path}; use the top bar.")
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no route {request.url.path}; the API is listed at /docs."
        return error_response(exc.status_code, "HTTPError" if exc.status_code != 404 else "NotFound", message)


def install_login(app: FastAPI) -> None:
    """``GET/POST /login`` (token mode): the form that checks the token and sets the HttpOnly cookie; ``POST
    /logout`` clears it."""
    access: Access = app.state.oculi_access

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = "/jobs") -> HTMLResponse:  # noqa: A002 - the query's name
        return app.state.templates.TemplateResponse(request, "login.html", {"next": _local(next), "error": None})

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        form = await request.form()
        target = _local(str(form.get("next") or "/jobs"))
        why = cross_origin({k.lower(): v for k, v in request.headers.items()}, request.headers.get("host", ""))
        token = str(form.get("token") or "")
        if why is not None or not access.token or not hmac.compare_digest(token.encode(), access.secret.encode()):
            error = (f"refused a login from another web origin ({why})." if why else
                     "wrong token: paste the value of OCULI_TOKEN the console was started with." if access.token else
                     "this console runs without a token (this machine only); there is nothing to log in to.")
            return app.state.templates.TemplateResponse(request, "login.html", {"next": target, "error": error},
                                                        status_code=403 if why else 401)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, access.secret, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")
        return response

    @app.post("/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response


def _local(target: str) -> str:
    """``target`` when it is a path of this server, else ``/jobs`` (no open redirect to another site)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/jobs"


def create_app(token: str | None = None, host: str = LOOPBACK, allowed_hosts: Sequence[str] = (),
               dispatch_loop: bool = True) -> FastAPI:
    """The console app. ``token``: ``OCULI_TOKEN`` (every page and call then needs it: header or login cookie);
    ``host``: the address it will be bound to, ``allowed_hosts`` extra Host names (see
    :class:`~oculi.serving.guard.Access`); ``dispatch_loop``: run the job queue while serving."""
    from oculi.console import audits, labeling, launch, monitoring, pages, registry, tuning
    from oculi.console.explain import router as explain_router
    from oculi.serving.control import control_router, dispatch_lifespan

    access = Access(host=host, allowed_hosts=tuple(allowed_hosts), token=token or None, token_everywhere=True,
                    guarded=("/",), cookie=COOKIE, public=("/static/", "/login"), login="/login" if token else None)
    app = oculi_app("oculi console", "The web console over oculi's jobs, models, datasets and endpoints, and the "
                    "control plane's REST API.", access, dispatch_lifespan() if dispatch_loop else None)
    app.state.templates = templates()
    app.state.templates.env.globals["token_mode"] = bool(token)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    install_page_errors(app)
    install_login(app)
    app.include_router(control_router())
    app.include_router(pages.router())
    app.include_router(labeling.router())
    app.include_router(launch.router())
    app.include_router(registry.router())
    app.include_router(explain_router())
    app.include_router(tuning.router())
    app.include_router(monitoring.router())
    app.include_router(audits.router())
    app.add_middleware(SecurityHeaders)  # outermost: the guard's refusals carry the headers too
    return app


def serve(host: str = LOOPBACK, port: int = 8000, token: str | None = None, allowed_hosts: Sequence[str] = (),
          echo: Callable[[str], None] = print) -> None:
    """Run the console (blocking) until Ctrl-C or SIGTERM. ``token`` defaults to ``$OCULI_TOKEN`` and is required
    on any address but loopback; ``allowed_hosts`` adds to ``$OCULI_ALLOWED_HOSTS``. The port is bound (or a
    ConfigError raised) before the URL is printed."""
    import uvicorn

    from oculi.serving.control import check_bind
    from oculi.serving.server import local_url
    from oculi.settings import settings

    current = settings()
    token = token if token is not None else current.token
    check_bind(host, token)
    sock = listen_socket(host, port)
    port = int(sock.getsockname()[1])
    app = create_app(token, host=host, allowed_hosts=(*current.allowed_hosts, *allowed_hosts))
    try:
        login = "; log in with the value of OCULI_TOKEN" if token else " (this machine only: no token set)"
        echo(f"console at {local_url(host, port)}{login}. REST API at /api, docs at /docs. Ctrl-C stops it.")
        # an open job page keeps an event stream: wait 3 s for them at shutdown, then close them
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                               timeout_graceful_shutdown=3))
        signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
        server.run(sockets=[sock])
    finally:
        sock.close()
