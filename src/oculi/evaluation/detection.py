"""Evaluation of object-detection bundles: COCO-style mean average precision with torchmetrics (pycocotools
backend) at the model's ``overlap_threshold``, at IoU 0.5 and averaged over IoU 0.50:0.95, per-class AP, and a
report folder (``metrics.json``, ``pr_curves.png``, ``detections.png``).

Coordinates: every box here is ``xyxy`` in absolute pixels of the original (full-size, EXIF-rotated) image,
origin top-left; labels are 0-based indices into the model's classes.

    from oculi.evaluation.detection import evaluate_detection
    result = evaluate_detection(predictor, Path("shapes/val/annotations.json"), output=Path("reports/shapes"))
    result.metrics["mAP"]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from oculi.artifacts import dataset_fingerprint
from oculi.data.detection import read_detection
from oculi.data.image import decode_image
from oculi.errors import DataError
from oculi.evaluation.analysis import plot_detection_errors
from oculi.evaluation.metrics import check_evaluation_data
from oculi.evaluation.tide import tide
from oculi.types import BoxTarget, SampleSet

DETECTION_GRID = 12  # images drawn in detections.png
DRAW_MIN_SCORE = 0.3  # predicted boxes drawn in detections.png score at least this
DRAW_MAX_BOXES = 20  # … and at most this many per image, highest scores first
DRAW_MIN_SIDE = 240  # smaller images are enlarged (by a whole factor) before drawing, so labels stay legible
PRED_COLOUR = "yellow"
TRUE_COLOUR = "cyan"


@dataclass
class DetectionScores:
    """What :func:`detection_scores` measures. ``metrics``: ``mAP`` (at the overlap threshold), ``mAP_50_95``
    (COCO: mean over IoU 0.50:0.05:0.95), ``mAP_50``, ``overlap_threshold``. ``per_class``: class name → AP at
    the overlap threshold (None for a class with no true boxes). ``pr_curves``: class name → ``(recall,
    precision)`` lists at the overlap threshold (all areas, the largest max-detections setting)."""

    metrics: dict[str, float]
    per_class: dict[str, float | None]
    pr_curves: dict[str, tuple[list[float], list[float]]]


def _metric(iou_thresholds: list[float] | None) -> Any:
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_thresholds=iou_thresholds, class_metrics=True, extended_summary=True,
                                  backend="pycocotools")
    metric.warn_on_many_detections = False
    return metric


def _plain(value: torch.Tensor) -> float:
    return round(float(value), 6)


def detection_scores(
    preds: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, torch.Tensor]],
    classes: list[str],
    overlap_threshold: float,
) -> DetectionScores:
    """Mean average precision of ``preds`` against ``targets`` (one dict per image, same order).

    ``preds``: ``{"boxes": float [N, 4], "scores": float [N], "labels": int64 [N]}``; ``targets``: ``{"boxes":
    float [M, 4], "labels": int64 [M]}``; boxes ``xyxy`` absolute pixels, labels 0-based indices into
    ``classes``. ``overlap_threshold``: the IoU at which a detection matches a true box (``mAP`` and per-class
    AP are measured there). Raises :class:`DataError` when no image has a true box (AP is undefined)."""
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets; expected one of each per image.")
    if not any(len(t["labels"]) for t in targets):
        raise DataError("no true boxes in the data, so average precision is undefined. Evaluate on annotated "
                        "images.")

    def clean(d: dict[str, torch.Tensor], scored: bool) -> dict[str, torch.Tensor]:
        out = {"boxes": d["boxes"].detach().float().cpu().reshape(-1, 4),
               "labels": d["labels"].detach().long().cpu().reshape(-1)}
        if scored:
            out["scores"] = d["scores"].detach().float().cpu().reshape(-1)
        return out

    p = [clean(d, True) for d in preds]
    t = [clean(d, False) for d in targets]
    coco, at = _metric(None), _metric([float(overlap_threshold)])
    coco.update(p, t)
    at.update(p, t)
    coco_result, at_result = coco.compute(), at.compute()

    metrics = {"mAP": _plain(at_result["map"]), "mAP_50_95": _plain(coco_result["map"]),
               "mAP_50": _plain(coco_result["map_50"]), "overlap_threshold": float(overlap_threshold)}
    for size in ("small", "medium", "large"):  # COCO areas: < 32², 32²–96², > 96² pixels; -1 = no such boxes
        metrics[f"mAP_{size}"] = _plain(coco_result[f"map_{size}"])
    seen = [int(c) for c in at_result["classes"].reshape(-1).tolist()]
    ap = at_result["map_per_class"].reshape(-1).tolist()
    per_class: dict[str, float | None] = {name: None for name in classes}
    pr_curves: dict[str, tuple[list[float], list[float]]] = {}
    precision = at_result["precision"]  # [T, R, K, A, M]; -1 where undefined
    recall_points = torch.linspace(0, 1, precision.shape[1]).tolist()
    for k, label in enumerate(seen):
        if not 0 <= label < len(classes):
            continue
        value = ap[k] if k < len(ap) else -1.0
        per_class[classes[label]] = round(float(value), 6) if value >= 0 else None
        curve = precision[0, :, k, 0, -1]
        valid = curve >= 0
        if value >= 0 and bool(valid.any()):
            pr_curves[classes[label]] = ([r for r, v in zip(recall_points, valid.tolist(), strict=True) if v],
                                         curve[valid].tolist())
    return DetectionScores(metrics, per_class, pr_curves)


@dataclass
class DetectionEvaluation:
    """The outcome of :func:`evaluate_detection`. ``metrics``: ``mAP`` (at ``overlap_threshold``), ``mAP_50_95``,
    ``mAP_50``, ``overlap_threshold``, ``num_images``, ``num_boxes`` (true boxes), ``num_detections`` (all scored
    detections). ``per_class``: class name → AP at the overlap threshold (None: no true boxes of that class).
    ``report_dir`` / ``files``: where the report was written (None / empty without an output folder).
    ``predictions`` / ``targets`` (one dict per image, as :func:`detection_scores` takes them), ``images`` and
    ``fingerprint`` (the data's :func:`~oculi.artifacts.dataset_fingerprint`) keep the raw outcome for thresholds
    and error analysis."""

    metrics: dict[str, float]
    per_class: dict[str, float | None]
    classes: list[str]
    model: str
    data: str
    pr_curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    report_dir: Path | None = None
    files: dict[str, Path] = field(default_factory=dict)
    predictions: list[dict[str, torch.Tensor]] = field(default_factory=list)
    targets: list[dict[str, torch.Tensor]] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)
    fingerprint: str = ""
    error_analysis: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The content of ``metrics.json``: ``mAP``, ``mAP_50_95``, ``mAP_50``, ``overlap_threshold``,
        ``per_class_AP`` (name → AP or null), ``num_images``, ``num_boxes``, ``num_detections``, ``model``,
        ``data``, ``classes``."""
        body = {**self.metrics, "per_class_AP": dict(self.per_class), "model": self.model, "data": self.data,
                "classes": list(self.classes)}
        return {**body, "error_analysis": self.error_analysis} if self.error_analysis else body

    def render(self, console: Console) -> None:
        """Print the overall metrics and the per-class AP as rich tables."""
        console.print(f"model: {self.model}\ndata: {self.data}", soft_wrap=True)
        t = self.metrics["overlap_threshold"]
        overall = Table("metric", "value", title="Overall", title_justify="left")
        overall.add_row("images", str(int(self.metrics["num_images"])))
        overall.add_row("true boxes", str(int(self.metrics["num_boxes"])))
        overall.add_row(f"mAP @ IoU {t:g}", f"{self.metrics['mAP']:.4f}")
        overall.add_row("mAP @ IoU 0.50", f"{self.metrics['mAP_50']:.4f}")
        overall.add_row("mAP @ IoU 0.50:0.95", f"{self.metrics['mAP_50_95']:.4f}")
        for size in ("small", "medium", "large"):
            value = self.metrics.get(f"mAP_{size}", -1.0)
            overall.add_row(f"mAP {size} boxes (0.50:0.95)", "—  (none)" if value < 0 else f"{value:.4f}")
        console.print(overall)
        per_class = Table("class", f"AP @ IoU {t:g}", title="Per class", title_justify="left")
        for name in self.classes:
            value = self.per_class.get(name)
            per_class.add_row(name, "—  (no true boxes)" if value is None else f"{value:.4f}")
        console.print(per_class)
        if self.error_analysis:
            errors = Table("error type", "count", "mAP lost (ΔAP)", "share of lost mAP",
                           title="Errors (TIDE)", title_justify="left")
            for kind, row in self.error_analysis["errors"].items():
                errors.add_row(kind, str(row["count"]), f"{row['delta_mAP']:.4f}", f"{row['share_of_lost_mAP']:.1%}")
            console.print(errors)


def _align(sample_set: SampleSet, classes: list[str], model: str) -> SampleSet:
    """``sample_set`` with box labels re-indexed to the model's ``classes`` by name."""
    if sample_set.classes == classes:
        return sample_set
    from dataclasses import replace

    used = {label for s in sample_set.samples for label in s.target.labels}
    unknown = [name for i, name in enumerate(sample_set.classes) if i in used and name not in classes]
    if unknown:
        raise DataError(f"{sample_set.source or 'the data'}: class(es) {', '.join(map(repr, unknown))} are not "
                        f"classes of the model {model} ({', '.join(classes)}). Leave those boxes out, or "
                        "evaluate a model trained on them.")
    index = {i: classes.index(name) for i, name in enumerate(sample_set.classes) if name in classes}
    samples = [replace(s, target=replace(s.target, labels=tuple(index[label] for label in s.target.labels)))
               for s in sample_set.samples]
    return SampleSet(samples, list(classes), multi_label=sample_set.multi_label, format=sample_set.format,
                     source=sample_set.source, findings=list(sample_set.findings))


def _target(box: BoxTarget) -> dict[str, torch.Tensor]:
    return {"boxes": torch.tensor(box.boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(box.labels, dtype=torch.int64).reshape(-1)}


def _decode(path: Path) -> torch.Tensor:
    try:
        return decode_image(path)
    except DataError as e:
        raise DataError(f"{e} Run `oculi data check` on the data to list every unreadable image.") from None


@torch.inference_mode()
def _detect_all(predictor: Any, images: list[Path], batch_size: int, progress: bool,
                keep: int) -> tuple[list[dict[str, torch.Tensor]], list[torch.Tensor]]:
    """SSD detections (0-based labels, CPU, original pixels) of every image, and the first ``keep`` decoded
    images."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    preds: list[dict[str, torch.Tensor]] = []
    kept: list[torch.Tensor] = []
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(images))
        for start in range(0, len(images), batch_size):
            batch = [_decode(path) for path in images[start:start + batch_size]]
            for out in predictor.detect(batch):
                preds.append({"boxes": out["boxes"].float().cpu(), "scores": out["scores"].float().cpu(),
                              "labels": out["labels"].long().cpu() - 1})
            kept.extend(batch[:max(0, keep - len(kept))])
            bar.advance(task, len(batch))
    return preds, kept


def _held_out_split(path: Path) -> str | None:
    """``val`` (else ``test``) when ``path`` is a YOLO dataset whose data YAML names a held-out split folder, so
    evaluation does not score training images; None otherwise (the whole dataset is read)."""
    from oculi.data.formats.yolo import is_yolo, yolo_splits

    if not is_yolo(path):
        return None
    splits = yolo_splits(path)
    return next((s for s in ("val", "test") if s in splits), None)


def evaluate_detection(
    predictor: Any,
    data: Path | SampleSet,
    *,
    output: Path | None = None,
    image_roots: dict[str, Path] | None = None,
    progress: bool = True,
    batch_size: int = 8,
    label_attribute: str | None = None,
) -> DetectionEvaluation:
    """Evaluate an object-detection model on annotated images.

    ``predictor``: a loaded :class:`~oculi.inference.detection.DetectionPredictor`. ``data``: any detection
    dataset :func:`~oculi.data.detection.read_detection` reads (a COCO file, VOC/YOLO/SageMaker folders, an
    augmented manifest — ``image_roots`` maps its S3 prefixes to local folders) or an in-memory detection
    :class:`SampleSet` (classes matched to the model's by name); a YOLO dataset whose data YAML names a ``val``
    (else ``test``) split folder is evaluated on that split only. Images are run at full size, so predicted and
    true boxes are compared as ``xyxy`` pixels of the original image. ``output``: write ``metrics.json``,
    ``pr_curves.png`` and ``detections.png`` there. ``label_attribute``: a manifest's box attribute, when its
    lines have several.

    Raises :class:`DataError` for unreadable data, classes the model does not know, no images or no true
    boxes."""
    model_name = str(predictor.bundle.path)
    classes = list(predictor.classes)
    overlap = float(predictor.bundle.meta.get("hyperparameters", {}).get("overlap_threshold", 0.5))
    if isinstance(data, SampleSet):
        sample_set, data_name = _align(data, classes, model_name), data.source or "the given samples"
    else:
        path = Path(data).expanduser()
        split = _held_out_split(path)
        try:
            sample_set = read_detection(path, image_roots=image_roots, classes=classes, split=split,
                                        label_attribute=label_attribute)
        except DataError as e:
            raise DataError(f"{path}: cannot be read as detection data for the model {model_name}: {e}") from None
        data_name = f"{path} ({split} split)" if split else str(path)
    check_evaluation_data(sample_set, classes, model_name, "no annotated images to evaluate. Pass a COCO, VOC, "
                          "YOLO, manifest or SageMaker JSON dataset holding images of the model's classes.")

    samples = sample_set.samples
    preds, kept = _detect_all(predictor, [s.image for s in samples], batch_size, progress, DETECTION_GRID)
    targets = [_target(s.target) for s in samples]
    scores = detection_scores(preds, targets, classes, overlap)
    metrics = {**scores.metrics, "num_images": len(samples), "num_boxes": sum(len(s.target) for s in samples),
               "num_detections": sum(len(p["labels"]) for p in preds)}
    result = DetectionEvaluation(metrics, scores.per_class, classes, model_name, data_name, scores.pr_curves,
                                 predictions=preds, targets=targets, images=[s.image for s in samples],
                                 fingerprint=dataset_fingerprint([sample_set]))
    if output is not None:
        out = Path(output).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        files = {"metrics": out / "metrics.json", "precision-recall curves": out / "pr_curves.png",
                 "detections": out / "detections.png"}
        tide_report = tide(preds, targets, len(classes), overlap)
        files["error galleries"] = out / "errors"
        galleries = plot_detection_errors(tide_report, preds, targets, result.images, classes,
                                          files["error galleries"])
        result.error_analysis = {**tide_report.to_dict(),
                                 "galleries": [p.relative_to(out).as_posix() for p in galleries.values()]}
        files["metrics"].write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        plot_pr_curves(scores.pr_curves, classes, overlap, files["precision-recall curves"])
        plot_detections(kept, preds[:len(kept)], targets[:len(kept)], classes, files["detections"])
        result.report_dir, result.files = out, files
    return result


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def plot_pr_curves(curves: dict[str, tuple[list[float], list[float]]], classes: list[str], overlap: float,
                   path: Path) -> Path:
    """Precision against recall, one curve per class (``curves``: name → ``(recall, precision)``) at IoU
    ``overlap``, to ``path`` (PNG). Classes without true boxes are left out. Returns ``path``."""
    figure = _figure(7, 5.5)
    axes = figure.add_subplot(1, 1, 1)
    for name in classes:
        if name in curves:
            recall, precision = curves[name]
            axes.plot(recall, precision, label=name)
    if curves:
        axes.legend(loc="lower left", fontsize=8)
    else:
        axes.text(0.5, 0.5, "no class has true boxes", ha="center", va="center")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(f"Precision–recall at IoU {overlap:g}")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)


def plot_detections(images: list[torch.Tensor], preds: list[dict[str, torch.Tensor]],
                    targets: list[dict[str, torch.Tensor]], classes: list[str], path: Path) -> Path:
    """A grid of ``images`` (``uint8 [3, H, W]``) with true boxes (:data:`TRUE_COLOUR`) and up to
    :data:`DRAW_MAX_BOXES` predicted boxes scoring ≥ :data:`DRAW_MIN_SCORE` (:data:`PRED_COLOUR`, labelled class
    and score), all ``xyxy`` pixels of the image, to ``path`` (PNG). Returns ``path``."""
    from torchvision.utils import draw_bounding_boxes

    if not images:
        figure = _figure(6, 2)
        figure.text(0.5, 0.5, "No images to draw.", ha="center", va="center")
        figure.savefig(path)
        return Path(path)
    columns = min(4, len(images))
    rows = math.ceil(len(images) / columns)
    figure = _figure(3.2 * columns, 2.8 * rows + 0.6)
    for k, (image, pred, target) in enumerate(zip(images, preds, targets, strict=True)):
        scale = max(1, math.ceil(DRAW_MIN_SIDE / max(1, min(image.shape[-2:]))))
        drawn = image.repeat_interleave(scale, -2).repeat_interleave(scale, -1) if scale > 1 else image
        keep = torch.nonzero(pred["scores"] >= DRAW_MIN_SCORE).flatten()
        keep = keep[pred["scores"][keep].argsort(descending=True)][:DRAW_MAX_BOXES]
        if len(keep):
            labels = [f"{classes[int(c)] if 0 <= int(c) < len(classes) else int(c)} {float(s):.2f}"
                      for c, s in zip(pred["labels"][keep], pred["scores"][keep], strict=True)]
            drawn = draw_bounding_boxes(drawn, pred["boxes"][keep] * scale, labels=labels, colors=PRED_COLOUR,
                                        width=1)
        if len(target["boxes"]):  # drawn last, on top
            drawn = draw_bounding_boxes(drawn, target["boxes"] * scale, colors=TRUE_COLOUR, width=2)
        axes = figure.add_subplot(rows, columns, k + 1)
        axes.imshow(drawn.permute(1, 2, 0).numpy())
        axes.set_title(f"{len(keep)} predicted / {len(target['boxes'])} true", fontsize=8)
        axes.set_axis_off()
    figure.suptitle(f"Detections (score ≥ {DRAW_MIN_SCORE}, top {DRAW_MAX_BOXES}, {PRED_COLOUR}) and true boxes "
                    f"({TRUE_COLOUR})",
                    fontsize=11)
    figure.tight_layout()
    figure.savefig(path)
    return Path(path)
