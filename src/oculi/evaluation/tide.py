"""Detection error analysis after TIDE (Bolya et al., ECCV 2020): every detection that is not a true positive is
given one error type, every true box no detection found is "missed", and each type's cost is the mAP gained by
fixing all errors of that type (an oracle), so the types can be compared by what they cost.

Types, with ``fg`` the model's overlap threshold and ``bg`` = :data:`BACKGROUND_IOU` (IoU with the best true box
of any class):

- ``localisation``: right class, ``bg ≤ IoU < fg`` — fix: move the box onto that true box;
- ``class``: wrong class, ``IoU ≥ fg`` — fix: give it the true box's class;
- ``both``: wrong class and ``bg ≤ IoU < fg`` — fix: drop it;
- ``duplicate``: right class, ``IoU ≥ fg`` with a true box a higher-scoring detection already took — fix: drop it;
- ``background``: ``IoU < bg`` with every true box — fix: drop it;
- ``missed``: a true box no detection matched and no class/localisation error points at — fix: drop the box.

Matching is COCO's greedy one: detections by decreasing score each take the unmatched true box of their class
with the highest IoU ≥ ``fg``. AP is COCO's 101-point interpolated average precision, averaged over the classes
with true boxes. Boxes are ``xyxy`` pixels; labels 0-based class indices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torchvision.ops import box_iou

TYPES = ("localisation", "class", "both", "duplicate", "background", "missed")
BACKGROUND_IOU = 0.1
RECALL_POINTS = 101


@dataclass
class ImageErrors:
    """One image's matching: ``right`` (bool per detection: a true positive), ``errors`` (per detection: None for
    a true positive, else its type), ``related`` (per detection: the index of the true box its error refers to,
    −1 for none), ``missed`` (indices of missed true boxes)."""

    right: list[bool]
    errors: list[str | None]
    related: list[int]
    missed: list[int]


def _boxes(d: dict[str, torch.Tensor]) -> torch.Tensor:
    return d["boxes"].detach().float().cpu().reshape(-1, 4)


def match_image(pred: dict[str, torch.Tensor], target: dict[str, torch.Tensor], fg: float,
                bg: float = BACKGROUND_IOU) -> ImageErrors:
    """Match one image's detections (``boxes``, ``scores``, ``labels``) to its true boxes (``boxes``,
    ``labels``) and give each wrong detection and each missed box its TIDE type (see the module docstring)."""
    boxes, labels = _boxes(pred), pred["labels"].long().cpu().reshape(-1)
    scores = pred["scores"].float().cpu().reshape(-1)
    true_boxes, true_labels = _boxes(target), target["labels"].long().cpu().reshape(-1)
    n, m = len(boxes), len(true_boxes)
    iou = box_iou(boxes, true_boxes) if n and m else torch.zeros(n, m)
    same = labels[:, None] == true_labels[None, :] if n and m else torch.zeros(n, m, dtype=torch.bool)
    own = torch.where(same, iou, torch.full_like(iou, -1.0))  # IoU with true boxes of the detection's class
    best_any = iou.max(dim=1).values.tolist() if m else [0.0] * n
    taken = torch.zeros(m, dtype=torch.bool)
    right = [False] * n
    errors: list[str | None] = [None] * n
    related = [-1] * n
    for i in torch.argsort(scores, descending=True, stable=True).tolist():
        if best_any[i] < bg:
            errors[i] = "background"
            continue
        candidates = own[i]
        free = candidates.masked_fill(taken, -1.0)
        j = int(free.argmax())
        if float(free[j]) >= fg:
            taken[j], right[i] = True, True
            continue
        same_best = float(candidates.max())
        if same_best >= fg:  # its own class's box, but a better detection took it
            errors[i], related[i] = "duplicate", int(candidates.argmax())
            continue
        best = int(iou[i].argmax())
        best_iou = float(iou[i, best])
        if best_iou >= fg:
            errors[i], related[i] = "class", best
        elif same_best >= bg:
            errors[i], related[i] = "localisation", int(candidates.argmax())
        else:
            errors[i], related[i] = "both", best
    pointed = {related[i] for i in range(n) if errors[i] in ("class", "localisation")}
    missed = [j for j in range(m) if not bool(taken[j]) and j not in pointed]
    return ImageErrors(right, errors, related, missed)


def average_precision(preds: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]],
                      num_classes: int, fg: float) -> tuple[float, list[float | None]]:
    """COCO-style AP at IoU ``fg`` (101 recall points, greedy matching by score): the mean over classes with true
    boxes, and the per-class AP (None for a class without true boxes)."""
    hits: list[list[tuple[float, bool]]] = [[] for _ in range(num_classes)]
    totals = [0] * num_classes
    for pred, target in zip(preds, targets, strict=True):
        for label in target["labels"].long().reshape(-1).tolist():
            if 0 <= label < num_classes:
                totals[label] += 1
        found = match_image(pred, target, fg)
        for score, label, ok in zip(pred["scores"].reshape(-1).tolist(), pred["labels"].reshape(-1).tolist(),
                                    found.right, strict=True):
            if 0 <= int(label) < num_classes:
                hits[int(label)].append((float(score), ok))
    per_class: list[float | None] = []
    for label in range(num_classes):
        if totals[label] == 0:
            per_class.append(None)
            continue
        ranked = sorted(hits[label], key=lambda item: -item[0])
        right = torch.tensor([ok for _, ok in ranked], dtype=torch.float64)
        tp = torch.cumsum(right, 0)
        precision = tp / torch.arange(1, len(right) + 1, dtype=torch.float64)
        recall = tp / totals[label]
        envelope = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0]) if len(right) else precision
        points = torch.linspace(0, 1, RECALL_POINTS, dtype=torch.float64)
        at = torch.searchsorted(recall, points, side="left")
        values = torch.where(at < len(envelope), envelope[at.clamp(max=max(len(envelope) - 1, 0))],
                             torch.zeros_like(points)) if len(right) else torch.zeros_like(points)
        per_class.append(float(values.mean()))
    present = [v for v in per_class if v is not None]
    return (sum(present) / len(present) if present else 0.0), per_class


@dataclass
class TideReport:
    """The breakdown: ``mAP`` (this module's AP at ``overlap``), ``counts`` (type → errors), ``delta_ap`` (type →
    mAP gained by fixing that type), ``share`` (type → its part of the lost mAP, ``delta / (1 − mAP)``),
    ``per_image`` (each image's :class:`ImageErrors`)."""

    overlap: float
    mAP: float
    counts: dict[str, int]
    delta_ap: dict[str, float]
    share: dict[str, float]
    per_image: list[ImageErrors] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``error_analysis`` in metrics.json (without the per-image matches)."""
        return {"overlap_threshold": self.overlap, "background_iou": BACKGROUND_IOU, "mAP": round(self.mAP, 6),
                "errors": {t: {"count": self.counts[t], "delta_mAP": round(self.delta_ap[t], 6),
                               "share_of_lost_mAP": round(self.share[t], 6)} for t in TYPES}}


Boxes = dict[str, torch.Tensor]


def _fixed(preds: Sequence[Boxes], targets: Sequence[Boxes], matches: list[ImageErrors],
           kind: str) -> tuple[list[Boxes], list[Boxes]]:
    """``preds``/``targets`` with every error of type ``kind`` fixed by its oracle (see the module docstring)."""
    out_p: list[dict[str, torch.Tensor]] = []
    out_t: list[dict[str, torch.Tensor]] = []
    for pred, target, found in zip(preds, targets, matches, strict=True):
        boxes, labels = _boxes(pred).clone(), pred["labels"].long().cpu().reshape(-1).clone()
        scores = pred["scores"].float().cpu().reshape(-1)
        keep = torch.ones(len(boxes), dtype=torch.bool)
        true_boxes, true_labels = _boxes(target), target["labels"].long().cpu().reshape(-1)
        for i, error in enumerate(found.errors):
            if error != kind:
                continue
            if kind == "class":
                labels[i] = true_labels[found.related[i]]
            elif kind == "localisation":
                boxes[i] = true_boxes[found.related[i]]
            else:
                keep[i] = False
        out_p.append({"boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
        if kind == "missed" and found.missed:
            stay = torch.ones(len(true_boxes), dtype=torch.bool)
            stay[found.missed] = False
            out_t.append({"boxes": true_boxes[stay], "labels": true_labels[stay]})
        else:
            out_t.append({"boxes": true_boxes, "labels": true_labels})
    return out_p, out_t


def tide(preds: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]], num_classes: int,
         overlap: float) -> TideReport:
    """The TIDE breakdown of detections ``preds`` against ``targets`` (one dict per image; see the module
    docstring) at IoU ``overlap``."""
    matches = [match_image(p, t, overlap) for p, t in zip(preds, targets, strict=True)]
    base, _ = average_precision(preds, targets, num_classes, overlap)
    counts = {t: 0 for t in TYPES}
    for found in matches:
        for error in found.errors:
            if error is not None:
                counts[error] += 1
        counts["missed"] += len(found.missed)
    delta: dict[str, float] = {}
    for kind in TYPES:
        if counts[kind] == 0:
            delta[kind] = 0.0
            continue
        fixed_p, fixed_t = _fixed(preds, targets, matches, kind)
        delta[kind] = max(0.0, average_precision(fixed_p, fixed_t, num_classes, overlap)[0] - base)
    lost = max(1e-12, 1.0 - base)
    share = {kind: min(1.0, delta[kind] / lost) if base < 1.0 else 0.0 for kind in TYPES}
    return TideReport(overlap, base, counts, delta, share, matches)
