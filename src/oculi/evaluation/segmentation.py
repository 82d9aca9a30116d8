"""Evaluation of semantic-segmentation bundles: mIOU, pixel accuracy and per-class IoU over every labelled pixel
at the annotation's resolution (ignore index 255 excluded), and a report folder (``metrics.json``,
``per_class_iou.csv``, ``overlays/<image>.png`` with truth and prediction side by side).

    from oculi.evaluation.segmentation import evaluate_segmentation
    result = evaluate_segmentation(predictor, Path("data"), output=Path("reports/seg"))
    result.metrics["mIOU"]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from oculi.data.formats.masks import load_mask
from oculi.data.image import decode_image
from oculi.errors import DataError
from oculi.evaluation.analysis import WORST_IMAGES, boundary_counts, boundary_f1, error_map, image_iou
from oculi.types import IGNORE_INDEX, SampleSet

OVERLAY_IMAGES = 8  # images drawn in overlays/


@dataclass
class SegmentationEvaluation:
    """What :func:`evaluate_segmentation` measured: ``metrics`` (``mIOU``, ``pixel_accuracy``), ``per_class``
    (class name → IoU, None for a class neither in the truth nor predicted), ``confusion`` (``[C, C]`` pixel
    counts, rows truth, columns prediction), and the report ``files`` written."""

    metrics: dict[str, float]
    per_class: dict[str, float | None]
    confusion: list[list[int]]
    num_images: int
    model: str
    data: str
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    boundary_f1: dict[str, float | None] = field(default_factory=dict)
    worst_images: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``metrics.json``'s content (``error_analysis``: per-class boundary F1 and the worst images by IoU)."""
        return {**self.metrics, "per_class_iou": self.per_class, "confusion_matrix": self.confusion,
                "num_images": self.num_images, "model": self.model, "data": self.data, "notes": self.notes,
                "error_analysis": {"per_class_boundary_F1": self.boundary_f1, "worst_images": self.worst_images}}

    def render(self, console: Console) -> None:
        """Print the per-class IoU table and the headline metrics."""
        for note in self.notes:
            console.print(note, soft_wrap=True)
        table = Table("class", "IoU", "true pixels", title=f"{self.model} on {self.data} ({self.num_images} images)")
        for i, (name, iou) in enumerate(self.per_class.items()):
            table.add_row(name, "–" if iou is None else f"{iou:.4f}", str(sum(self.confusion[i])))
        console.print(table)
        console.print(f"mIOU {self.metrics['mIOU']:.4f}   pixel accuracy {self.metrics['pixel_accuracy']:.4f}   "
                      f"boundary F1 {self.metrics.get('boundary_F1', 0.0):.4f}")

    def write(self, folder: Path) -> None:
        """Write ``metrics.json`` and ``per_class_iou.csv`` into ``folder`` (overlays are written while
        predicting)."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "metrics.json").write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False))
        rows = ["class,iou,true_pixels"] + [f"{name},{'' if iou is None else round(iou, 6)},{sum(self.confusion[i])}"
                                            for i, (name, iou) in enumerate(self.per_class.items())]
        (folder / "per_class_iou.csv").write_text("\n".join(rows) + "\n")
        self.files.update({"metrics": folder / "metrics.json", "per-class IoU": folder / "per_class_iou.csv"})


def _side_by_side(image: torch.Tensor, truth: torch.Tensor, predicted: torch.Tensor, classes: list[str],
                  path: Path) -> None:
    from PIL import Image, ImageDraw

    from oculi.inference.segmentation import overlay

    left, right = overlay(image, truth, classes), overlay(image, predicted, classes)
    canvas = Image.new("RGB", (left.width + right.width + 8, max(left.height, right.height) + 14), (255, 255, 255))
    canvas.paste(left, (0, 14))
    canvas.paste(right, (left.width + 8, 14))
    draw = ImageDraw.Draw(canvas)
    draw.text((2, 1), "truth", fill=(0, 0, 0))
    draw.text((left.width + 10, 1), "prediction", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def evaluate_segmentation(predictor: Any, data: Path | SampleSet, *, output: Path | None = None,
                          image_roots: dict[str, Path] | None = None, progress: bool = True,
                          label_attribute: str | None = None) -> SegmentationEvaluation:
    """Evaluate a :class:`~oculi.inference.segmentation.SegmentationPredictor` on labelled segmentation data
    (any format :func:`~oculi.data.segmentation.read_segmentation` reads; a SageMaker dataset root is evaluated on
    its validation split when it has one; masks decode with the data's label map, else the model's). Classes are
    the model's; ``label_attribute`` names a manifest's ``…-ref`` attribute when its lines have several. Raises
    :class:`DataError` when the data has error findings or no images."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from torchmetrics.classification import MulticlassConfusionMatrix

    from oculi.algorithms.segmentation import baseline_warning, confusion_scores, majority_baseline
    from oculi.data.segmentation import read_segmentation

    classes = predictor.classes
    model_name = str(predictor.bundle.path)
    notes: list[str] = []
    if isinstance(data, SampleSet):
        sample_set = data
    else:
        data = Path(data).expanduser()
        split = "validation" if (data / "validation_annotation").is_dir() else "train"
        if split == "validation":
            notes.append(f"{data} holds a validation split; evaluating {data / 'validation'}")
        sample_set = read_segmentation(data, image_roots=image_roots, classes=classes, split=split,
                                       encoding=predictor.spec.get("label_encoding"), label_attribute=label_attribute)
    errors = [f for f in sample_set.findings if f.level == "error"]
    if errors:
        raise DataError(f"{errors[0].location()}: {errors[0].message} ({len(errors)} error(s); list them all with "
                        f"`oculi data check {sample_set.source}`).")
    if not sample_set.samples:
        raise DataError(f"{sample_set.source or 'the data'}: no labelled images to evaluate.")
    metric = MulticlassConfusionMatrix(len(classes), ignore_index=IGNORE_INDEX)
    overlays: list[Path] = []
    boundaries = torch.zeros(len(classes), 4, dtype=torch.int64)
    worst: list[tuple[float, int, Any]] = []  # (image IoU, index, error map), the WORST_IMAGES lowest
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, transient=True, disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(sample_set))
        for n, sample in enumerate(sample_set.samples):
            image = decode_image(sample.image)
            truth = torch.from_numpy(load_mask(sample.target))
            predicted = predictor.logits(image, tuple(truth.shape)).argmax(0)
            metric.update(predicted, truth)
            boundaries += boundary_counts(truth, predicted, len(classes), IGNORE_INDEX)
            score = image_iou(truth, predicted, len(classes), IGNORE_INDEX)
            if output is not None and (len(worst) < WORST_IMAGES or score < worst[-1][0]):
                drawn = error_map(image, truth, predicted, IGNORE_INDEX)
                worst = sorted([*worst, (score, n, drawn)], key=lambda item: item[0])[:WORST_IMAGES]
            if output is not None and n < OVERLAY_IMAGES:
                path = Path(output) / "overlays" / f"{n:02d}-{sample.image.stem}.png"
                _side_by_side(image, truth, predicted, classes, path)
                overlays.append(path)
            bar.advance(task)
    confusion = metric.compute()
    miou, pixel_accuracy, per_class = confusion_scores(confusion)
    warning = baseline_warning(majority_baseline(confusion), miou, pixel_accuracy, classes)
    if warning:
        notes.append(warning)
    mean_boundary, per_class_boundary = boundary_f1(boundaries, classes)
    result = SegmentationEvaluation(
        metrics={"mIOU": round(miou, 6), "pixel_accuracy": round(pixel_accuracy, 6), "boundary_F1": mean_boundary},
        boundary_f1=per_class_boundary,
        worst_images=[{"image": str(sample_set.samples[n].image), "iou": round(score, 6)} for score, n, _ in worst],
        per_class={name: None if v is None else round(v, 6) for name, v in zip(classes, per_class, strict=True)},
        confusion=confusion.tolist(), num_images=len(sample_set), model=model_name,
        data=str(sample_set.source), notes=notes)
    if output is not None:
        folder = Path(output).expanduser()
        for rank, ((_, n, drawn), row) in enumerate(zip(worst, result.worst_images, strict=True)):
            row["error_map"] = f"worst/{rank:02d}-{sample_set.samples[n].image.stem}.png"
            (folder / "worst").mkdir(parents=True, exist_ok=True)
            drawn.save(folder / row["error_map"])
        if worst:
            result.files["error maps of the worst images"] = folder / "worst"
        result.write(folder)
        if overlays:
            result.files["overlays"] = Path(output) / "overlays"
    return result
