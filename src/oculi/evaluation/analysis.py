"""Error analysis for ``oculi evaluate --output DIR`` (issue 16 item 3).

Classification: the images with the highest loss (a gallery, ``top_losses.png``) and the most-confused class
pairs. Detection: the TIDE breakdown (:mod:`oculi.evaluation.tide`) and, per class, a gallery of its
highest-scoring false positives (with their error type) and of the true boxes it missed (``errors/<class>.png``).

A gallery may show a heat map over each image: pass ``overlay(image_path, class_name) → uint8 [H, W, 3]`` (e.g.
a Grad-CAM overlay from :mod:`oculi.explain`); without it the plain image is shown."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from oculi.evaluation.tide import TideReport

TOP_LOSSES = 16  # images in top_losses.png and metrics.json
CONFUSED_PAIRS = 10
GALLERY_SIZE = 8  # false positives and misses drawn per class
CROP_CONTEXT = 0.25  # share of a box's size added around it in a gallery crop

Overlay = Callable[[Path, str], Any]


def top_losses(probabilities: torch.Tensor, targets: torch.Tensor, multi_label: bool, images: list[Path],
               classes: list[str], limit: int = TOP_LOSSES) -> list[dict[str, Any]]:
    """The ``limit`` images with the highest loss, highest first: ``image``, ``loss`` (cross-entropy of the true
    class; multi-label: summed binary cross-entropy), ``true`` and ``predicted`` (class names, comma-joined for
    multi-label) and ``probability`` (of the prediction)."""
    probs = probabilities.double().clamp(1e-7, 1 - 1e-7)
    if multi_label:
        truth = targets.double()
        losses = -(truth * probs.log() + (1 - truth) * (1 - probs).log()).sum(dim=1)
    else:
        losses = -probs.gather(1, targets.long()[:, None]).squeeze(1).log()
    rows = []
    for i in torch.argsort(losses, descending=True)[:limit].tolist():
        if multi_label:
            true = ", ".join(classes[c] for c in torch.nonzero(targets[i]).flatten().tolist()) or "none"
            chosen = torch.nonzero(probs[i] >= 0.5).flatten().tolist()
            predicted = ", ".join(classes[c] for c in chosen) or "none"
            probability = float(probs[i, chosen].max()) if chosen else float(probs[i].max())
        else:
            true, predicted = classes[int(targets[i])], classes[int(probs[i].argmax())]
            probability = float(probs[i].max())
        rows.append({"image": str(images[i]), "loss": round(float(losses[i]), 6), "true": true,
                     "predicted": predicted, "probability": round(probability, 6)})
    return rows


def confused_pairs(confusion: list[list[int]], classes: list[str], limit: int = CONFUSED_PAIRS) -> list[dict[str, Any]]:
    """The ``limit`` most frequent (true, predicted) mistakes of a confusion matrix (rows true): ``true``,
    ``predicted``, ``count`` and ``share`` (of the true class's images)."""
    pairs = []
    for i, row in enumerate(confusion):
        total = sum(row)
        for j, count in enumerate(row):
            if i != j and count:
                pairs.append({"true": classes[i], "predicted": classes[j], "count": int(count),
                              "share": round(count / total, 6) if total else 0.0})
    return sorted(pairs, key=lambda p: (-p["count"], -p["share"]))[:limit]


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _empty(path: Path, text: str) -> Path:
    figure = _figure(6, 2)
    figure.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    figure.savefig(path)
    return Path(path)


def plot_top_losses(rows: list[dict[str, Any]], path: Path, overlay: Overlay | None = None) -> Path:
    """The top-loss images in a grid at ``path``, each titled with true/predicted class, probability and loss;
    ``overlay`` (see the module docstring) draws a heat map for the predicted class instead of the plain image."""
    from oculi.evaluation.report import _short, _thumbnail

    if not rows:
        return _empty(path, "No images.")
    columns = min(4, len(rows))
    lines = math.ceil(len(rows) / columns)
    figure = _figure(3.2 * columns, 3.3 * lines + 0.6)
    for k, row in enumerate(rows):
        axes = figure.add_subplot(lines, columns, k + 1)
        image = Path(row["image"])
        axes.imshow(overlay(image, row["predicted"]) if overlay is not None else _thumbnail(image))
        axes.set_title(f"true: {_short(row['true'], 14)} / pred: {_short(row['predicted'], 14)}\n"
                       f"p={row['probability']:.2f}, loss={row['loss']:.2f}", fontsize=8)
        axes.set_axis_off()
    figure.suptitle(f"Top {len(rows)} losses (highest first)", fontsize=11)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def _crop(image: torch.Tensor, box: list[float]) -> Any:
    """``image`` (``uint8 [3, H, W]``) cropped around ``box`` (``xyxy`` pixels) with some context, the box drawn;
    ``[h, w, 3]`` numpy."""
    from torchvision.utils import draw_bounding_boxes

    height, width = image.shape[-2:]
    x0, y0, x1, y1 = box
    pad_x, pad_y = (x1 - x0) * CROP_CONTEXT + 4, (y1 - y0) * CROP_CONTEXT + 4
    left, top = max(0, int(x0 - pad_x)), max(0, int(y0 - pad_y))
    right, bottom = min(width, int(math.ceil(x1 + pad_x))), min(height, int(math.ceil(y1 + pad_y)))
    if right <= left or bottom <= top:
        left, top, right, bottom = 0, 0, width, height
    shifted = torch.tensor([[x0 - left, y0 - top, x1 - left, y1 - top]], dtype=torch.float32)
    crop = image[:, top:bottom, left:right]
    return draw_bounding_boxes(crop, shifted, colors="red", width=1).permute(1, 2, 0).numpy()


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "class"


def plot_detection_errors(tide: TideReport, preds: list[dict[str, torch.Tensor]],
                          targets: list[dict[str, torch.Tensor]], images: list[Path], classes: list[str],
                          folder: Path) -> dict[str, Path]:
    """Per class with errors, ``folder/<class>.png``: its :data:`GALLERY_SIZE` highest-scoring false positives
    (titled with their TIDE type and score) on one row, and up to as many missed true boxes on the next.
    Images are decoded only for the boxes drawn. Returns class name → path."""
    from oculi.data.image import decode_image

    false_positives: dict[int, list[tuple[float, int, list[float], str]]] = {}
    misses: dict[int, list[tuple[int, list[float]]]] = {}
    for n, (pred, target, found) in enumerate(zip(preds, targets, tide.per_image, strict=True)):
        for i, error in enumerate(found.errors):
            if error is not None:
                label = int(pred["labels"][i])
                false_positives.setdefault(label, []).append((float(pred["scores"][i]), n,
                                                              pred["boxes"][i].tolist(), error))
        for j in found.missed:
            misses.setdefault(int(target["labels"][j]), []).append((n, target["boxes"][j].tolist()))
    folder.mkdir(parents=True, exist_ok=True)
    decoded: dict[int, torch.Tensor] = {}

    def image(n: int) -> torch.Tensor:
        if n not in decoded:
            decoded[n] = decode_image(images[n])
        return decoded[n]

    written: dict[str, Path] = {}
    for label in sorted(set(false_positives) | set(misses)):
        if not 0 <= label < len(classes):
            continue
        fps = sorted(false_positives.get(label, []), key=lambda item: -item[0])[:GALLERY_SIZE]
        missed = misses.get(label, [])[:GALLERY_SIZE]
        columns = max(len(fps), len(missed), 1)
        rows = (1 if fps else 0) + (1 if missed else 0)
        figure = _figure(2.0 * columns, 2.4 * rows + 0.3)
        for k, (score, n, box, error) in enumerate(fps):
            axes = figure.add_subplot(rows, columns, k + 1)
            axes.imshow(_crop(image(n), box))
            axes.set_title(f"{error} {score:.2f}", fontsize=7)
            axes.set_axis_off()
        for k, (n, box) in enumerate(missed):
            axes = figure.add_subplot(rows, columns, columns * (rows - 1) + k + 1)
            axes.imshow(_crop(image(n), box))
            axes.set_title(f"missed: {images[n].name[:18]}", fontsize=7)
            axes.set_axis_off()
        parts = [f"top false positives ({len(fps)}, type and score)" if fps else "",
                 f"missed boxes ({len(missed)})" if missed else ""]
        figure.suptitle(f"{classes[label]}: " + " · ".join(p for p in parts if p), fontsize=9)
        figure.tight_layout()
        path = folder / f"{_safe_name(classes[label])}.png"
        figure.savefig(path)
        written[classes[label]] = path
    return written


WORST_IMAGES = 6  # segmentation images drawn with their error maps
BOUNDARY_TOLERANCE = 0.0075  # boundary F1's match distance, as a share of the image diagonal (at least 1 pixel)
FALSE_POSITIVE = (230, 40, 40)  # predicted foreground where the truth is background
FALSE_NEGATIVE = (40, 90, 240)  # predicted background where the truth is foreground
WRONG_CLASS = (250, 200, 0)  # foreground of the wrong class
MAP_MIN_SIDE = 240  # smaller error maps are enlarged (by a whole factor)


def _boundary(mask: torch.Tensor, label: int) -> torch.Tensor:
    """Pixels of class ``label`` in ``mask`` (``int64 [H, W]``) with a 4-neighbour of another value."""
    inside = (mask == label).float()[None, None]
    eroded = -torch.nn.functional.max_pool2d(-inside, 3, stride=1, padding=1)
    return (inside - eroded)[0, 0] > 0


def _dilate(edges: torch.Tensor, radius: int) -> torch.Tensor:
    return torch.nn.functional.max_pool2d(edges.float()[None, None], 2 * radius + 1, stride=1,
                                          padding=radius)[0, 0] > 0


def boundary_counts(truth: torch.Tensor, predicted: torch.Tensor, num_classes: int,
                    ignore_index: int) -> torch.Tensor:
    """Per class ``[C, 4]`` counts for boundary F1 (Csurka et al. 2013): predicted boundary pixels within the
    tolerance of a true boundary, predicted boundary pixels, true boundary pixels within the tolerance of a
    predicted one, true boundary pixels. ``truth`` / ``predicted``: ``int64 [H, W]``; ignored pixels are left
    out of both."""
    height, width = truth.shape
    radius = max(1, round(BOUNDARY_TOLERANCE * (height ** 2 + width ** 2) ** 0.5))
    valid = truth != ignore_index
    counts = torch.zeros(num_classes, 4, dtype=torch.int64)
    for label in range(num_classes):
        true_edge = _boundary(truth, label) & valid
        pred_edge = _boundary(predicted, label) & valid
        if not (true_edge.any() or pred_edge.any()):
            continue
        counts[label] = torch.tensor([int((pred_edge & _dilate(true_edge, radius)).sum()), int(pred_edge.sum()),
                                      int((true_edge & _dilate(pred_edge, radius)).sum()), int(true_edge.sum())])
    return counts


def boundary_f1(counts: torch.Tensor, classes: list[str]) -> tuple[float, dict[str, float | None]]:
    """Mean and per-class boundary F1 from summed :func:`boundary_counts` (None: a class with no boundary)."""
    per_class: dict[str, float | None] = {}
    for label, name in enumerate(classes):
        hit_p, total_p, hit_t, total_t = (int(v) for v in counts[label])
        if total_p == 0 and total_t == 0:
            per_class[name] = None
            continue
        precision = hit_p / total_p if total_p else 0.0
        recall = hit_t / total_t if total_t else 0.0
        per_class[name] = round(2 * precision * recall / (precision + recall), 6) if precision + recall else 0.0
    present = [v for v in per_class.values() if v is not None]
    return (round(sum(present) / len(present), 6) if present else 0.0), per_class


def image_iou(truth: torch.Tensor, predicted: torch.Tensor, num_classes: int, ignore_index: int) -> float:
    """The mean IoU of one image over the classes in its truth or prediction (ignored pixels left out)."""
    valid = truth != ignore_index
    ious = []
    for label in range(num_classes):
        t, p = (truth == label) & valid, (predicted == label) & valid
        union = int((t | p).sum())
        if union:
            ious.append(int((t & p).sum()) / union)
    return sum(ious) / len(ious) if ious else 1.0


def error_map(image: torch.Tensor, truth: torch.Tensor, predicted: torch.Tensor, ignore_index: int) -> Any:
    """A PIL image: the picture (``uint8 [3, H, W]``) in grey with its wrong pixels coloured — false positives
    (foreground predicted on background, class 0) :data:`FALSE_POSITIVE`, false negatives
    :data:`FALSE_NEGATIVE`, wrong foreground class :data:`WRONG_CLASS`; small images are enlarged by a whole
    factor (nearest neighbour) to at least :data:`MAP_MIN_SIDE` pixels."""
    import numpy as np
    from PIL import Image

    grey = image.float().mean(dim=0).clamp(0, 255).byte().numpy()
    pixels = np.stack([grey // 2 + 64] * 3, axis=-1)
    t, p = truth.numpy(), predicted.numpy()
    wrong = (t != p) & (t != ignore_index)
    pixels[wrong & (t == 0)] = FALSE_POSITIVE
    pixels[wrong & (p == 0)] = FALSE_NEGATIVE
    pixels[wrong & (t != 0) & (p != 0)] = WRONG_CLASS
    picture = Image.fromarray(pixels)
    scale = max(1, math.ceil(MAP_MIN_SIDE / max(1, min(picture.size))))
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST) if scale > 1 else picture
