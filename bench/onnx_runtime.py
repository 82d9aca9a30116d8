"""Inference runtimes on a ResNet-18 classification bundle (random weights, 10 classes, 224×224 inputs): torch
float32, torch with the CPU precision policy (``precision="auto"``: bf16 autocast + channels_last where the CPU has
native bf16) and onnxruntime (the bundle's ``model.onnx``, written by ``oculi export``).

Each runtime runs ``Predictor.predict`` on ``uint8 [3, 224, 224]`` tensors — what the server calls, everything but
image decoding: crop, normalise, network, softmax, result objects. Prints per-image latency (median and 99th
percentile over ``--runs`` calls at batch 1), throughput at batch 16 (from the median of ``--batches`` calls), the
process CPU time per image (all threads; less sensitive than wall time to other programs on a shared machine) and
whether each runtime's top-1 agrees with torch float32 on the 16 images. The runtimes take turns call by call, so
a load change on the machine affects them alike.

Usage: .venv/bin/python bench/onnx_runtime.py [--runs 200] [--batches 20] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from oculi.algorithms import get_algorithm
from oculi.artifacts import save_bundle
from oculi.data.synthetic import sample_images
from oculi.export import export_onnx
from oculi.precision import cpu_supports_bf16
from oculi.tasks import load_predictor


def resnet18_bundle(folder: Path) -> Path:
    """A ResNet-18 image-classification bundle with seeded random weights, 3×224×224 inputs, 10 classes."""
    torch.manual_seed(0)
    algorithm = get_algorithm("image-classification")
    hp = algorithm.hyperparameters.model_validate({"num_layers": 18, "image_shape": "3,224,224", "resize": 256,
                                                   "learning_rate": 0.1, "num_classes": 10})
    classes = [f"class_{i}" for i in range(10)]
    model = algorithm.build_model(hp, classes, pretrained=False).eval()
    meta = {"algorithm": algorithm.name, "task": algorithm.task, "hyperparameters": hp.model_dump(mode="json"),
            "classes": classes, "input": algorithm.input_spec(hp)}
    return save_bundle(folder, meta, model)


def timed(calls: dict[str, object], runs: int, warmup: int) -> dict[str, list[tuple[float, float]]]:
    """``(wall seconds, process CPU seconds)`` of each of ``runs`` calls of every function in ``calls``, taking
    turns, after ``warmup`` untimed calls of each."""
    for function in calls.values():
        for _ in range(warmup):
            function()  # type: ignore[operator]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, function in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            function()  # type: ignore[operator]
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def main() -> int:
    """Build and export the bundle, then time each runtime."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed batch-1 calls per runtime")
    parser.add_argument("--batches", type=int, default=20, help="timed batch-16 calls per runtime")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch and onnxruntime threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    bundle = resnet18_bundle(Path(tempfile.mkdtemp(prefix="oculi-onnx-bench-")) / "resnet18")
    export = export_onnx(bundle)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU bf16: {cpu_supports_bf16()}; "
          f"ResNet-18, 224×224, export {export.seconds:.1f} s, parity max |Δlogit| {export.parity.max_abs_diff():.1e}")
    one = sample_images(1, 224, 224, seed=1)
    sixteen = sample_images(16, 224, 224, seed=2)
    runtimes = {"torch float32": {"precision": "float32"}, "torch auto": {"precision": "auto"},
                "onnxruntime": {"runtime": "onnx"}}
    predictors = {name: load_predictor(bundle, **options) for name, options in runtimes.items()}
    single = timed({name: lambda p=p: p.predict(one) for name, p in predictors.items()}, args.runs, args.warmup)
    batch = timed({name: lambda p=p: p.predict(sixteen, batch_size=16) for name, p in predictors.items()},
                  args.batches, args.warmup)
    reference = [r.predicted_index for r in predictors["torch float32"].predict(sixteen)]
    print("\n| runtime | precision | b1 p50 ms | b1 p99 ms | b1 CPU ms/img | b16 img/s | b16 CPU ms/img "
          "| top-1 = fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, predictor in predictors.items():
        wall = [w for w, _ in single[name]]
        p99 = statistics.quantiles(wall, n=100)[-1] if len(wall) >= 2 else wall[0]
        per_image = statistics.median(w for w, _ in batch[name]) / 16
        top1 = [r.predicted_index for r in predictor.predict(sixteen)]
        print(f"| {name} | {predictor.runtime.precision} | {statistics.median(wall) * 1000:.1f} | {p99 * 1000:.1f} | "
              f"{statistics.median(c for _, c in single[name]) * 1000:.1f} | {1 / per_image:.1f} | "
              f"{statistics.median(c for _, c in batch[name]) / 16 * 1000:.1f} | "
              f"{sum(a == b for a, b in zip(top1, reference, strict=True))}/16 |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
