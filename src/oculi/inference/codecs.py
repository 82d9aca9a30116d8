"""Request and response codecs, one per task: what an endpoint or a batch transform accepts (``Content-Type``) and
can answer (``Accept``), in SageMaker's shapes.

- every task takes ``image/jpeg``, ``image/png`` and ``application/x-image`` bodies (any image Pillow reads);
- classification answers ``application/json`` (``{"prediction": [p…]}``) and ``application/json;verbose``
  (probabilities, labels and predicted_label);
- detection answers ``application/json`` (``{"prediction": [[class, score, xmin, ymin, xmax, ymax], …]}``, corners
  normalised to the image size) and ``application/json;annotation=1`` (the training schema in pixels, with scores);
- segmentation answers ``image/png`` (the class-index mask at the input's size, in the label encoding) and
  ``application/json`` (per-class pixel fractions and the mask as base64 PNG).

Each task's :class:`TaskCodec` is a field of its contract (:mod:`oculi.tasks`). Errors carry the HTTP status the
server answers with (415, 406, 400) and say what would have been accepted."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from oculi.data.image import MAX_DECODED_PIXELS, decode_image_bytes
from oculi.errors import DataError, OculiError

IMAGE_CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")


class UnsupportedMediaType(OculiError):
    """The request's ``Content-Type`` is not one the model reads."""

    http_status = 415


class NotAcceptable(OculiError):
    """None of the request's ``Accept`` types is one the model can answer with."""

    http_status = 406


def normalize_media_type(value: str) -> str:
    """Lower-case a media type and drop spaces around ``;`` and ``=`` (``application/json; verbose`` →
    ``application/json;verbose``); the ``q`` parameter of an Accept entry is dropped."""
    parts = [p.strip() for p in value.strip().lower().split(";") if p.strip()]
    parts = [parts[0], *(p.replace(" ", "") for p in parts[1:] if not p.replace(" ", "").startswith("q="))] \
        if parts else [""]
    return ";".join(parts)


def _quality(entry: str) -> float:
    for param in entry.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


@dataclass(frozen=True)
class TaskCodec:
    """What one task's endpoint answers with: ``encoders`` maps a normalised Accept type to a function from the
    predictor's result to response bytes; ``default`` is used for a missing or ``*/*`` Accept."""

    task: str
    default: str
    encoders: dict[str, Callable[[Any], bytes]]

    def choose(self, accept: str | None) -> str:
        """The response type for an ``Accept`` header (several entries and ``q`` weights allowed; ``*/*``,
        ``application/*`` and a missing header pick the default). Raises :class:`NotAcceptable` listing the
        supported types."""
        if not accept or not accept.strip():
            return self.default
        entries = sorted((e for e in accept.split(",") if e.strip()), key=_quality, reverse=True)
        for entry in entries:
            if _quality(entry) <= 0:
                continue
            media = normalize_media_type(entry)
            if media in self.encoders:
                return media
            if media in ("*/*", "*"):
                return self.default
            major = media.split("/")[0]
            if media == f"{major}/*":
                for candidate in (self.default, *self.encoders):
                    if candidate.startswith(f"{major}/"):
                        return candidate
        raise NotAcceptable(f"Accept {accept!r} is not supported for {self.task} models; supported: "
                            f"{', '.join(self.encoders)}.")

    def encode(self, result: Any, media_type: str) -> bytes:
        """Encode one prediction result as ``media_type`` (a value returned by :meth:`choose`)."""
        return self.encoders[media_type](result)


def json_bytes(body: Any) -> bytes:
    """``body`` as compact JSON bytes (the response encoding of the JSON content types)."""
    return json.dumps(body, separators=(",", ":")).encode()


def check_content_type(content_type: str | None) -> str:
    """Normalise a request's ``Content-Type``; raise :class:`UnsupportedMediaType` unless it is an image type."""
    media = normalize_media_type(content_type or "")
    if media.split(";")[0] not in IMAGE_CONTENT_TYPES:
        shown = content_type or "(none)"
        raise UnsupportedMediaType(f"Content-Type {shown} is not supported; send the image bytes as one of "
                                   f"{', '.join(IMAGE_CONTENT_TYPES)}.")
    return media


def decode_request(body: bytes, content_type: str | None, min_side: int | None = None,
                   max_pixels: int = MAX_DECODED_PIXELS) -> torch.Tensor:
    """Check the content type and decode the body to ``uint8 [3, H, W]``. Raises :class:`UnsupportedMediaType`
    (415) or :class:`~oculi.errors.DataError` (400) with what was wrong."""
    check_content_type(content_type)
    if not isinstance(body, bytes | bytearray):
        raise DataError("the request body must be the encoded image bytes.")
    return decode_image_bytes(bytes(body), min_side=min_side, max_pixels=max_pixels)
