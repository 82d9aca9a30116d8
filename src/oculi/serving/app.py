"""The data plane: SageMaker's container contract over HTTP, plus a friendly JSON form and a small control plane.

- ``GET /ping`` → 200 (models load before the server accepts connections);
- ``POST /invocations`` (the first endpoint) and ``POST /endpoints/{name}/invocations`` (the path boto3's
  ``sagemaker-runtime`` client calls): image bytes in, SageMaker's response shapes out (see
  :mod:`oculi.inference.codecs`); ``X-Amzn-SageMaker-Target-Variant`` picks a variant, the response names the one
  that served it in ``x-Amzn-Invoked-Production-Variant``;
- ``POST /endpoints/{name}/predict``: multipart upload, base64 JSON or raw image bytes in; class names, scores and
  pixel boxes out; ``POST /endpoints/{name}/explain`` the same plus class activation maps, as does
  ``Accept: application/json;explain=1`` on the invocation paths (:mod:`oculi.serving.explain`);
- ``GET /metrics``: Prometheus text format;
- ``/api/endpoints…``: describe endpoints, change variant weights. With ``OCULI_TOKEN`` set these need
  ``Authorization: Bearer <token>``; without it they answer loopback clients only, and refuse state changes from
  other web origins (:mod:`oculi.serving.guard`, which also refuses Host names that are not this server's).

Every error is JSON ``{"error": <kind>, "message": <what was wrong and the fix>}`` with its HTTP status, and the
``x-Amzn-ErrorType`` header boto3 reads (ValidationError, ServiceUnavailable, InternalFailure): the handlers of
:mod:`oculi.serving.http`, shared by every oculi app."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from oculi.data.image import MAX_DECODED_PIXELS
from oculi.errors import DataError, OculiError
from oculi.inference.calibration import APPLIED_HEADER, THRESHOLD_HEADER, Override
from oculi.inference.codecs import (
    IMAGE_CONTENT_TYPES,
    UnsupportedMediaType,
    check_content_type,
    decode_request,
    normalize_media_type,
)
from oculi.serving.batching import Served
from oculi.serving.capture import DataCapture
from oculi.serving.endpoints import Endpoint, EndpointNotFound, Variant
from oculi.serving.explain import explanation, wants_explanation, with_explanation
from oculi.serving.guard import Access
from oculi.serving.http import error_response, oculi_app, oculi_error_response
from oculi.serving.metrics import ServingMetrics
from oculi.tasks import TASKS, get_task

log = logging.getLogger("oculi.serving")

SAGEMAKER_PAYLOAD_LIMIT = 6 * 1024 * 1024  # SageMaker's real-time invocation limit: 6 MB
BODY_TIMEOUT_SECONDS = 60.0  # SageMaker's limit for a whole invocation
TARGET_VARIANT = "x-amzn-sagemaker-target-variant"
TARGET_MODEL = "x-amzn-sagemaker-target-model"  # boto3 invoke_endpoint(TargetModel=…): multi-model endpoints
INFERENCE_ID = "x-amzn-sagemaker-inference-id"
INVOKED_VARIANT = "x-Amzn-Invoked-Production-Variant"
FRIENDLY_FORMS = ("multipart/form-data", "application/json")


class PayloadTooLarge(OculiError):
    """The request body is over the server's limit."""

    http_status = 413


class RequestTimeout(OculiError):
    """The request body did not arrive in time."""

    http_status = 408


class ClientGone(OculiError):
    """The client closed the connection before its request was read (nginx's 499; nobody sees the answer)."""

    http_status = 499


