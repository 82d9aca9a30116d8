"""What a labeler draws, per annotation kind (a task contract's ``annotation_kind``): the label JSON the pages and
the store exchange, how it is checked, how two labels are compared (automated labeling's accuracy), how a label
read from an existing dataset becomes a pre-label, and the Ground Truth output line it is written as.

Label JSON (pixels of the image as stored, origin top-left)::

    class  {"classes": [index, …]}                                  one index, or several for multi-label
    box    {"boxes": [{"box": [x1, y1, x2, y2], "label": index, "confidence": c?}], "width": W, "height": H}
    mask   {"width": W, "height": H}                                 the indexed PNG lives in OUTPUT/annotations/

Ground Truth's output (``<attribute>-metadata`` beside the label attribute; ``job-name`` is
``labeling-job/<name>``; ``human-annotated`` ``yes``/``no``)::

    class   "attr": 0, "attr-metadata": {"class-name", "confidence", "type": "groundtruth/image-classification"}
    multi   "attr": [0, 2], "attr-metadata": {"class-map", "confidence-map", "type": "…-multilabel"}
    box     "attr": {"image_size": [{"width", "height", "depth": 3}], "annotations": [{"class_id", "left", "top",
            "width", "height"}]}, "attr-metadata": {"objects": [{"confidence"}], "class-map", …}
    mask    "attr-ref": "OUTPUT/annotations/consolidated-annotation/output/<index>.png",
            "attr-ref-metadata": {"internal-color-map": {"0": {"class-name", "hex-color", "confidence"}}, …}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from oculi.errors import ConfigError
from oculi.registry import Registry

MASK_AGREEMENT = 0.8  # a machine mask counts as correct when its mean IoU with the human mask reaches this
BOX_AGREEMENT = 0.5  # boxes match at this IoU (and the same class)


def _classes_of(label: Any, categories: list[str]) -> list[int]:
    values = label.get("classes") if isinstance(label, dict) else None
    if not isinstance(values, list) or not all(isinstance(v, int) and 0 <= v < len(categories) for v in values):
        raise ConfigError(f"a class label is {{\"classes\": [index, …]}} with indices 0–{len(categories) - 1}; got "
                          f"{label!r}.")
    return sorted(set(values))


def check_class(label: Any, categories: list[str], multi_label: bool) -> dict[str, Any]:
    """A class label with valid, sorted, unique indices (exactly one unless ``multi_label``)."""
    values = _classes_of(label, categories)
    if not multi_label and len(values) != 1:
        raise ConfigError(f"this job is single-label: pick exactly one class; got {len(values)}.")
    return {"classes": values}


def check_box(label: Any, categories: list[str], multi_label: bool) -> dict[str, Any]:
    """A box label: ``xyxy`` pixel boxes clipped to the image, each with a class index; empty boxes dropped."""
    if not isinstance(label, dict) or not isinstance(label.get("boxes"), list):
        raise ConfigError(f"a box label is {{\"boxes\": [{{\"box\": [x1, y1, x2, y2], \"label\": index}}], "
                          f"\"width\", \"height\"}}; got {label!r}.")
    width, height = int(label.get("width") or 0), int(label.get("height") or 0)
    if width <= 0 or height <= 0:
        raise ConfigError("a box label needs the image's \"width\" and \"height\" in pixels.")
    boxes = []
    for entry in label["boxes"]:
        box, cls = entry.get("box"), entry.get("label")
        if not (isinstance(box, list) and len(box) == 4 and isinstance(cls, int) and 0 <= cls < len(categories)):
            raise ConfigError(f"bad box {entry!r}: expected {{\"box\": [x1, y1, x2, y2], \"label\": 0–"
                              f"{len(categories) - 1}}}.")
        x1, x2 = sorted(min(max(float(v), 0.0), width) for v in (box[0], box[2]))
        y1, y2 = sorted(min(max(float(v), 0.0), height) for v in (box[1], box[3]))
        if x2 - x1 >= 1 and y2 - y1 >= 1:
            kept = {"box": [round(x1, 2), round(y1, 2), round(x2, 2), round(y2, 2)], "label": cls}
            if isinstance(entry.get("confidence"), int | float):
                kept["confidence"] = float(entry["confidence"])
            boxes.append(kept)
    return {"boxes": boxes, "width": width, "height": height}


def check_mask(label: Any, categories: list[str], multi_label: bool) -> dict[str, Any]:
    """A mask label's JSON part (the image size); the PNG is checked where it is saved."""
    if not isinstance(label, dict) or int(label.get("width") or 0) <= 0 or int(label.get("height") or 0) <= 0:
        raise ConfigError(f"a mask label is {{\"width\", \"height\"}} with the PNG saved beside it; got {label!r}.")
    return {"width": int(label["width"]), "height": int(label["height"])}


