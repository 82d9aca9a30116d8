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
) -> None:
    """Predict the classes of images with a trained model.

    Example: oculi predict models/ants val/bees/1032546534_06907fe3b3.jpg --top-k 2
    """
    from oculi import load_model

    predictor = load_model(model)
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
