"""``oculi predict``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from oculi.cli.common import console


def predict(
    model: Path = typer.Argument(..., help="Model bundle folder (or model.tar.gz)."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Classes to show per image."),
    as_json: bool = typer.Option(False, "--json", help="Print SageMaker's response: {\"prediction\": [p0, p1, …]} "
                                 "(one JSON line per image)."),
    verbose: bool = typer.Option(False, "--verbose", help="With --json: SageMaker's verbose form with "
                                 "probabilities, labels and predicted_label."),
    annotation: bool = typer.Option(False, "--annotation", help="Detection: SageMaker's annotation form (pixels "
                                    "left/top/width/height with scores) instead of normalised rows."),
    draw: Path | None = typer.Option(None, "--draw", help="Detection: write the image with labelled boxes here; "
                                     "segmentation: a colour overlay with a legend (with several images, IMAGE-NAME "
                                     "is appended)."),
    png: Path | None = typer.Option(None, "--png", help="Segmentation: write the mask here as a PNG of class values "
                                    "in the training label encoding, at the image's size (SageMaker's image/png)."),
    min_score: float = typer.Option(0.0, "--min-score", min=0.0, max=1.0, help="Detection: drop detections "
                                    "scoring below this (SageMaker applies no threshold; neither do we by default)."),
    runtime: str = typer.Option("torch", "--runtime", help="torch, or onnx (the bundle's model.onnx in "
                                "onnxruntime; make it with `oculi export MODEL --format onnx`)."),
    precision: str = typer.Option("auto", "--precision", help="torch runtime: auto (bf16 autocast + channels_last "
                                  "on CPUs with native bf16, else float32), float32 or bfloat16."),
) -> None:
    """Predict with a trained model: classes (classification), boxes (object detection) or a class per pixel
    (semantic segmentation).

    Example: oculi predict models/ants val/bees/1032546534_06907fe3b3.jpg --top-k 2

    Example: oculi predict models/bees bee.jpg --json --min-score 0.3 --draw bee-boxes.png

    Example: oculi predict models/membranes slice.png --png slice-mask.png --draw slice-overlay.png

    Example: oculi predict models/ants photo.jpg --runtime onnx   (after `oculi export models/ants --format onnx`)
    """
    from oculi.inference import DetectionPredictor, Predictor, SegmentationPredictor

    predictor = Predictor.from_artifact(model, runtime=runtime, precision=precision)
    if isinstance(predictor, SegmentationPredictor):
        _segmentation(predictor, images, as_json, png, draw)
        return
    if isinstance(predictor, DetectionPredictor):
        _detections(predictor, images, as_json or verbose, annotation, draw, min_score)
        return
    results = predictor.predict(list(images))
    if as_json or verbose:
        for result in results:
            console.print_json(json.dumps(result.sagemaker(verbose=verbose)), indent=None)
        return
    table = Table("image", "class", "probability")
    for path, result in zip(images, results, strict=True):
        for rank, (label, prob) in enumerate(result.top(top_k)):
            table.add_row(str(path) if rank == 0 else "", label, f"{prob:.4f}")
    console.print(table)


def _detections(predictor, images: list[Path], as_json: bool, annotation: bool, draw: Path | None,  # noqa: ANN001
                min_score: float) -> None:
    from oculi.inference.detection import draw as draw_boxes

    for path in images:
        image = predictor.to_tensor(path)
        result = predictor.predict(image, min_score=min_score)
        if draw is not None:
            target = draw if len(images) == 1 else draw.with_name(f"{draw.stem}-{path.stem}{draw.suffix}")
            console.print(f"drawn: {draw_boxes(image, result, target)}")
        if as_json or annotation:
            body = result.annotation() if annotation else result.sagemaker()
            console.print_json(json.dumps(body), indent=None)
            continue
        table = Table("image", "class", "score", "box (xmin, ymin, xmax, ymax px)")
        for n, (box, score, label) in enumerate(zip(result.boxes, result.scores, result.labels, strict=True)):
            table.add_row(str(path) if n == 0 else "", result.classes[label], f"{score:.3f}",
                          ", ".join(f"{v:.0f}" for v in box))
        console.print(table if result.boxes else f"{path}: no detections")


def _numbered(path: Path, image: Path, many: bool) -> Path:
    return path.with_name(f"{path.stem}-{image.stem}{path.suffix}") if many else path


def _segmentation(predictor, images: list[Path], as_json: bool, png: Path | None,  # noqa: ANN001
                  draw: Path | None) -> None:
    from oculi.inference.segmentation import overlay

    for path in images:
        image = predictor.to_tensor(path)
        result = predictor.predict(image)
        if png is not None:
            target = _numbered(png, path, len(images) > 1)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(result.png())
            console.print(f"mask: {target}")
        if draw is not None:
            target = _numbered(draw, path, len(images) > 1)
            target.parent.mkdir(parents=True, exist_ok=True)
            overlay(image, result.mask, result.classes).save(target)
            console.print(f"drawn: {target}")
        if as_json:
            console.print_json(json.dumps(result.to_json()), indent=None)
        elif png is None and draw is None:
            table = Table("image", "class", "share of pixels")
            for n, (name, share) in enumerate(result.fractions().items()):
                table.add_row(str(path) if n == 0 else "", name, f"{share:.4f}")
            console.print(table)
