"""Who may talk to a server oculi starts: one ASGI middleware every oculi app installs (``oculi serve``,
``oculi jobs serve``, the console), configured by one :class:`Access`.

What it enforces, in order:

1. **Host.** A request whose ``Host`` is not a name of this server is refused with 421: accepted are
   ``localhost`` (and ``*.localhost``), loopback addresses, the bound address, any IP address when bound to
   ``0.0.0.0``/``::`` (an address cannot be rebound through DNS) together with this machine's host name, and the
   names of ``--allowed-hosts`` / ``OCULI_ALLOWED_HOSTS``. This is what stops DNS rebinding: a web page on
   ``attacker.example`` whose name has been pointed at 127.0.0.1 still sends ``Host: attacker.example``.
2. **Token.** With ``OCULI_TOKEN`` set, the guarded paths (every path, for the jobs server; ``/api/…`` for the
   endpoint server) need ``Authorization: Bearer <token>`` (401). Without it, they answer loopback clients only
   (403).
3. **Origin.** A state-changing request (anything but GET, HEAD, OPTIONS) to a guarded path without the token must
   not come from another web origin: a foreign ``Origin`` (or ``Origin: null``, or ``Sec-Fetch-Site: cross-site``)
   is refused with 403. Browsers send ``Origin`` with every cross-origin request they make; clients that are not
   browsers (curl, the SDK, the CLI) send none and are accepted.

Actions that run code (script-mode training jobs) need the token even on loopback: :func:`require_token`.
Without ``OCULI_TOKEN`` the server makes a per-process token (:attr:`Access.secret`): an in-process client (the
SDK's ``Model.deploy``, the console) is handed it, and ``oculi jobs serve`` writes it to a file only its user can
read (:func:`write_token_file`)."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

from oculi.errors import OculiError

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


class Unauthorized(OculiError):
    """A request without the right token where one is needed."""

    http_status = 401


class Forbidden(OculiError):
    """A request refused for where it came from (another machine, another web origin)."""

    http_status = 403


class MisdirectedRequest(OculiError):
    """A request for a host name this server does not answer to (DNS rebinding, or a name not configured)."""

    http_status = 421


def _hostname(authority: str) -> str:
    """``host[:port]`` (``[v6]:port`` too) → the lower-case host name without a trailing dot."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1:].partition("]")[0]
    if authority.count(":") > 1:  # a bare IPv6 address
        return authority
    return authority.partition(":")[0].rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine only."""
    ip = _ip(host.strip("[]"))
    return ip.is_loopback if ip is not None else host.lower() == "localhost"


def split_hosts(value: str) -> tuple[str, ...]:
    """``"a.example, .corp.example"`` (``--allowed-hosts``) → ``("a.example", ".corp.example")``."""
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def bearer_matches(authorization: str, secret: str) -> bool:
    """Whether an ``Authorization`` header value is ``Bearer <secret>`` (compared in constant time)."""
    scheme, _, value = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), secret.encode())


@dataclass(frozen=True)
class Access:
    """One server's access rules. ``host``: the address it is bound to; ``allowed_hosts``: extra Host names
    (``.example.com`` matches subdomains, ``*`` any name); ``token``: ``OCULI_TOKEN`` (``None``: a per-process
    :attr:`secret` is made); ``token_everywhere``: with a token, every path needs it (else only
    ``guarded``); ``guarded``: path prefixes of the control plane."""

    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    token: str | None = None
    token_everywhere: bool = False
    guarded: tuple[str, ...] = ("/api/",)
    secret: str = field(default="", repr=False)
    cookie: str | None = None  # a cookie that may carry the token instead of the header (the console's login)
    public: tuple[str, ...] = ()  # path prefixes that need no token (a login page and the assets it uses)
    login: str | None = None  # where a browser asking for a page without the token is sent (303)

    def __post_init__(self) -> None:
        if not self.secret:
            object.__setattr__(self, "secret", self.token or secrets.token_urlsafe(32))

    def host_allowed(self, authority: str) -> bool:
        """Whether a request's ``Host`` header names this server."""
        name = _hostname(authority)
        if not name:
            return False
        if name == "localhost" or name.endswith(".localhost") or name == _hostname(self.host):
            return True
        ip = _ip(name)
        wildcard = self.host in WILDCARDS
        if ip is not None and (ip.is_loopback or wildcard):
            return True
        if wildcard and name == socket.gethostname().lower():
            return True
        for allowed in self.allowed_hosts:
            allowed = allowed.strip().lower()
            if allowed == "*" or allowed == name:
                return True
            suffix = allowed[1:] if allowed.startswith("*.") else allowed
            if suffix.startswith(".") and (name.endswith(suffix) or name == suffix[1:]):
                return True
        return False

    def is_guarded(self, path: str) -> bool:
        """Whether ``path`` belongs to the control plane."""
        return any(path.startswith(p) or path == p.rstrip("/") for p in self.guarded)

    def cookie_authorised(self, cookie_header: str) -> bool:
        """Whether a ``Cookie`` header carries this server's token in :attr:`cookie` (only with ``OCULI_TOKEN``)."""
        if not (self.cookie and self.token and cookie_header):
            return False
        from http.cookies import CookieError, SimpleCookie

        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            return False
        morsel = jar.get(self.cookie)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.secret.encode())

    def authorised(self, authorization: str) -> bool:
        """Whether an ``Authorization`` header carries this server's token (``OCULI_TOKEN`` or the per-process
        one)."""
        return bearer_matches(authorization, self.secret)