def _iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def agree_class(a: dict[str, Any], b: dict[str, Any], **_: Any) -> bool:
    """Same class set."""
    return sorted(a.get("classes", [])) == sorted(b.get("classes", []))


def agree_box(a: dict[str, Any], b: dict[str, Any], **_: Any) -> bool:
    """Every box of each label matches one of the other's (same class, IoU ≥ 0.5), one to one."""
    left, right = list(a.get("boxes", [])), list(b.get("boxes", []))
    if len(left) != len(right):
        return False
    for box in left:
        best = max(((i, _iou(box["box"], other["box"])) for i, other in enumerate(right)
                    if other["label"] == box["label"]), key=lambda t: t[1], default=(None, 0.0))
        if best[0] is None or best[1] < BOX_AGREEMENT:
            return False
        right.pop(best[0])
    return True


def mean_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean IoU over the classes present in either class-index mask (1.0 for two empty masks)."""
    ious = []
    for cls in np.union1d(np.unique(a), np.unique(b)):
        inter = np.logical_and(a == cls, b == cls).sum()
        union = np.logical_or(a == cls, b == cls).sum()
        ious.append(inter / union)
    return float(np.mean(ious)) if ious else 1.0


def agree_mask(a: dict[str, Any], b: dict[str, Any], *, masks: tuple[np.ndarray, np.ndarray] | None = None,
               **_: Any) -> bool:
    """The two masks' mean IoU reaches :data:`MASK_AGREEMENT`."""
    return masks is not None and masks[0].shape == masks[1].shape and mean_iou(*masks) >= MASK_AGREEMENT


def from_class_target(target: Any, classes: list[str], categories: list[str]) -> dict[str, Any] | None:
    """A classification sample's target (index or indices into ``classes``) as a pre-label over ``categories``."""
    indices = [] if target is None else list(target) if isinstance(target, tuple | list) else [int(target)]
    if indices and len(indices) == len(classes) and set(indices) <= {0, 1} and len(classes) > 1:
        indices = [i for i, v in enumerate(indices) if v]  # multi-hot
    mapped = [categories.index(classes[i]) for i in indices if 0 <= i < len(classes) and classes[i] in categories]
    return {"classes": sorted(set(mapped))} if mapped else None


def from_box_target(target: Any, classes: list[str], categories: list[str]) -> dict[str, Any] | None:
    """A detection sample's :class:`~oculi.types.BoxTarget` as a pre-label over ``categories``."""
    if target is None or not target.width or not target.height:
        return None
    boxes = [{"box": [round(float(v), 2) for v in box], "label": categories.index(classes[cls])}
             for box, cls in zip(target.boxes, target.labels, strict=False)
             if 0 <= cls < len(classes) and classes[cls] in categories]
    return {"boxes": boxes, "width": int(target.width), "height": int(target.height)}


def from_mask_target(target: Any, classes: list[str], categories: list[str]) -> dict[str, Any] | None:
    """A segmentation sample's :class:`~oculi.types.MaskTarget` as a pre-label over ``categories``: the image size
    and, under ``"values"``, the ``uint8 [H, W]`` class indices (classes matched by name; others and ignored pixels
    become 0) — written as the item's proposal PNG when the job is created."""
    from oculi.data.formats.masks import load_mask

    if target is None:
        return None
    mask = load_mask(target)
    lookup = np.zeros(max(len(classes), 1) + 1, dtype=np.uint8)
    for i, name in enumerate(classes):
        if name in categories:
            lookup[i] = categories.index(name)
    values = lookup[np.where((mask >= 0) & (mask < len(classes)), mask, len(classes))]
    return {"width": int(mask.shape[1]), "height": int(mask.shape[0]), "values": values}


def _meta(item: dict[str, Any], job: dict[str, Any], kind_type: str) -> dict[str, Any]:
    return {"job-name": f"labeling-job/{job['name']}", "human-annotated": "yes" if item["state"] == "human" else "no",
            "creation-date": datetime.fromtimestamp(item["labeled_at"] or 0, UTC).replace(tzinfo=None).isoformat(),
            "type": kind_type}


