"""``oculi export`` and ``oculi benchmark``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from oculi.cli.common import console, err_console, working
from oculi.errors import ConfigError

FORMATS = ("onnx",)


def export(
    model: Path = typer.Argument(..., help="Model bundle folder, job output folder or model.tar.gz."),
    export_format: str | None = typer.Option(None, "--format", "-f", help="Export format: onnx (adds model.onnx — "
                                             "or model.int8.onnx / model.fp16.onnx with --precision — to the "
                                             "bundle)."),
    precision: str = typer.Option("float32", "--precision", help="float32; int8 (ONNX Runtime static "
                                  "quantization, QDQ, per-channel weights, calibrated on --calibration images; "
                                  "written only when the task's metric on --data stays within --max-accuracy-drop "
                                  "of float32); fp16 (for GPUs)."),
    calibration: Path | None = typer.Option(None, "--calibration", help="int8: images to calibrate on (a channel "
                                            "of the model's task; default: the training channel the bundle "
                                            "records)."),
    calibration_size: int = typer.Option(300, "--calibration-size", min=1, help="int8: at most this many "
                                         "calibration images (a seeded sample)."),
    data: Path | None = typer.Option(None, "--data", help="int8/fp16: labelled data the accuracy is measured on "
                                     "(default: the validation channel the bundle records)."),
    max_accuracy_drop: float = typer.Option(0.01, "--max-accuracy-drop", min=0.0, help="int8/fp16: the largest "
                                            "accepted fall of the task's metric (accuracy, mAP, mIoU) from float32 "
                                            "ONNX; the most sensitive layers are kept in float until it holds, else "
                                            "nothing is written."),
    edge: Path | None = typer.Option(None, "--edge", help="Write an edge package to this folder instead: the ONNX "
                                     "model (--precision), its settings and predict.py, which needs only "
                                     "onnxruntime, numpy and Pillow."),
    overwrite: bool = typer.Option(False, "--overwrite", help="--edge: replace a folder that holds files."),
    tolerance: float | None = typer.Option(None, "--tolerance", help="Largest accepted difference between "
                                           "onnxruntime's and PyTorch's float32 outputs on the sample images, for "
                                           "outputs within ±1 (scaled by the largest |output| beyond); default "
                                           "1e-3. Nothing is written above it."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the spinner and progress lines."),
) -> None:
    """Export a trained model for another runtime or for the edge.

    onnx: writes model.onnx into the bundle (a model.tar.gz is re-packed with it) and records it in model.json,
    after checking that onnxruntime reproduces PyTorch on generated images (and, for object detection, the same
    final boxes). --precision int8 adds model.int8.onnx only if its accuracy holds on your data. Serve or predict
    with them through --runtime auto (the default) or --runtime onnx --precision int8.

    Example: oculi export models/ants --format onnx

    Example: oculi export models/ants --format onnx --precision int8 --max-accuracy-drop 0.01

    Example: oculi export models/bees --edge bees-edge   (then: python bees-edge/predict.py bee.jpg)
    """
    if edge is not None:
        from oculi.export.edge import export_edge

        with working(f"writing the edge package of {model}…", enabled=not no_progress):
            package = export_edge(model, edge, precision=precision, overwrite=overwrite)
        console.print(f"edge package ({package.precision}): {package.folder}: {', '.join(package.files)}")
        console.print(f"run it: pip install -r {package.folder / 'requirements.txt'} && python "
                      f"{package.folder / 'predict.py'} IMAGE")
        return
    if export_format not in FORMATS:
        raise ConfigError(f"--format got {export_format!r}; expected one of {', '.join(FORMATS)}. Pass --format onnx "
                          "(or --edge FOLDER).")
    if precision != "float32":
        _export_reduced(model, precision, calibration, calibration_size, data, max_accuracy_drop, no_progress)
        return
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


def _export_reduced(model: Path, precision: str, calibration: Path | None, calibration_size: int, data: Path | None,
                    max_accuracy_drop: float, no_progress: bool) -> None:
    """``--precision int8|fp16``: export, measure, print what was measured (and written, or refused)."""
    from oculi.export.quantize import QuantizationRefused, export_quantized

    def say(line: str) -> None:
        if not no_progress:
            err_console.print(line)

    try:
        result = export_quantized(model, precision, calibration=calibration, calibration_size=calibration_size,
                                  data=data, max_accuracy_drop=max_accuracy_drop, progress=say)
    except QuantizationRefused as refused:
        _attempts(refused.attempts)
        raise
    entry = result.entry
    _attempts(result.attempts)
    console.print(f"{precision}: {result.path} — {entry['metric']} {entry['metric_value']:.4f} against float32 "
                  f"{entry['float32_metric']:.4f} (drop {entry['drop']:+.4f} ≤ {entry['max_accuracy_drop']:g}), "
                  f"{len(entry['kept_float'])} node(s) kept in float32, {result.seconds:.1f} s")
    console.print(f"use it: oculi predict {model} IMAGE --runtime onnx --precision {precision}   (or compare: oculi "
                  f"benchmark {model})")


def _attempts(attempts: list[dict]) -> None:
    """The table of quantization attempts."""
    table = Table("nodes kept in float32", "metric", "drop")
    for attempt in attempts:
        table.add_row(str(attempt["kept_float"]), f"{attempt['metric']:.4f}", f"{attempt['drop']:+.4f}")
    console.print(table)


def benchmark(
    model: Path = typer.Argument(..., help="Model bundle folder, job output folder or model.tar.gz."),
    data: Path | None = typer.Option(None, "--data", help="Labelled data the task's metric is measured on "
                                     "(default: the validation channel the bundle records; none → no metric)."),
    runtimes: str = typer.Option("torch,onnx,openvino", "--runtimes", help="Comma-separated: torch, onnx, openvino "
                                 "(when the optional openvino package is installed; skipped otherwise)."),
    precisions: str = typer.Option("float32,bfloat16,int8", "--precisions", help="Comma-separated: float32, "
                                   "bfloat16 (torch, CPUs with native bf16), int8 (ONNX export; onnx and openvino) "
                                   "/ fp16 (ONNX export, GPUs)."),
    runs: int = typer.Option(50, "--runs", min=3, help="Timed batch-1 calls per row."),
    output: Path | None = typer.Option(None, "--output", help="Write benchmark.json and benchmark.md here."),
    no_record: bool = typer.Option(False, "--no-record", help="Do not file the table in model.json (then "
                                   "--runtime auto does not use it)."),
) -> None:
    """Benchmark every runtime × precision the bundle can run on this machine: size, the task's metric and its
    change from float32, latency p50/p95 at batch 1, throughput, speed-up. The table is filed in model.json by
    machine kind, and --runtime auto (serve, predict, transform) then picks its fastest row within the accuracy
    bound.

    Example: oculi benchmark models/ants --output bench-ants

    Example: oculi benchmark models/bees --data data/bees-val --runtimes onnx --precisions float32,int8
    """
    from oculi.export.benchmark import benchmark as run

    table = run(model, data=data, runtimes=tuple(_items(runtimes)), precisions=tuple(_items(precisions)),
                runs=runs, output=output, record=not no_record, progress=err_console.print)
    console.print(table.markdown())
    if output is not None:
        console.print(f"saved: {output / 'benchmark.json'}, {output / 'benchmark.md'}")
    if not no_record:
        console.print(f"filed in {model}'s model.json for {table.machine}: --runtime auto uses it")


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
