"""``oculi evaluate``."""

from __future__ import annotations

from pathlib import Path

import typer

from oculi.cli.common import console, parse_image_roots


def evaluate(
    model: Path = typer.Argument(..., help="Model bundle folder, job output folder or model.tar.gz."),
    data: Path = typer.Argument(..., help="Labelled images: class folders, a .lst, an augmented manifest, or a "
                                "folder with train/ and val/ splits (the validation split is evaluated); for a "
                                "detection model, a COCO file, VOC/YOLO/SageMaker folders or a manifest; for a "
                                "segmentation model, SageMaker's mask layout, a -ref manifest, VOC or COCO."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder for the report: metrics.json, "
                                       "per_class.csv, confusion_matrix.png, misclassified.png (detection: "
                                       "metrics.json, pr_curves.png, detections.png; segmentation: metrics.json, "
                                       "per_class_iou.csv, overlays/)."),
    top_k: int | None = typer.Option(None, "--top-k", "-k", min=1, help="Also report top-k accuracy (true class "
                                     "among the k most probable); classification models only."),
    image_root: list[str] | None = typer.Option(None, "--image-root", help="Map an S3 prefix in a manifest to a "
                                                "local folder: s3://bucket/prefix=DIR. Repeatable."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
    label_attribute: str | None = typer.Option(None, "--label-attribute", help="Augmented manifests: the "
                                               "attribute that holds the labels, when the lines have several."),
    choose_thresholds: str | None = typer.Option(None, "--choose-thresholds", help="Choose score thresholds on "
                                                 "this data and fit temperature scaling: max_f1, precision=0.95 or "
                                                 "recall=0.95 (per class for multi-label classification and "
                                                 "detection; an 'unsure' threshold for single-label "
                                                 "classification). Prints the expected calibration error before "
                                                 "and after; with --output also writes thresholds.json."),
    write: bool = typer.Option(False, "--write", help="With --choose-thresholds: store the thresholds and the "
                               "temperature in the bundle's model.json (with the data's fingerprint and the rule); "
                               "predict, serve and transform then apply them. Without it the bundle is not "
                               "touched."),
) -> None:
    """Measure a trained model on labelled images: accuracy, per-class precision/recall/F1, confusion matrix;
    for an object-detection model, mAP (at its overlap_threshold, at IoU 0.5 and over 0.50:0.95) and per-class AP;
    for a semantic-segmentation model, mIOU, pixel accuracy and per-class IoU with truth/prediction overlays.

    Example: oculi evaluate models/ants hymenoptera_data/val --output reports/ants --top-k 2

    Example: oculi evaluate models/membranes data/em --output reports/membranes

    Example: oculi evaluate models/bees bees/val --choose-thresholds precision=0.95 --write
    """
    from oculi.errors import ConfigError
    from oculi.tasks import evaluate as run

    options = {"output": output, "top_k": top_k, "image_roots": parse_image_roots(image_root),
               "progress": not no_progress, "label_attribute": label_attribute}
    if write and choose_thresholds is None:
        raise ConfigError("--write stores chosen thresholds; add --choose-thresholds max_f1 (or precision=P, "
                          "recall=R).")
    if choose_thresholds is None:
        result = run(model, data, **options)
        result.render(console)
    else:
        from oculi.tasks.thresholds import evaluate_with_thresholds

        result, chosen = evaluate_with_thresholds(model, data, choose_thresholds, write=write, **options)
        result.render(console)
        chosen.render(console)
    for what, path in result.files.items():
        console.print(f"{what}: {path}", soft_wrap=True)
