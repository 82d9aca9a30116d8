"""OpenVINO against ONNX Runtime on this CPU, for the ONNX files a bundle already has (``model.onnx`` and, when
exported, ``model.int8.onnx``): batch-1 latency p50/p95, throughput at batch 32, and top-1 agreement with ONNX
Runtime float32 on a folder of images — to decide whether OpenVINO earns a place as a runtime (issue: keep it only
if it wins somewhere).

OpenVINO is not a dependency of oculi; install it beside the project to run this, e.g.
``pip install --target /tmp/ov openvino && rm -r /tmp/ov/numpy*`` and ``PYTHONPATH=/tmp/ov``.

Usage: PYTHONPATH=/tmp/ov .venv/bin/python bench/openvino_vs_ort.py BUNDLE [BUNDLE…] [--data DIR] [--runs 60]
(the bundles of ``bench/edge_export.py``: /tmp/oculi-bench-edge/lite0 and /tmp/oculi-bench-edge/resnet18)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "hymenoptera_data" / "val"


def inputs(bundle: Path, data: Path, limit: int) -> np.ndarray:
    """``float32 [N, 3, H, W]``: up to ``limit`` images of ``data`` preprocessed as the bundle's predictor does."""
    from oculi.data.transforms import normalize
    from oculi.tasks import load_predictor

    predictor = load_predictor(bundle, runtime="torch", precision="float32")
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    batch = normalize(predictor.preprocess(files), tuple(predictor.spec["mean"]), tuple(predictor.spec["std"]))
    return batch.numpy().astype(np.float32)


def timed(run, x: np.ndarray, runs: int) -> tuple[float, float, float]:
    """(p50 ms, p95 ms at batch 1, images/s at batch 32) of ``run(batch) -> logits``."""
    for _ in range(5):
        run(x[:1])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        run(x[i % len(x):i % len(x) + 1])
        times.append((time.perf_counter() - start) * 1000)
    big = np.concatenate([x] * (1 + 32 // len(x)))[:32]
    run(big)
    start = time.perf_counter()
    for _ in range(3):
        run(big)
    throughput = 3 * 32 / (time.perf_counter() - start)
    return statistics.median(times), float(np.percentile(times, 95)), throughput


def main() -> int:
    """Print one table per bundle."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="+", type=Path)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--images", type=int, default=153)
    args = parser.parse_args()
    try:
        import openvino as ov
    except ImportError:
        print("openvino is not importable: pip install --target /tmp/ov openvino, then PYTHONPATH=/tmp/ov")
        return 1
    import onnxruntime as ort

    from oculi.export.benchmark import cpu_name

    core = ov.Core()
    print(f"CPU: {cpu_name()}; onnxruntime {ort.__version__}, openvino {ov.__version__}, threads: each runtime's "
          "default (all cores)", flush=True)
    for bundle in args.bundles:
        x = inputs(bundle, args.data, args.images)
        rows, reference = [], None
        for precision, name in (("float32", "model.onnx"), ("int8", "model.int8.onnx")):
            path = bundle / name
            if not path.is_file():
                continue
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feed = session.get_inputs()[0].name

            def run_ort(batch, session=session, feed=feed):
                return session.run(None, {feed: batch})[0]

            # OpenVINO runs a float32 model in bf16 on CPUs with native bf16 unless told otherwise: both, named
            compiled = {hint: core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": hint})
                        for hint in ("f32", "bf16")}
            runs = [("onnxruntime", run_ort), ("openvino (f32 arithmetic)", lambda b, c=compiled["f32"]: c(b)[0])]
            if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
                runs.append(("openvino (bf16 arithmetic, its default here)", lambda b, c=compiled["bf16"]: c(b)[0]))
            for runtime, run in runs:
                predicted = np.concatenate([run(x[i:i + 16]) for i in range(0, len(x), 16)]).argmax(1)
                if reference is None:
                    reference = predicted
                p50, p95, throughput = timed(run, x, args.runs)
                rows.append((runtime, precision, p50, p95, throughput, float((predicted == reference).mean())))
        print(f"\n## {bundle.name} ({len(x)} images)\n\n| runtime | precision | p50 ms | p95 ms | img/s at 32 | "
              "top-1 agrees with ORT float32 |\n|---|---|---|---|---|---|")
        for runtime, precision, p50, p95, throughput, agree in rows:
            print(f"| {runtime} | {precision} | {p50:.1f} | {p95:.1f} | {throughput:.0f} | {agree:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