def line_class(item: dict[str, Any], job: dict[str, Any], output: Path) -> dict[str, Any]:
    """Ground Truth's (multi-label) image-classification attribute and metadata."""
    attribute, categories = job["label_attribute"], job["spec"]["categories"]
    classes = item["label"]["classes"]
    confidence = round(float(item["confidence"] if item["confidence"] is not None else 0.0), 4)
    if job["spec"].get("multi_label"):
        meta = _meta(item, job, "groundtruth/image-classification-multilabel")
        meta.update({"class-map": {str(c): categories[c] for c in classes},
                     "confidence-map": {str(c): confidence for c in classes}})
        return {attribute: classes, f"{attribute}-metadata": meta}
    meta = _meta(item, job, "groundtruth/image-classification")
    meta.update({"class-name": categories[classes[0]], "confidence": confidence})
    return {attribute: classes[0], f"{attribute}-metadata": meta}


def line_box(item: dict[str, Any], job: dict[str, Any], output: Path) -> dict[str, Any]:
    """Ground Truth's object-detection attribute (``left/top/width/height`` pixels) and metadata."""
    attribute, categories = job["label_attribute"], job["spec"]["categories"]
    label = item["label"]
    default = float(item["confidence"]) if item["confidence"] is not None else 0.0
    annotations, objects = [], []
    for entry in label["boxes"]:
        x1, y1, x2, y2 = entry["box"]
        annotations.append({"class_id": entry["label"], "left": round(x1, 2), "top": round(y1, 2),
                            "width": round(x2 - x1, 2), "height": round(y2 - y1, 2)})
        objects.append({"confidence": round(float(entry.get("confidence", default)), 4)})
    meta = _meta(item, job, "groundtruth/object-detection")
    meta.update({"objects": objects, "class-map": {str(i): name for i, name in enumerate(categories)}})
    return {attribute: {"image_size": [{"width": label["width"], "height": label["height"], "depth": 3}],
                        "annotations": annotations}, f"{attribute}-metadata": meta}


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """``(r, g, b)`` → ``#rrggbb``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def line_mask(item: dict[str, Any], job: dict[str, Any], output: Path) -> dict[str, Any]:
    """Ground Truth's semantic-segmentation ``-ref`` attribute (the mask PNG's path) and metadata."""
    from oculi.labeling.masks import mask_path, palette

    attribute, categories = job["label_attribute"], job["spec"]["categories"]
    confidence = round(float(item["confidence"] if item["confidence"] is not None else 0.0), 4)
    colours = palette(len(categories))
    meta = _meta(item, job, "groundtruth/semantic-segmentation")
    meta["internal-color-map"] = {str(i): {"class-name": name, "hex-color": hex_colour(colours[i]),
                                           "confidence": confidence} for i, name in enumerate(categories)}
    return {attribute: str(mask_path(output, item["idx"])), f"{attribute}-metadata": meta}


@dataclass(frozen=True)
class AnnotationKind:
    """One annotation kind: ``check(label, categories, multi_label)`` → the cleaned label (ConfigError when
    malformed); ``agree(a, b, masks=…)`` → whether two labels are the same answer; ``from_target(target, classes,
    categories)`` → a dataset label as a pre-label; ``line(item, job, output)`` → the Ground Truth output keys;
    ``attribute_suffix``: what Ground Truth requires the label attribute to end with; ``page``: the console's
    annotation page module."""

    name: str
    check: Callable[[Any, list[str], bool], dict[str, Any]]
    agree: Callable[..., bool]
    from_target: Callable[[Any, list[str], list[str]], dict[str, Any] | None] | None
    line: Callable[[dict[str, Any], dict[str, Any], Path], dict[str, Any]]
    attribute_suffix: str = ""
    page: str = ""


KINDS: Registry[AnnotationKind] = Registry("annotation kind")
KINDS.register("class", AnnotationKind("class", check_class, agree_class, from_class_target, line_class,
                                       page="label_class"))
KINDS.register("box", AnnotationKind("box", check_box, agree_box, from_box_target, line_box, page="label_box"))
KINDS.register("mask", AnnotationKind("mask", check_mask, agree_mask, from_mask_target, line_mask,
                                      attribute_suffix="-ref", page="label_mask"))