@dataclass(frozen=True)
class ServerSettings:
    """Server-wide limits and options. ``max_body_bytes``: largest request body (SageMaker's 6 MB by default);
    ``max_pixels``: largest decoded image; ``capture``: data capture, or ``None``; ``token``: control-plane
    token (``OCULI_TOKEN``); ``host``: the bound address and ``allowed_hosts`` the extra Host names the server
    answers to (:class:`~oculi.serving.guard.Access`)."""

    max_body_bytes: int = SAGEMAKER_PAYLOAD_LIMIT
    max_pixels: int = MAX_DECODED_PIXELS
    capture: DataCapture | None = None
    token: str | None = None
    host: str = "127.0.0.1"
    allowed_hosts: tuple[str, ...] = ()
    on_stop: Callable[[], None] | None = None  # called once the last request has been served (history)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with :class:`PayloadTooLarge` as soon as ``Content-Length`` or the bytes
    actually received pass ``limit`` (a chunked upload is counted as it streams), and with
    :class:`RequestTimeout` when it takes longer than :data:`BODY_TIMEOUT_SECONDS`."""
    mib = limit / 1024 / 1024
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is {int(declared)} bytes, over the limit of {limit} bytes "
                              f"({mib:.1f} MiB); send a smaller image (resize or recompress it) or start the server "
                              "with a larger --max-body-mb.")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"the request body passed the limit of {limit} bytes ({mib:.1f} MiB) "
                                          "while streaming; send a smaller image or start the server with a "
                                          "larger --max-body-mb.")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:.0f} s.") from None
    except ClientDisconnect:
        raise ClientGone("the client disconnected while sending the request body.") from None
    return b"".join(chunks)


class PredictRequest(BaseModel):
    """The JSON form of ``/endpoints/{name}/predict``."""

    model_config = ConfigDict(extra="forbid")
    image: str = Field(description="The encoded image (JPEG, PNG, …) as base64; a data: URI is accepted too.")


class VariantWeight(BaseModel):
    """One entry of UpdateEndpointWeightsAndCapacities."""

    model_config = ConfigDict(extra="forbid")
    VariantName: str
    DesiredWeight: float = Field(ge=0)


class UpdateWeights(BaseModel):
    """SageMaker's UpdateEndpointWeightsAndCapacities body; variants left out keep their weight."""

    model_config = ConfigDict(extra="forbid")
    DesiredWeightsAndCapacities: list[VariantWeight] = Field(min_length=1)


def batch_headers(served: Served) -> dict[str, str]:
    """What a request learns about its batching: the batch size it ran in and its wait in the queue."""
    return {"X-Oculi-Batch-Size": str(served.batch_size),
            "X-Oculi-Queue-Time-Ms": f"{served.queue_seconds * 1000:.2f}"}


def threshold_override(request: Request, variant: Variant) -> Override:
    """A request's threshold override — ``?threshold=`` or the ``X-Oculi-Threshold`` header (a number, ``class=
    value,…`` or ``none``) — checked against the variant's classes; None keeps the bundle's thresholds."""
    value = request.query_params.get("threshold", request.headers.get(THRESHOLD_HEADER))
    return variant.predictor.parse_threshold(value)


def calibration_headers(result: Any) -> dict[str, str]:
    """The ``X-Oculi-Calibration`` header (compact JSON of what was applied) for a calibrated result."""
    applied = getattr(result, "calibration", None)
    return {APPLIED_HEADER: json.dumps(applied, separators=(",", ":"))} if applied else {}


def _friendly(variant: Variant, result: Any, top_k: int | None, min_score: float) -> dict[str, Any]:
    head = {"endpoint": variant.endpoint, "variant": variant.name, "task": variant.task}
    return {**head, **get_task(variant.task).friendly(result, top_k, min_score)}


_IMAGE_BODY = {"schema": {"type": "string", "format": "binary"}}
_INVOCATION_DOC = {"requestBody": {"required": True, "content": {t: _IMAGE_BODY for t in IMAGE_CONTENT_TYPES}},
                   "parameters": [
                       {"name": "Accept", "in": "header", "schema": {"type": "string"}, "description":
                        "application/json, application/json;verbose (classification), application/json;"
                        "annotation=1 (detection), image/png (segmentation); add ;explain=1 to a JSON type for "
                        "class activation maps"},
                       {"name": "X-Amzn-SageMaker-Target-Variant", "in": "header", "schema": {"type": "string"},
                        "description": "Send the request to this variant instead of splitting by weight."}]}
