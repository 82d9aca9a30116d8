"""``oculi export``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from oculi.cli.common import console, working
from oculi.errors import ConfigError

FORMATS = ("onnx",)


def export(
    model: Path = typer.Argument(..., help="Model bundle folder, job output folder or model.tar.gz."),
    export_format: str = typer.Option(..., "--format", "-f", help="Export format: onnx (adds model.onnx to the "
                                      "bundle)."),
    tolerance: float | None = typer.Option(None, "--tolerance", help="Largest accepted difference between "
                                           "onnxruntime's and PyTorch's float32 outputs on the sample images, for "
                                           "outputs within ±1 (scaled by the largest |output| beyond); default "
                                           "1e-3. Nothing is written above it."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the spinner shown on a terminal while the "
                                     "model is exported and checked."),
) -> None:
    """Export a trained model for another runtime. onnx: writes model.onnx into the bundle (a model.tar.gz is
    re-packed with it) and records it in model.json, after checking that onnxruntime reproduces PyTorch on
    generated images (and, for object detection, the same final boxes). Serve or predict with it through
    --runtime onnx.

    Example: oculi export models/ants --format onnx

    Example: oculi export models/bees/model.tar.gz --format onnx --tolerance 1e-4
    """
    if export_format not in FORMATS:
        raise ConfigError(f"--format got {export_format!r}; expected one of {', '.join(FORMATS)}. Pass --format onnx.")
    from oculi.export import export_onnx

    with working(f"exporting {model} to ONNX and checking it against PyTorch…", enabled=not no_progress):
        result = export_onnx(model) if tolerance is None else export_onnx(model, tolerance=tolerance)
    parity = result.parity
    table = Table("output", "shape", "max |onnx − torch|", "max |torch|")
    shapes = {item["name"]: item["shape"] for item in result.entry["outputs"]}
    for name, record in parity.outputs.items():
        table.add_row(name, "×".join(map(str, shapes[name])), f"{record['max_abs_diff']:.2e}",
                      f"{record['max_abs_torch']:.3g}")
    console.print(table)
    samples = ", ".join("×".join(map(str, shape)) for shape in parity.samples)
    console.print(f"parity: passed at tolerance {parity.tolerance:g} on inputs {samples}")
    for name, found in parity.final.items():
        console.print(f"{name}: {found['result']}")
    where = f"{result.path} (inside the re-packed archive)" if result.archive else str(result.path)
    console.print(f"onnx: {where}, opset {result.entry['opset']}, {result.seconds:.1f} s")
    console.print(f"use it: oculi predict {model} IMAGE --runtime onnx")
