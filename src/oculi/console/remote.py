"""Talking to the ``oculi serve`` processes the console knows (registered by URL): their control plane
(``/api/endpoints``: variants, weights, request counts, latencies) and their data plane (``/endpoints/NAME/
invocations``, what the try-it box sends an image to). Plain HTTP with the standard library; the console's own
``OCULI_TOKEN`` is sent as the bearer token, for servers started with the same one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from oculi.errors import ConfigError

TIMEOUT_SECONDS = 5.0
INVOKE_TIMEOUT_SECONDS = 60.0  # SageMaker's limit for one invocation


def check_url(url: str) -> str:
    """``url`` without a trailing slash when it is an ``http(s)://host[:port]`` address, else a ConfigError."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"endpoint server URL {url!r} is not an http(s) address; give the address `oculi serve` "
                          "printed, e.g. http://127.0.0.1:8080.")
    return url.strip().rstrip("/")


def _headers() -> dict[str, str]:
    from oculi.settings import settings

    token = settings().token
    return {"Authorization": f"Bearer {token}"} if token else {}


def _get_json(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", **_headers()})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - http(s) checked
        return json.loads(response.read())


def _classes(model: str) -> list[str]:
    """The class names of a variant's bundle when the console can read it (same machine), else []."""
    from oculi.artifacts import read_meta, resolve_bundle_path
    from oculi.errors import OculiError

    try:
        path = Path(model)
        return list(read_meta(resolve_bundle_path(path) if path.is_dir() else path)["classes"])
    except (OculiError, OSError):
        return []


def describe_endpoints(url: str) -> dict[str, Any]:
    """``{"endpoints": [DescribeEndpoint + each variant's "Classes"], "error": None}`` of the server at ``url``, or
    ``{"endpoints": [], "error": <why it could not be read>}``."""
    try:
        names = [e["EndpointName"] for e in _get_json(f"{url}/api/endpoints")["Endpoints"]]
        described = [_get_json(f"{url}/api/endpoints/{quote(name, safe='')}") for name in names]
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message", e.reason)
        except (json.JSONDecodeError, AttributeError):
            message = e.reason
        return {"endpoints": [], "error": f"HTTP {e.code}: {message}"}
    except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
        return {"endpoints": [], "error": f"{getattr(e, 'reason', e)}"}
    for endpoint in described:
        for variant in endpoint.get("ProductionVariants", []):
            variant["Classes"] = _classes(str(variant.get("ModelDataUrl", "")))
    return {"endpoints": described, "error": None}


def set_weights(url: str, endpoint: str, weights: dict[str, float]) -> dict[str, Any]:
    """UpdateEndpointWeightsAndCapacities on the server at ``url`` (weights only); returns the endpoint as it now
    is. The server's refusal (an unknown variant, a negative weight) is a ConfigError with its message."""
    body = json.dumps({"DesiredWeightsAndCapacities": [{"VariantName": k, "DesiredWeight": v}
                                                       for k, v in weights.items()]}).encode()
    request = urllib.request.Request(f"{url}/api/endpoints/{quote(endpoint, safe='')}/weights", data=body,
                                     method="POST", headers={"Content-Type": "application/json", **_headers()})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read()).get("message", e.reason)
        except (json.JSONDecodeError, AttributeError):
            message = e.reason
        raise ConfigError(f"the endpoint server at {url} refused the weights: {message}") from None
    except (urllib.error.URLError, OSError) as e:
        raise ConfigError(f"cannot reach the endpoint server at {url} ({getattr(e, 'reason', e)}); is `oculi "
                          "serve` running?") from None


def invoke_endpoint(url: str, endpoint: str, body: bytes, content_type: str) -> tuple[int, str, bytes]:
    """POST image ``body`` to ``/endpoints/ENDPOINT/invocations`` asking for SageMaker's JSON answer; returns
    (status, content type, body) as the server answered (its JSON error on failure)."""
    request = urllib.request.Request(
        f"{url}/endpoints/{quote(endpoint, safe='')}/invocations", data=body, method="POST",
        headers={"Content-Type": content_type, "Accept": "application/json", **_headers()})
    try:
        with urllib.request.urlopen(request, timeout=INVOKE_TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, response.headers.get("content-type", "application/json"), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", "application/json"), e.read()
    except (urllib.error.URLError, OSError) as e:
        message = f"cannot reach the endpoint server at {url} ({getattr(e, 'reason', e)}); is `oculi serve` running?"
        return 502, "application/json", json.dumps({"error": "BadGateway", "message": message}).encode()
