"""The object-detection task: labelled boxes per image. The network's ONNX export plan is the algorithm's own
(SSD's, :mod:`oculi.algorithms.detection_export`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from oculi.data.formats.manifest import write_detection_manifest
from oculi.data.tasks import DATA_TASKS
from oculi.errors import ConfigError
from oculi.inference.codecs import TaskCodec, json_bytes
from oculi.inference.detection import DetectionPredictor, Detections
from oculi.tasks.base import PredictOptions, Proposal, TaskContract, histogram, numbered

if TYPE_CHECKING:
    from rich.console import Console


class PixelBox(BaseModel):
    """Box corners in the input image's pixels."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float


class Detection(BaseModel):
    """One detected object."""

    label: str
    class_id: int
    score: float
    box: PixelBox


class DetectionResponse(BaseModel):
    """Friendly detection answer: objects by decreasing score, boxes in pixels of the ``width × height`` input."""

    endpoint: str
    variant: str
    task: Literal["detection"]
    width: int
    height: int
    detections: list[Detection]
    calibration: dict[str, Any] | None = None


CODEC = TaskCodec("detection", "application/json", {
    "application/json": lambda r: json_bytes(r.sagemaker()),
    "application/json;annotation=1": lambda r: json_bytes(r.annotation()),
})


def friendly(result: Detections, top_k: int | None, min_score: float) -> dict[str, Any]:
    """The friendly answer's body: the objects scoring at least ``min_score``, boxes in pixels; a calibrated
    answer adds ``calibration`` (the temperature and thresholds applied)."""
    kept = result.filtered(min_score)
    body = {"width": kept.width, "height": kept.height, "detections": [
        {"label": kept.classes[c], "class_id": c, "score": s,
         "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), (round(v, 2) for v in box), strict=True))}
        for box, s, c in zip(kept.boxes, kept.scores, kept.labels, strict=True)]}
    return {**body, "calibration": kept.calibration} if kept.calibration else body


def evaluate(predictor: DetectionPredictor, data: Any, *, top_k: int | None = None, **options: Any) -> Any:
    """:func:`~oculi.evaluation.detection.evaluate_detection` (``top_k`` does not apply)."""
    from oculi.evaluation.detection import evaluate_detection

    if top_k is not None:
        raise ConfigError(f"`top_k` applies to classification models; {predictor.bundle.path} is an "
                          "object-detection model. Leave out --top-k.")
    return evaluate_detection(predictor, data, **options)


def calibration_data(report: Any) -> Any:
    """The report's detections for calibration: each detection's score with whether it matches an unmatched true
    box of its class at the model's overlap threshold, grouped by class; recall counts every true box."""
    import torch

    from oculi.evaluation.calibration import CalibrationData, logits_of_scores
    from oculi.evaluation.tide import match_image

    overlap = float(report.metrics["overlap_threshold"])
    scores, right, labels = [], [], []
    positives = {i: 0 for i in range(len(report.classes))}
    for pred, target in zip(report.predictions, report.targets, strict=True):
        found = match_image(pred, target, overlap)
        scores.append(pred["scores"].double().reshape(-1))
        labels.append(pred["labels"].long().reshape(-1))
        right.append(torch.tensor(found.right, dtype=torch.float64))
        for label in target["labels"].tolist():
            positives[int(label)] = positives.get(int(label), 0) + 1
    return CalibrationData(classes=list(report.classes), softmax=False,
                           logits=logits_of_scores(torch.cat(scores) if scores else torch.zeros(0)),
                           targets=torch.cat(right) if right else torch.zeros(0),
                           groups=torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long),
                           positives=positives, num_images=int(report.metrics["num_images"]), source=report.data,
                           fingerprint=report.fingerprint)


def show(predictor: DetectionPredictor, images: list[Path], options: PredictOptions, console: Console) -> None:
    """``oculi predict``: a table of boxes per image (or SageMaker's JSON), and the drawn image with ``draw``."""
    from rich.table import Table

    from oculi.inference.detection import draw as draw_boxes

    for path in images:
        image = predictor.to_tensor(path)
        result = predictor.predict(image, min_score=options.min_score, threshold=options.threshold)
        if options.draw is not None:
            console.print(f"drawn: {draw_boxes(image, result, numbered(options.draw, path, len(images) > 1))}")
        if options.as_json or options.verbose or options.annotation:
            body = result.annotation() if options.annotation else result.sagemaker()
            console.print_json(json.dumps(body), indent=None)
            continue
        table = Table("image", "class", "score", "box (xmin, ymin, xmax, ymax px)")
        for n, (box, score, label) in enumerate(zip(result.boxes, result.scores, result.labels, strict=True)):
            table.add_row(str(path) if n == 0 else "", result.classes[label], f"{score:.3f}",
                          ", ".join(f"{v:.0f}" for v in box))
        console.print(table if result.boxes else f"{path}: no detections")


