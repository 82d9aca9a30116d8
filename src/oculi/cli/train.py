"""``oculi train`` and ``oculi demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from oculi.cli.common import console, parse_channels, parse_image_roots


def train(
    algorithm: str = typer.Argument(..., help="Algorithm to train; see `oculi algorithms list`."),
    train: Path | None = typer.Option(None, "--train", help="Training channel: class folders, a .lst file or an "
                                      "augmented manifest."),
    validation: Path | None = typer.Option(None, "--validation", help="Validation channel (same forms). Without "
                                           "it a seeded, stratified part of the training data is held out."),
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Any SageMaker channel as NAME=PATH "
                                             "(train_lst, validation_lst, train_annotation, label_map, model, …). "
                                             "Repeatable."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="Hyperparameter as name=value "
                                           "(SageMaker string forms accepted). Repeatable."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Hyperparameters file: JSON (SageMaker's "
                                       "hyperparameters.json) or name=value lines; -p values win."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder for the model bundle (default: a new "
                                       "folder under $OCULI_HOME/runs)."),
    init_model: Path | None = typer.Option(None, "--init-model", help="Start from an earlier oculi model bundle "
                                           "of the same architecture (SageMaker's `model` channel)."),
    image_root: list[str] | None = typer.Option(None, "--image-root", help="Map an S3 prefix in a manifest to a "
                                                "local folder: s3://bucket/prefix=DIR. Repeatable."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow writing over an existing bundle in --output."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Train an algorithm and write a model bundle (model.json + weights.safetensors).

    Example: oculi train image-classification --train data/train --validation data/val
    -p architecture=efficientnet-lite0 -p use_pretrained_model=1 -p epochs=5 --output models/ants

    Example: oculi train semantic-segmentation --train em/train -c train_annotation=em/train_annotation
    --validation em/validation -c validation_annotation=em/validation_annotation -p num_classes=2 --output models/em
    """
    from oculi.config import load_recipe
    from oculi.engine.training import train as run

    result = run(
        algorithm,
        parse_channels(train, validation, channel),
        _params(param),
        recipe=load_recipe(recipe) if recipe else None,
        output=output,
        init_model=init_model,
        image_roots=parse_image_roots(image_root),
        progress=not no_progress,
        overwrite=overwrite,
        echo=console.print,
    )
    shown = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    console.print(f"[bold green]done[/] in {result.seconds:.0f} s. Best epoch {result.best_epoch}: {shown}")
    console.print(f"model bundle: {result.model_dir}  (model.json, weights.safetensors)")
    console.print(f"per-epoch metrics: {result.model_dir / 'metrics.csv'}; checkpoints: "
                  f"{result.model_dir / 'checkpoints'}")


def _params(param: list[str] | None) -> dict[str, str]:
    from oculi.config import parse_assignments

    return parse_assignments(param or [])


def demo(
    output: Path = typer.Option(Path("demo-output"), "--output", "-o", help="Folder for the demo's data, model "
                                "and report."),
    epochs: int = typer.Option(8, "--epochs", help="Training epochs."),
) -> None:
    """Train, evaluate and use an image classifier on real handwritten digits (scikit-learn's bundled copy);
    no network, no other data needed.

    Example: oculi demo --output demo-output
    """
    from oculi.demo import run_demo

    run_demo(output, epochs=epochs, echo=console.print)
