"""The console's explanation route: the try-it box posts the same image to
``/endpoints/{server}/{endpoint}/explain`` and draws the returned heat-map overlays under its answer. The image is
passed on to the endpoint server's ``POST /endpoints/NAME/explain`` (:mod:`oculi.serving.explain`)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response

EXPLAIN_TIMEOUT_SECONDS = 120.0  # an explanation runs the model several times, in float32
TRYIT_MIN_SCORE = 0.3  # detection: the boxes the try-it box draws by default


def explain_endpoint(url: str, endpoint: str, body: bytes, content_type: str, min_score: float) -> tuple[int, bytes]:
    """POST image ``body`` to the server's ``/endpoints/ENDPOINT/explain``; returns (status, JSON body) as it
    answered (a JSON error when it cannot be reached)."""
    from oculi.console.remote import _headers

    query = urlencode({"min_score": min_score})
    request = urllib.request.Request(f"{url}/endpoints/{quote(endpoint, safe='')}/explain?{query}", data=body,
                                     method="POST", headers={"Content-Type": content_type, **_headers()})
    try:
        with urllib.request.urlopen(request, timeout=EXPLAIN_TIMEOUT_SECONDS) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        message = f"cannot reach the endpoint server at {url} ({getattr(e, 'reason', e)}); is `oculi serve` running?"
        return 502, json.dumps({"error": "BadGateway", "message": message}).encode()


def router() -> APIRouter:
    """``POST /endpoints/{name}/{endpoint}/explain`` (``?min_score=``): the registered server ``name``'s
    explanation of the posted image."""
    from oculi.console.pages import store_of

    r = APIRouter()

    @r.post("/endpoints/{name}/{endpoint}/explain", include_in_schema=False)
    async def explain(request: Request, name: str, endpoint: str, min_score: float = TRYIT_MIN_SCORE) -> Response:
        item = store_of(request).lookup("endpoint", name)
        body = await request.body()
        status, answer = await asyncio.to_thread(explain_endpoint, item["location"], endpoint, body,
                                                 request.headers.get("content-type", "image/jpeg"), min_score)
        return Response(answer, status_code=status, media_type="application/json")

    return r