def cross_origin(headers: dict[str, str], authority: str) -> str | None:
    """Why a browser request comes from another web origin, or ``None`` when it does not."""
    origin = headers.get("origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.scheme not in ("http", "https") or parts.netloc.lower() != authority.lower():
            return f"Origin {origin} is not this server's (http://{authority})"
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):
        return f"the browser says it comes from another site (Sec-Fetch-Site: {site})"
    return None


def check(access: Access, scope: Scope) -> OculiError | None:
    """The error refusing the request of ``scope`` (an ASGI http or websocket scope), or ``None``."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    authority = headers.get("host", "")
    if not access.host_allowed(authority):
        bound = ("IP addresses", socket.gethostname()) if access.host in WILDCARDS else (access.host,)
        allowed = ", ".join(("localhost", *bound, *access.allowed_hosts))
        name = _hostname(authority) or "(none)"
        return MisdirectedRequest(
            f"this server answers requests for {allowed} only, not Host {authority or '(none)'!r}: a web page "
            "reaching it under another name (DNS rebinding) is refused. If you reach it under that name on "
            f"purpose, start the server with --allowed-hosts {name} (or OCULI_ALLOWED_HOSTS={name}).")
    path = scope.get("path", "")
    if any(path.startswith(p) for p in access.public):
        return None
    if not access.is_guarded(path) and not (access.token and access.token_everywhere):
        return None
    with_token = access.authorised(headers.get("authorization", ""))
    # a cookie is sent by the browser whatever page asks, so it is the token for reading only: state changes with
    # it still pass the cross-origin check below
    by_cookie = not with_token and access.cookie_authorised(headers.get("cookie", ""))
    if access.token and not (with_token or by_cookie):
        login = f" or log in at {access.login}" if access.login else ""
        return Unauthorized(f"missing or wrong token: send `Authorization: Bearer $OCULI_TOKEN`{login}.")
    if not access.is_guarded(path) or with_token:
        return None
    client = scope.get("client") or ("", 0)
    if not is_loopback(str(client[0])) and not by_cookie:
        return Forbidden("the control plane answers only this machine while no token is set; start the server "
                         "with OCULI_TOKEN=<secret> and send `Authorization: Bearer <secret>`.")
    unsafe = scope["type"] == "websocket" or scope.get("method", "GET") not in SAFE_METHODS
    why = cross_origin(headers, authority) if unsafe else None
    if why is not None:
        return Forbidden(f"refused a cross-origin request: {why}. A web page may not change this server's "
                         "state; use the oculi CLI, the SDK or curl, or send `Authorization: Bearer <token>`.")
    return None


def _wants_page(scope: Scope) -> bool:
    """Whether a request is a browser's GET of a page (it accepts HTML), not an API call."""
    accept = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"accept"), "")
    return scope.get("method") == "GET" and "text/html" in accept


class Guard:
    """ASGI middleware enforcing :class:`Access` on every request (the OpenAPI schema and docs included)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        """Refuse the request (a JSON error, or closing a websocket) or pass it on."""
        if scope["type"] in ("http", "websocket"):
            error = check(self.access, scope)
            if error is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": str(error)[:120]})
                    return
                from oculi.serving.http import oculi_error_response

                if isinstance(error, Unauthorized) and self.access.login and _wants_page(scope):
                    from urllib.parse import quote

                    from starlette.responses import RedirectResponse

                    target = f"{self.access.login}?next={quote(scope.get('path', '/'), safe='/')}"
                    await RedirectResponse(target, status_code=303)(scope, receive, send)
                    return
                response = oculi_error_response(error)
                if isinstance(error, Unauthorized):
                    response.headers["WWW-Authenticate"] = "Bearer"
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def access_of(request: Request) -> Access:
    """The :class:`Access` of the app serving ``request``."""
    return request.app.state.oculi_access


def require_token(request: Request, action: str) -> None:
    """Refuse ``request`` unless it carries the server's token, whatever its address: for actions that run
    code. ``action`` says what was asked (e.g. "a script-mode training job runs your code")."""
    access = access_of(request)
    if not access.authorised(request.headers.get("authorization", "")):
        where = ("$OCULI_TOKEN" if access.token else
                 f"the per-process token the server wrote to {token_file(request.url.port or 80)} (readable by "
                 "its user only)")
        raise Unauthorized(f"{action}, so it needs the token even from this machine: send "
                           f"`Authorization: Bearer <token>` with {where}.")


def token_file(port: int) -> Path:
    """Where ``oculi serve`` / ``oculi jobs serve`` on ``port`` keep their per-process token:
    ``$OCULI_HOME/servers/<port>.token``."""
    from oculi.settings import oculi_home

    return oculi_home() / "servers" / f"{port}.token"


def write_token_file(port: int, secret: str) -> Path:
    """Write ``secret`` to :func:`token_file` readable by this user only (folder 0700, file 0600)."""
    path = token_file(port)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return path
