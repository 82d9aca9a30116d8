"""Choosing score thresholds and fitting temperature scaling on labelled data (``oculi evaluate MODEL DATA
--choose-thresholds RULE [--write]``), and expected calibration error.

Each task turns its evaluation report into :class:`CalibrationData` (its contract's ``calibration_data`` hook):
either softmax rows with class targets (single-label classification: one "unsure" threshold on the top
probability), or independent binary scores, each with the class it belongs to and whether it is right
(multi-label classification: every image × class; detection: every detection, right when it matches an unmatched
true box of its class at the model's overlap threshold) — one threshold per class. Rules:

- ``max_f1``: the threshold with the highest F1;
- ``precision=P``: the lowest threshold whose precision (on this data) is ≥ P — the most recall that keeps it;
- ``recall=R``: the highest threshold whose recall is ≥ R — the most precision that keeps it.

A score counts when it is ≥ its threshold. Recall's denominator is the class's true items (for detection, true
boxes, so missed boxes count against it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import torch

from oculi.errors import ConfigError
from oculi.inference.calibration import Calibration

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)
MIN_SUPPORT = 10  # true items a class needs before a threshold is chosen for it (see choose_thresholds)


@dataclass(frozen=True)
class Rule:
    """A threshold rule: ``kind`` ``max_f1``, ``precision`` or ``recall`` and its ``target`` (0–1; None for
    ``max_f1``)."""

    kind: str
    target: float | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        """``max_f1``, ``precision=0.95`` or ``recall=0.9``; anything else is a :class:`ConfigError`."""
        raw = text.strip().lower().replace(" ", "")
        if raw in ("max_f1", "maxf1", "f1"):
            return cls("max_f1")
        kind, _, value = raw.partition("=")
        if kind in ("precision", "recall") and value:
            try:
                target = float(value)
            except ValueError:
                target = math.nan
            if 0.0 < target <= 1.0:
                return cls(kind, target)
        raise ConfigError(f"--choose-thresholds got {text!r}; expected max_f1, precision=P or recall=R with P, R "
                          "in (0, 1], e.g. --choose-thresholds precision=0.95.")

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}={self.target:g}"


@dataclass
class CalibrationData:
    """Scores of one evaluation, ready for calibration.

    ``softmax`` True: ``logits`` ``float [N, C]`` (log-probabilities) and ``targets`` ``int64 [N]``. False:
    ``logits`` ``float [K]`` (``logit(score)``), ``targets`` ``float [K]`` (1 = right), ``groups`` ``int64 [K]``
    (the class of each score) and ``positives`` (class index → true items, the recall denominator).
    ``num_images``/``source``/``fingerprint`` describe the data."""

    classes: list[str]
    softmax: bool
    logits: torch.Tensor
    targets: torch.Tensor
    groups: torch.Tensor | None = None
    positives: dict[int, int] = field(default_factory=dict)
    num_images: int = 0
    source: str = ""
    fingerprint: str = ""

    def probabilities(self, temperature: float) -> torch.Tensor:
        """The calibrated probabilities: softmax rows ``[N, C]`` or binary scores ``[K]``."""
        if self.softmax:
            return torch.softmax(self.logits.double() / temperature, dim=1)
        return torch.sigmoid(self.logits.double() / temperature)

    def confidence(self, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
        """``(confidence, correct)`` pairs for calibration error: the top probability and whether it is the
        true class (softmax), or each binary score and whether it is right."""
        probs = self.probabilities(temperature)
        if self.softmax:
            top, predicted = probs.max(dim=1)
            return top, (predicted == self.targets).double()
        return probs, self.targets.double()


def logits_of_scores(scores: torch.Tensor) -> torch.Tensor:
    """``logit(s)`` of scores in (0, 1), clamped away from 0 and 1."""
    s = scores.double().clamp(1e-7, 1 - 1e-7)
    return torch.log(s / (1 - s))


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, bins: int = ECE_BINS) -> float:
    """Expected calibration error: over ``bins`` equal-width confidence bins, the mean |accuracy − confidence|
    weighted by each bin's share of the items. ``confidence`` ``float [K]`` in [0, 1]; ``correct`` 0/1 ``[K]``."""
    if confidence.numel() == 0:
        return 0.0
    conf = confidence.double().flatten()
    right = correct.double().flatten()
    index = torch.clamp((conf * bins).long(), max=bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        if count:
            total += count * abs(float(right[inside].mean()) - float(conf[inside].mean()))
    return total / conf.numel()


def _nll(data: CalibrationData, temperature: float) -> float:
    scaled = data.logits.double() / temperature
    if data.softmax:
        return float(torch.nn.functional.cross_entropy(scaled, data.targets.long()))
    return float(torch.nn.functional.binary_cross_entropy_with_logits(scaled, data.targets.double()))


def fit_temperature(data: CalibrationData) -> float:
    """The temperature ``T`` minimising the negative log-likelihood of ``logits / T`` (golden-section search on
    ``log T`` within :data:`TEMPERATURE_RANGE`; the NLL is unimodal in ``T``). 1.0 when there is nothing to fit."""
    if data.logits.numel() == 0 or (not data.softmax and data.targets.min() == data.targets.max()):
        return 1.0
    low, high = math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = _nll(data, math.exp(a)), _nll(data, math.exp(b))
    for _ in range(60):
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = _nll(data, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = _nll(data, math.exp(b))
    return math.exp((low + high) / 2)


@dataclass(frozen=True)
class Choice:
    """One chosen threshold and what it gives on the data: ``precision``, ``recall``, ``f1``, ``kept`` (items
    at or above it), ``reached`` (False when no threshold meets the rule: the nearest one is given)."""

    threshold: float
    precision: float
    recall: float
    f1: float
    kept: int
    reached: bool = True
    note: str = ""  # why the rule was not applied (too few examples)

    def to_json(self) -> dict[str, Any]:
        """Rounded numbers for JSON."""
        return {"threshold": round(self.threshold, 6), "precision": round(self.precision, 6),
                "recall": round(self.recall, 6), "f1": round(self.f1, 6), "kept": self.kept,
                "reached": self.reached, **({"note": self.note} if self.note else {})}


def scores_at(scores: torch.Tensor, right: torch.Tensor, positives: int, threshold: float, note: str) -> Choice:
    """What a fixed ``threshold`` gives on ``scores`` (marked not ``reached``, with ``note`` saying why it was
    kept rather than chosen)."""
    kept = scores.double() >= threshold
    hits = float(right.double()[kept].sum())
    precision, recall = hits / max(int(kept.sum()), 1), hits / max(positives, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return Choice(threshold, precision, recall, f1, int(kept.sum()), reached=False, note=note)


def choose_threshold(scores: torch.Tensor, right: torch.Tensor, positives: int, rule: Rule) -> Choice:
    """The threshold on ``scores`` (``float [K]``) that ``rule`` picks, ``right`` (0/1 ``[K]``) marking the
    correct items and ``positives`` the recall denominator (≥ the right items). Only cuts between distinct
    scores are considered, so ties are kept or dropped together."""
    if scores.numel() == 0:
        return Choice(1.0, 0.0, 0.0, 0.0, 0, reached=False)
    order = torch.argsort(scores.double(), descending=True, stable=True)
    s, r = scores.double()[order], right.double()[order]
    hits = torch.cumsum(r, 0)
    kept = torch.arange(1, len(s) + 1, dtype=torch.float64)
    last = torch.ones(len(s), dtype=torch.bool)
    last[:-1] = s[1:] != s[:-1]  # the last item of each run of equal scores: a possible cut
    cuts = torch.nonzero(last).flatten()
    precision = hits[cuts] / kept[cuts]
    recall = hits[cuts] / max(positives, 1)
    f1 = torch.where(precision + recall > 0, 2 * precision * recall / (precision + recall).clamp_min(1e-12),
                     torch.zeros_like(precision))

    def at(i: int, reached: bool = True) -> Choice:
        k = int(cuts[i])
        return Choice(float(s[k]), float(precision[i]), float(recall[i]), float(f1[i]), k + 1, reached)

    if rule.kind == "max_f1":
        return at(int(torch.argmax(f1)))
    if rule.kind == "precision":
        ok = torch.nonzero(precision >= rule.target - 1e-12).flatten()
        if len(ok):
            return at(int(ok[-1]))  # the lowest threshold (most kept) that still holds the precision
        return at(int(torch.argmax(precision)), reached=False)
    ok = torch.nonzero(recall >= rule.target - 1e-12).flatten()
    if len(ok):
        return at(int(ok[0]))  # the highest threshold that reaches the recall
    return at(len(cuts) - 1, reached=False)


@dataclass
class ThresholdReport:
    """What :func:`choose_thresholds` found: the :class:`Calibration` to store, the per-class (or unsure)
    :class:`Choice` list, and ECE before/after temperature scaling."""

    calibration: Calibration
    choices: dict[str, Choice]
    ece_before: float
    ece_after: float

    def to_dict(self) -> dict[str, Any]:
        """``thresholds.json``: the calibration plus each choice's precision/recall/F1 on the data."""
        return {**self.calibration.to_meta(), "choices": {k: c.to_json() for k, c in self.choices.items()}}

    def render(self, console: Any) -> None:
        """Print the temperature, ECE before/after and the chosen thresholds as a rich table."""
        from rich.table import Table

        cal = self.calibration
        console.print(f"calibration on {cal.data.get('num_images')} images: temperature {cal.temperature:.3f}; "
                      f"expected calibration error {self.ece_before:.4f} → {self.ece_after:.4f}")
        table = Table("class" if cal.thresholds is not None else "decision", "threshold", "precision", "recall",
                      "F1", "kept", title=f"Thresholds ({cal.rule})", title_justify="left")
        for name, c in self.choices.items():
            note = f" ({c.note})" if c.note else "" if c.reached else " (rule not reachable)"
            table.add_row(name, f"{c.threshold:.4f}{note}", f"{c.precision:.4f}", f"{c.recall:.4f}", f"{c.f1:.4f}",
                          str(c.kept))
        console.print(table)


def choose_thresholds(data: CalibrationData, rule: Rule) -> ThresholdReport:
    """Fit the temperature on ``data``, then choose thresholds on the calibrated scores by ``rule``: one per class
    (binary scores; a class with no scores keeps 0.5 and no choice) or one "unsure" threshold on the top softmax
    probability (right = the top class is the true one; recall = share of right answers kept).

    Minimum support: a class with fewer than :data:`MIN_SUPPORT` true items (or, for the unsure threshold, data
    of fewer images) keeps 0.5 (no unsure threshold) — a precision or recall target met on a handful of examples
    says nothing about the next ones; its choice says so in ``note``."""
    temperature = fit_temperature(data)
    before = expected_calibration_error(*data.confidence(1.0))
    after = expected_calibration_error(*data.confidence(temperature))
    choices: dict[str, Choice] = {}
    thresholds: dict[str, float] | None = None
    unsure: float | None = None
    if data.softmax:
        top, right = data.confidence(temperature)
        if len(top) < MIN_SUPPORT:
            choices["unsure"] = scores_at(top, right, int(right.sum()), 0.0, f"only {len(top)} images (fewer than "
                                          f"{MIN_SUPPORT}): no unsure threshold")
        else:
            choice = choose_threshold(top, right, int(right.sum()), rule)
            choices["unsure"] = choice
            unsure = round(choice.threshold, 6)
    else:
        probs = data.probabilities(temperature)
        thresholds = {}
        for index, name in enumerate(data.classes):
            inside = data.groups == index
            if not bool(inside.any()):
                continue
            positives = data.positives.get(index, 0)
            if positives < MIN_SUPPORT:
                choice = scores_at(probs[inside], data.targets[inside], positives, 0.5,
                                   f"{positives} true items (fewer than {MIN_SUPPORT}): kept 0.5")
            else:
                choice = choose_threshold(probs[inside], data.targets[inside], positives, rule)
            choices[name] = choice
            thresholds[name] = round(choice.threshold, 6)
    calibration = Calibration(
        rule=str(rule), temperature=temperature, thresholds=thresholds, unsure=unsure,
        data={"source": data.source, "fingerprint": data.fingerprint, "num_images": data.num_images},
        ece={"before": round(before, 6), "after": round(after, 6)},
        created=datetime.now(UTC).isoformat(timespec="seconds"))
    return ThresholdReport(calibration, choices, before, after)


__all__ = ["MIN_SUPPORT", "CalibrationData", "Choice", "Rule", "ThresholdReport", "choose_threshold",
           "choose_thresholds", "expected_calibration_error", "fit_temperature", "logits_of_scores", "scores_at"]
