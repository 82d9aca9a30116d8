"""``oculi explain``."""

from __future__ import annotations

from pathlib import Path

import typer

from oculi.cli.common import console
from oculi.explain import CHOICES, DEFAULT_METHOD


def explain(
    model: Path = typer.Argument(..., help="Model bundle folder, job output folder or model.tar.gz."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    output: Path = typer.Option(Path("explanations"), "--output", "-o", help="Folder for the overlays (PNG), raw "
                                "maps (.npy, float32 0–1) and one IMAGE.explain.json per image."),
    method: str = typer.Option(DEFAULT_METHOD, "--method", help=f"CAM method: {', '.join(CHOICES)} (auto: the task's "
                               "measured default — LayerCAM for detection, Grad-CAM otherwise)."),
    target: list[str] = typer.Option([], "--target", "-t", help="Class to explain (repeatable). Classification: "
                                     "default the top-1 class; detection: only boxes of these classes; "
                                     "segmentation: default every class present."),
    min_score: float = typer.Option(0.3, "--min-score", min=0.0, max=1.0, help="Detection: explain boxes scoring "
                                    "at least this (the top 5 by default)."),
    layer: str | None = typer.Option(None, "--layer", help="Layer whose activations the map is made of (a module "
                                     "name such as layer4); default the task's choice, named in the JSON."),
    feature_maps: bool = typer.Option(False, "--feature-maps", help="Also write the first convolution layer's "
                                      "feature maps (for each image) and filters as grids."),
    feature_layer: str | None = typer.Option(None, "--feature-layer", help="With --feature-maps: this layer "
                                             "instead of the first convolution."),
    no_faithfulness: bool = typer.Option(False, "--no-faithfulness", help="Skip the deletion test (9 extra "
                                         "forward passes per map)."),
) -> None:
    """Show what the model looks at: a heat map per class (classification), per detected box (detection) or per
    class region (segmentation), each with a faithfulness score — how much more the target's score falls when
    the map's most salient 10/20/50 % of pixels are removed than when as many random pixels are (above 0: the map
    points at what the model uses; about 0: no better than chance). Runs in float32.

    Example: oculi explain models/ants val/bees/1032546534_06907fe3b3.jpg --output explained

    Example: oculi explain models/bees bee.jpg --method gradcam++ --min-score 0.5

    Example: oculi explain models/ants ant.jpg --target ants --target bees --feature-maps
    """
    from rich.table import Table

    from oculi.explain import explain as run

    results = run(model, list(images), output=output, method=method, targets=target or None, min_score=min_score,
                  layer=layer,
                  feature_maps=(feature_layer or "first") if feature_maps else None, faithfulness=not no_faithfulness)
    table = Table("image", "target", "score", "faithfulness", "overlay")
    for result in results:
        stem = Path(result.image).stem
        if not result.explanations:
            table.add_row(result.image, "nothing to explain (no box above --min-score?)", "", "", "")
        for n, item in enumerate(result.explanations):
            described = item.target.describe
            score = described.get("score", described.get("pixel_share", ""))
            table.add_row(result.image if n == 0 else "", item.target.name, f"{score}",
                          f"{item.faithfulness.get('score', '–')}", f"{stem}-{item.target.name}.png")
    console.print(table)
    first = results[0] if results else None
    if first is not None:
        console.print(f"method {first.method} at layer {first.layer} (float32); outputs in {output}/")