_PREDICT_DOC = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                                       "properties": {"image": {"type": "string", "format": "binary"}}}},
    "application/json": {"schema": PredictRequest.model_json_schema()},
    **{t: _IMAGE_BODY for t in IMAGE_CONTENT_TYPES}}}}


def create_serving_app(endpoints: list[Endpoint], metrics: ServingMetrics,
                       settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI app serving ``endpoints`` (models already loaded). Batchers and data capture start with the
    app and stop after the last in-flight request (uvicorn drains them on SIGTERM). ``app.state.oculi_access``
    holds its access rules and per-process token."""
    settings = settings or ServerSettings()
    by_name = {e.name: e for e in endpoints}
    capture = settings.capture

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        variants = [v for e in endpoints for v in e.variants.values()]
        for variant in variants:
            variant.batcher.start()
        if capture is not None:
            capture.start()
        try:
            yield
        finally:
            for variant in [v for e in endpoints for v in e.variants.values()]:  # a multi-model endpoint's: now
                variant.batcher.stop()
            if capture is not None:
                capture.stop()
            if settings.on_stop is not None:
                settings.on_stop()

    access = Access(host=settings.host, allowed_hosts=settings.allowed_hosts, token=settings.token)
    app = oculi_app("oculi endpoints", "SageMaker-compatible inference endpoints for oculi model bundles: "
                    f"{', '.join(by_name)}.", access, lifespan)

    def endpoint_named(name: str) -> Endpoint:
        endpoint = by_name.get(name)
        if endpoint is None:
            raise EndpointNotFound(f"no endpoint named {name!r}; this server has: {', '.join(by_name)}. Call "
                                   f"POST /endpoints/<name>/invocations with one of them.")
        return endpoint

    async def run_model(variant: Variant, read: Callable[[], Awaitable[bytes]],
                        content_type: str | None) -> tuple[bytes, Served]:
        """Hold a place in the variant's queue, then read (``read()``), decode and predict one image; returns
        the image bytes and the batcher's ``Served``."""
        variant.batcher.reserve()
        try:
            body = await read()
            image = await run_in_threadpool(decode_request, body, content_type, variant.min_side,
                                            settings.max_pixels)
            future = variant.batcher.submit(image)
        except BaseException:
            variant.batcher.release()
            raise
        return body, await asyncio.wrap_future(future)

    async def observed(request: Request, name: str | None, handler: Any) -> Response:
        """Run ``handler(endpoint, variant)`` for a data-plane request; every outcome becomes a response and
        is counted by endpoint, variant and status."""
        started = time.perf_counter()
        labels = ["", ""]  # unknown endpoints are not labelled by name (unbounded label values)
        variant: Variant | None = None
        metrics.in_flight.inc()
        try:
            endpoint = endpoint_named(name) if name is not None else endpoints[0]
            labels[0] = endpoint.name
            variant = await endpoint.route(request.headers.get(TARGET_VARIANT), request.headers.get(TARGET_MODEL))
            labels[1] = variant.name
            response = await handler(endpoint, variant)
        except OculiError as e:
            response = oculi_error_response(e)
        except asyncio.CancelledError:  # uvicorn's graceful-shutdown timeout ran out before this request's turn
            log.warning("request to %s cancelled: shutdown timeout", request.url.path)
            response = error_response(503, "ShuttingDown", "the server stopped before this request was served; "
                                      "send it again (to another instance, or once the server is back).",
                                      retry_after=1)
        except Exception as e:  # noqa: BLE001 - a model failure answers 500 and the server lives on
            log.exception("request to %s failed", request.url.path)
            response = error_response(500, "InternalFailure", f"the model failed on this request "
                                      f"({type(e).__name__}: {e}). The server keeps running; report this with "
                                      "the model bundle if it persists.")
        finally:
            metrics.in_flight.dec()
        seconds = time.perf_counter() - started
        metrics.requests.labels(*labels, str(response.status_code)).inc()
        if variant is not None:
            if response.status_code < 400:
                metrics.latency.labels(*labels).observe(seconds)
            variant.stats.record(response.status_code, seconds)
            response.headers[INVOKED_VARIANT] = variant.name
        return response

    async def invoke(request: Request, name: str | None) -> Response:
        async def handler(endpoint: Endpoint, variant: Variant) -> Response:
            content_type = request.headers.get("content-type")
            check_content_type(content_type)
            explain, accept = wants_explanation(request.headers.get("accept"))
            media = variant.codec.choose(accept)
            override = threshold_override(request, variant)
            body, served = await run_model(variant, lambda: read_body(request, settings.max_body_bytes),
                                           content_type)
            result = variant.predictor.calibrate(served.result, override)
            payload = await run_in_threadpool(variant.codec.encode, result, media)
            if explain:
                payload = with_explanation(payload, await run_in_threadpool(explain_body, variant, body, content_type))
            if capture is not None and capture.sampled():
                capture.record(endpoint.name, variant.name, normalize_media_type(content_type or ""), body,
                               media, payload, request.headers.get(INFERENCE_ID))
            return Response(payload, media_type=media,
                            headers={**batch_headers(served), **calibration_headers(result)})

        return await observed(request, name, handler)

    data_plane = APIRouter(tags=["data plane"])

    @data_plane.get("/ping", summary="Health check (SageMaker's container contract)")
    def ping() -> dict[str, Any]:
        return {"status": "Healthy", "endpoints": list(by_name)}

    @data_plane.post("/invocations", summary="Invoke the first endpoint (SageMaker's container contract)",
                     openapi_extra=_INVOCATION_DOC, response_class=Response)
    async def invocations(request: Request) -> Response:
        return await invoke(request, None)

    @data_plane.post("/endpoints/{name}/invocations", summary="InvokeEndpoint (what boto3's sagemaker-runtime "
                     "client calls)", openapi_extra=_INVOCATION_DOC, response_class=Response)
    async def endpoint_invocations(name: str, request: Request) -> Response:
        return await invoke(request, name)

    @data_plane.post("/endpoints/{name}/predict", summary="Friendly JSON predictions",
                     openapi_extra=_PREDICT_DOC,
                     response_model=Union[tuple(TASKS.get(t).friendly_schema for t in TASKS)])  # noqa: UP007
    async def predict(name: str, request: Request,
                      top_k: int | None = Query(None, ge=1, description="Classification: classes to return "
                                                "(default all, best first)."),
                      min_score: float = Query(0.0, ge=0, le=1, description="Detection: leave out objects "
                                               "scoring below this."),
                      threshold: str | None = Query(None, description="Override the bundle's thresholds: a "
                                                    "number for every class, class=value,… or none (also the "
                                                    "X-Oculi-Threshold header).")) -> Response:
        async def handler(_endpoint: Endpoint, variant: Variant) -> Response:
            kind = friendly_kind(request)
            override = variant.predictor.parse_threshold(threshold if threshold is not None
                                                         else request.headers.get(THRESHOLD_HEADER))
            _, served = await run_model(variant, lambda: friendly_image(request, kind, settings.max_body_bytes),
                                        "application/x-image")
            result = variant.predictor.calibrate(served.result, override)
            return JSONResponse(_friendly(variant, result, top_k, min_score),
                                headers={**batch_headers(served), **calibration_headers(result)})

        return await observed(request, name, handler)

    def explain_body(variant: Variant, body: bytes, content_type: str | None, **options: Any) -> dict[str, Any]:
        image = decode_request(body, content_type, variant.min_side, settings.max_pixels)
        return explanation(variant.predictor, image, **options)

    @data_plane.post("/endpoints/{name}/explain", summary="Friendly JSON predictions with class activation maps "
                     "(overlay PNGs in base64, faithfulness scores; float32)", openapi_extra=_PREDICT_DOC)
    async def explain(name: str, request: Request,
                      method: str = Query("auto", description="auto (the task's measured default), gradcam, "
                                          "gradcam++, layercam or eigencam."),
                      target: Annotated[list[str] | None, Query(description="Class(es) to explain (default: "
                                                                "the task's).")] = None,
                      top_k: int | None = Query(None, ge=1, description="Classification: classes to return."),
                      min_score: float = Query(0.0, ge=0, le=1, description="Detection: leave out and do not "
                                               "explain objects scoring below this.")) -> Response:
        async def handler(_endpoint: Endpoint, variant: Variant) -> Response:
            kind = friendly_kind(request)
            body, served = await run_model(variant, lambda: friendly_image(request, kind, settings.max_body_bytes),
                                           "application/x-image")
            explained = await run_in_threadpool(explain_body, variant, body, "application/x-image", method=method,
                                                targets=target or None, min_score=min_score)
            return JSONResponse({**_friendly(variant, served.result, top_k, min_score), "explanation": explained},
                                headers=batch_headers(served))

        return await observed(request, name, handler)

    @data_plane.get("/metrics", summary="Prometheus metrics", response_class=Response)
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # Who may call these (token, loopback, same origin) is the app's guard's business (oculi.serving.guard).
    control = APIRouter(prefix="/api", tags=["control plane"])

    @control.get("/endpoints", summary="ListEndpoints")
    def list_endpoints() -> dict[str, Any]:
        return {"Endpoints": [{"EndpointName": e.name, "EndpointStatus": "InService"} for e in endpoints]}

    @control.get("/endpoints/{name}", summary="DescribeEndpoint, with per-variant counts and latencies")
    def describe_endpoint(name: str) -> dict[str, Any]:
        return endpoint_named(name).describe()

    @control.post("/endpoints/{name}/weights", summary="UpdateEndpointWeightsAndCapacities (weights only)")
    def update_weights(name: str, body: UpdateWeights) -> dict[str, Any]:
        endpoint = endpoint_named(name)
        endpoint.set_weights({w.VariantName: w.DesiredWeight for w in body.DesiredWeightsAndCapacities})
        log.info("endpoint %s weights → %s", name, endpoint.weights)
        return endpoint.describe()

    app.include_router(data_plane)
    app.include_router(control)
    return app


def friendly_kind(request: Request) -> str:
    """The media type of a friendly request (``/predict``, ``/explain``): image bytes or one of
    :data:`FRIENDLY_FORMS`; anything else is :class:`UnsupportedMediaType` naming what is accepted."""
    kind = normalize_media_type(request.headers.get("content-type", "")).split(";")[0]
    if kind not in (*IMAGE_CONTENT_TYPES, *FRIENDLY_FORMS):
        raise UnsupportedMediaType(f"Content-Type {request.headers.get('content-type', '(none)')} is not "
                                   f"supported here; send one of {', '.join(FRIENDLY_FORMS)} or image "
                                   f"bytes as {', '.join(IMAGE_CONTENT_TYPES)}.")
    return kind


async def friendly_image(request: Request, kind: str, limit: int) -> bytes:
    """The image bytes of a ``/predict`` request: the multipart field ``image``, the base64 ``image`` of a JSON
    body, or the raw body. Raises :class:`~oculi.errors.DataError` saying what was wrong."""
    body = await read_body(request, limit)
    if kind == "application/json":
        try:
            data = PredictRequest.model_validate_json(body).image
        except ValidationError as e:
            first = e.errors()[0]
            raise DataError(f"the JSON body is not {{\"image\": \"<base64>\"}} ({first['msg']} at "
                            f"{'.'.join(str(p) for p in first['loc']) or 'the top level'}); put the base64 of the "
                            "image file in `image` and options in the query (?top_k=3).") from None
        data = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise DataError("`image` is not valid base64; send the image file's bytes base64-encoded "
                            "(e.g. base64.b64encode(open('x.jpg', 'rb').read()).decode()).") from None
    if kind != "multipart/form-data":
        return body
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def once() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await MultiPartParser(request.headers, once(), max_files=4, max_fields=16).parse()
    except MultiPartException as e:
        raise DataError(f"the multipart body cannot be read ({e.message}); upload the file in a field named "
                        "`image`, e.g. curl -F image=@photo.jpg.") from None
    try:
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            fields = ", ".join(form.keys()) or "none"
            raise DataError(f"the multipart body has no file field `image` (fields: {fields}); upload it as "
                            "curl -F image=@photo.jpg.")
        return await upload.read()
    finally:
        await form.close()
