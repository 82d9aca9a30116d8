"""``oculi predict``."""

from __future__ import annotations

from pathlib import Path

import typer

from oculi.cli.common import PRECISION_HELP, RUNTIME_HELP, console


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
    runtime: str = typer.Option("auto", "--runtime", help=RUNTIME_HELP),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
    verbose_runtime: bool = typer.Option(False, "--show-runtime", help="Print which runtime and precision ran "
                                         "(and why) to stderr."),
    threshold: str | None = typer.Option(None, "--threshold", help="Override the thresholds stored by `oculi "
                                         "evaluate --choose-thresholds --write`: a number for every class (the "
                                         "unsure threshold of a single-label model), class=value,… or none."),
    explain: bool = typer.Option(False, "--explain", help="Also explain each prediction: heat-map overlays, raw "
                                 "maps and IMAGE.explain.json in --explain-output (float32; see `oculi explain`)."),
    explain_output: Path = typer.Option(Path("explanations"), "--explain-output", help="With --explain: the folder "
                                        "for the explanations."),
) -> None:
    """Predict with a trained model: classes (classification), boxes (object detection) or a class per pixel
    (semantic segmentation).

    Example: oculi predict models/ants val/bees/1032546534_06907fe3b3.jpg --top-k 2

    Example: oculi predict models/bees bee.jpg --json --min-score 0.3 --draw bee-boxes.png

    Example: oculi predict models/membranes slice.png --png slice-mask.png --draw slice-overlay.png

    Example: oculi predict models/ants photo.jpg --runtime onnx   (after `oculi export models/ants --format onnx`)

    Example: oculi predict models/bees bee.jpg --threshold bee=0.3   (override the bundle's calibrated thresholds)
    Example: oculi predict models/ants photo.jpg --explain --explain-output explained/
    """
    from oculi.tasks import PredictOptions, load_predictor, task_of

    predictor = load_predictor(model, runtime=runtime, precision=precision)
    if verbose_runtime:
        from oculi.cli.common import err_console
        from oculi.inference.runtimes import describe

        err_console.print(f"runtime: {describe(predictor.runtime)}")
    options = PredictOptions(top_k=top_k, as_json=as_json, verbose=verbose, annotation=annotation,
                             min_score=min_score, png=png, draw=draw, threshold=threshold)
    applied = predictor.applied(threshold)
    task_of(predictor).show(predictor, list(images), options, console)
    if applied is not None and not (as_json or verbose or annotation):
        what = (f"thresholds {applied.thresholds}" if applied.thresholds is not None else
                f"unsure below {applied.unsure:g}" if applied.unsure is not None else "no thresholds")
        console.print(f"calibration ({applied.source}{', ' + applied.rule if applied.rule else ''}): temperature "
                      f"{applied.temperature:.3f}, {what}", soft_wrap=True)
    if explain:
        from oculi.explain import explain as explain_images

        results = explain_images(predictor, list(images), output=explain_output, min_score=max(min_score, 0.3))
        console.print(f"explanations of {len(results)} image(s) (float32): {explain_output}/")
