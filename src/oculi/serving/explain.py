"""Explanations on endpoints: ``POST /endpoints/{name}/explain`` and ``Accept: application/json;explain=1`` on the
invocation paths answer the prediction plus a class activation map per target (the overlay PNG in base64 and its
faithfulness score, :mod:`oculi.explain`). Explanations run in float32 whatever precision the variant serves in,
one at a time per server (they need gradients and several forward passes)."""

from __future__ import annotations

import json
import threading
from typing import Any

from oculi.errors import ConfigError
from oculi.inference.codecs import normalize_media_type

EXPLAIN_PARAMETER = "explain=1"
_lock = threading.Lock()
_explainers: dict[tuple[int, str], Any] = {}  # per (predictor, method): keeps its layer choice


def wants_explanation(accept: str | None) -> tuple[bool, str | None]:
    """``(True, the Accept header without the explain parameter)`` when an entry of ``accept`` carries
    ``explain=1`` (only JSON answers can carry an explanation), else ``(False, accept)``."""
    if not accept:
        return False, accept
    for entry in accept.split(","):
        media = normalize_media_type(entry)
        parts = media.split(";")
        if EXPLAIN_PARAMETER in parts[1:]:
            rest = ";".join(p for p in parts if p != EXPLAIN_PARAMETER)
            if parts[0] != "application/json":
                raise ConfigError(f"Accept {entry.strip()!r}: explanations come as JSON; ask for "
                                  "application/json;explain=1.")
            return True, rest
    return False, accept


def explanation(predictor: Any, image: Any, *, method: str = "auto", targets: list[str] | None = None,
                min_score: float = 0.0) -> dict[str, Any]:
    """:meth:`~oculi.explain.ImageExplanation.response` of ``image`` (``uint8 [3, H, W]``) for ``predictor``."""
    from oculi.explain import Explainer

    with _lock:
        key = (id(predictor), method)
        if key not in _explainers:
            _explainers[key] = Explainer(predictor, method)
        return _explainers[key].explain(image, targets, min_score).response()


def with_explanation(payload: bytes, explained: dict[str, Any]) -> bytes:
    """A JSON prediction ``payload`` with the ``explanation`` key added."""
    return json.dumps({**json.loads(payload), "explanation": explained}).encode()
