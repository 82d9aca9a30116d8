"""Score thresholds and temperature scaling that ship in a model bundle (``model.json``'s ``"calibration"`` key,
written by ``oculi evaluate MODEL DATA --choose-thresholds RULE --write``) and how a prediction applies them.

``model.json``::

    "calibration": {
      "rule": "precision=0.95",            # how the thresholds were chosen
      "temperature": 1.84,                 # scores are divided by it in logit space (1 = unchanged)
      "thresholds": {"bee": 0.41, …},      # per class (multi-label classification, detection); or null
      "unsure": 0.72,                      # single-label classification: below this top probability, "unsure"
      "data": {"source": "…", "fingerprint": "…", "num_images": 120},
      "ece": {"before": 0.12, "after": 0.03},
      "created": "2026-12-05T21:40:00+00:00"
    }

Bundles without the key load and predict exactly as before. A request may replace the stored thresholds:
:func:`parse_threshold` reads ``?threshold=`` / the ``X-Oculi-Threshold`` header (a number for every class,
``class=value,…`` for some, or ``none``); the temperature always applies. Every calibrated answer carries an
:class:`Applied` record saying what was applied."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import torch

from oculi.errors import ConfigError

CALIBRATION_KEY = "calibration"
THRESHOLD_HEADER = "X-Oculi-Threshold"
APPLIED_HEADER = "X-Oculi-Calibration"
NONE_WORDS = ("none", "off")
EPSILON = 1e-7


@dataclass(frozen=True)
class Calibration:
    """What ``model.json`` stores (see the module docstring). ``thresholds``: class name → score threshold (a
    score counts when ≥ it); ``unsure``: the single-label top-probability threshold; ``temperature`` > 0."""

    rule: str
    temperature: float = 1.0
    thresholds: dict[str, float] | None = None
    unsure: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    ece: dict[str, float] = field(default_factory=dict)
    created: str | None = None

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Calibration | None:
        """The calibration in a ``model.json`` dict, or None when it has none."""
        stored = meta.get(CALIBRATION_KEY)
        if not stored:
            return None
        return cls(rule=str(stored.get("rule", "")), temperature=float(stored.get("temperature", 1.0)),
                   thresholds=stored.get("thresholds"), unsure=stored.get("unsure"), data=stored.get("data", {}),
                   ece=stored.get("ece", {}), created=stored.get("created"))

    def to_meta(self) -> dict[str, Any]:
        """The JSON-ready dict stored under ``model.json``'s ``"calibration"``."""
        return {"rule": self.rule, "temperature": round(self.temperature, 6), "thresholds": self.thresholds,
                "unsure": self.unsure, "data": self.data, "ece": self.ece, "created": self.created}