def view_labels(target: Any, classes: list[str]) -> dict[str, Any]:
    """The console's labels of a sample: ``{"boxes": [{"box": [x1, y1, x2, y2], "label"}], "width", "height"}``
    (``xyxy`` absolute pixels of the image as stored)."""
    boxes = [] if target is None else [
        {"box": [round(float(v), 1) for v in box], "label": classes[label] if 0 <= label < len(classes) else str(label)}
        for box, label in zip(target.boxes, target.labels, strict=False)]
    return {"boxes": boxes, "width": getattr(target, "width", None), "height": getattr(target, "height", None)}


def embedding_tap(network: Any) -> Any:
    """Penultimate features: the detector backbone's deepest feature map averaged over space ``[B, D]``."""
    from oculi.analysis.embeddings import backbone_tap

    return backbone_tap(network)


def embedding_regions(target: Any) -> list[tuple[float, float, float, float]]:
    """The labelled boxes (``xyxy`` pixels): each is embedded as a crop, so search can find objects."""
    return [] if target is None else [tuple(box) for box in target.boxes]


def audit(sets: dict[str, Any], context: Any) -> Any:
    """Missing, swapped and misplaced boxes with cleanlab's object-detection module; see
    :func:`oculi.analysis.labels.detection_label_issues`."""
    from oculi.analysis.labels import detection_label_issues

    return detection_label_issues(sets, context)


def edge(predictor: DetectionPredictor) -> tuple[dict[str, Any], dict[str, Any]]:
    """The edge package's settings: the input spec and the network's decoder, its priors in ``priors.npy``."""
    decoder, priors = predictor.kind.edge(predictor.model, predictor.priors)
    return {"input": predictor.spec, "decoder": {**decoder, "priors": "priors.npy"}}, {"priors.npy": priors}


LOWEST_SCORE = 0.05  # detections below this never count towards a proposal's uncertainty


def propose(predictor: DetectionPredictor, images: list[Path], threshold: float = 0.5) -> list[Proposal]:
    """Pre-labels for labeling: the boxes scoring at least ``threshold`` (pixels, with their scores). Uncertainty:
    how close the closest box score (≥ 0.05) sits to ``threshold`` — 1 on it, 0 at 0 or 1, 0 with no boxes;
    confidence = 1 − uncertainty."""
    out = []
    reach = max(threshold, 1.0 - threshold)
    for result in predictor.predict(list(images), min_score=LOWEST_SCORE):
        closeness = [1.0 - abs(s - threshold) / reach for s in result.scores]
        uncertainty = max(closeness, default=0.0)
        boxes = [{"box": [round(float(v), 2) for v in box], "label": int(label), "confidence": round(float(s), 4)}
                 for box, s, label in zip(result.boxes, result.scores, result.labels, strict=True) if s >= threshold]
        out.append(Proposal({"boxes": boxes, "width": result.width, "height": result.height},
                            1.0 - uncertainty, uncertainty))
    return out
BOX_SIZE_EDGES = [0, 8, 16, 32, 64, 96, 128, 256, 512]  # COCO's small/medium/large split at 32 and 96


def label_statistics(sample_set: Any) -> list[dict[str, Any]]:
    """The dataset page's histogram of box sizes: √(width × height) of every box in pixels of the stored image
    (COCO calls boxes under 32 px small, over 96 px large)."""
    sizes = [((x2 - x1) * (y2 - y1)) ** 0.5 for sample in sample_set.samples if sample.target is not None
             for x1, y1, x2, y2 in sample.target.boxes if x2 > x1 and y2 > y1]
    return [histogram("box-size", "Box sizes", "√(width × height), px", sizes, BOX_SIZE_EDGES)]
def explanation_target(predictor: Any) -> Any:
    """The CAM adapter of this task (:class:`~oculi.explain.targets.DetectionTarget`)."""
    from oculi.explain.targets import DetectionTarget

    return DetectionTarget(predictor)


MONITOR_MIN_SCORE = 0.5  # boxes a monitor counts: those a user would see at the usual threshold


def monitoring_statistics(predictor: Any, images: list[Path]) -> list[dict[str, Any]]:
    """What a monitor tracks of each prediction: boxes per image (score ≥ 0.5), and per box its score, class and
    area as a fraction of the image."""
    out = []
    for r in predictor.predict(list(images), min_score=MONITOR_MIN_SCORE):
        area = max(1, r.width * r.height)
        out.append({"boxes_per_image": float(len(r.boxes)), "box_score": [float(s) for s in r.scores],
                    "box_class": [r.classes[int(label)] for label in r.labels],
                    "box_area_fraction": [float((x2 - x1) * (y2 - y1) / area) for x1, y1, x2, y2 in r.boxes]})
    return out


CONTRACT = TaskContract(
    name="detection", title="object detection", predictor=DetectionPredictor, codec=CODEC, evaluate=evaluate,
    export_plan=None, friendly=friendly, friendly_schema=DetectionResponse, show=show, transform_batch_size=8,
    data=DATA_TASKS.get("detection"), metric="mAP",
    annotation_kind="box",
    view="detection", view_labels=view_labels, edge=edge,
    embedding_tap=embedding_tap,
    embedding_regions=embedding_regions, write_manifest=write_detection_manifest, audit=audit,
    propose=propose, monitoring_statistics=monitoring_statistics,
    label_statistics=label_statistics, explanation_target=explanation_target,
    calibration_data=calibration_data,
)