@dataclass(frozen=True)
class Applied:
    """What one answer applied: the ``temperature``, the per-class ``thresholds`` or the ``unsure`` threshold
    (None: none applied), and their ``source`` — ``model`` (model.json, with its ``rule``), ``request`` (an
    override) or ``none`` (thresholds switched off by the request)."""

    temperature: float
    thresholds: dict[str, float] | None
    unsure: float | None
    source: str
    rule: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"source", "rule", "temperature", "thresholds", "unsure"}`` for answers."""
        return {"source": self.source, "rule": self.rule, "temperature": round(self.temperature, 6),
                "thresholds": self.thresholds, "unsure": self.unsure}

    def header(self) -> str:
        """The compact JSON sent in the :data:`APPLIED_HEADER` response header."""
        return json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=True)


Override = float | dict[str, float] | str | None


def parse_threshold(value: str | float | dict[str, float] | None, classes: list[str]) -> Override:
    """A request's threshold override: None (absent: the model's thresholds), ``"none"`` (no thresholds), a
    number in [0, 1] (every class; the unsure threshold for single-label models) or ``{class: value}`` parsed from
    ``"bee=0.3,wasp=0.5"``. Raises :class:`ConfigError` naming the value and the accepted forms."""
    if value is None or isinstance(value, float | int | dict):
        return _checked(value, classes)
    text = value.strip()
    if not text or text.lower() == "model":
        return None
    if text.lower() in NONE_WORDS:
        return "none"
    if "=" in text:
        pairs: dict[str, float] = {}
        for part in text.split(","):
            name, _, number = part.partition("=")
            pairs[name.strip()] = _number(number, text)
        return _checked(pairs, classes)
    return _checked(_number(text, text), classes)


def _number(text: str, whole: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"threshold {whole!r} is not understood; pass a number from 0 to 1 (threshold=0.4), "
                          "per class (threshold=bee=0.3,wasp=0.5), or threshold=none.") from None
    if not 0.0 <= number <= 1.0 or math.isnan(number):
        raise ConfigError(f"threshold {whole!r} is outside 0…1; pass a score from 0 to 1, e.g. threshold=0.4.")
    return number


def _checked(value: Override, classes: list[str]) -> Override:
    if isinstance(value, dict):
        unknown = [name for name in value if name not in classes]
        if unknown:
            raise ConfigError(f"threshold names {', '.join(map(repr, unknown))}, not a class of the model "
                              f"({', '.join(classes)}); use the class names, e.g. {classes[0]}=0.4.")
        return {k: float(v) for k, v in value.items()}
    if isinstance(value, int | float):
        return _number(str(value), str(value))
    return value


def resolve(calibration: Calibration | None, classes: list[str], override: Override,
            per_class: bool) -> Applied | None:
    """What an answer applies: None for a bundle without calibration and no override; else the temperature
    (1 without calibration) with the model's thresholds, or the override's. ``per_class``: the task thresholds
    each class (multi-label, detection) rather than the top probability (single-label's ``unsure``)."""
    if calibration is None and override is None:
        return None
    temperature = calibration.temperature if calibration is not None else 1.0
    rule = calibration.rule if calibration is not None else None
    if override == "none":
        return Applied(temperature, None, None, "none", rule)
    if override is None:
        assert calibration is not None
        return Applied(temperature, calibration.thresholds if per_class else None,
                       None if per_class else calibration.unsure, "model", rule)
    if not per_class:
        if isinstance(override, dict):
            raise ConfigError("a single-label model takes one `unsure` threshold (threshold=0.6), not one per "
                              "class.")
        return Applied(temperature, None, float(override), "request", rule)
    base = dict(calibration.thresholds or {}) if calibration is not None else {}
    chosen = {**base, **override} if isinstance(override, dict) else {name: float(override) for name in classes}
    return Applied(temperature, chosen, None, "request", rule)


def scale_scores(scores: torch.Tensor, temperature: float) -> torch.Tensor:
    """Independent (sigmoid-like) scores in (0, 1) rescaled by ``temperature``: ``σ(logit(s) / T)``."""
    if temperature == 1.0:
        return scores
    s = scores.double().clamp(EPSILON, 1 - EPSILON)
    return torch.sigmoid(torch.log(s / (1 - s)) / temperature).to(scores.dtype)


def raw_score(score: float, temperature: float) -> float:
    """The uncalibrated score that :func:`scale_scores` maps to ``score`` (so a cut on calibrated scores can be
    made before calibration): ``σ(T · logit(s))``; 0 and 1 map to themselves."""
    if temperature == 1.0 or score <= 0.0 or score >= 1.0:
        return score
    return 1.0 / (1.0 + math.exp(-temperature * math.log(score / (1 - score))))


def scale_distribution(probabilities: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softmax rows ``[…, C]`` rescaled by ``temperature``: ``softmax(log p / T)`` (exact: log p are the logits
    up to a per-row constant)."""
    if temperature == 1.0:
        return probabilities
    logp = torch.log(probabilities.double().clamp_min(EPSILON))
    return torch.softmax(logp / temperature, dim=-1).to(probabilities.dtype)
