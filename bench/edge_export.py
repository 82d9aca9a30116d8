"""Edge export figures: train (or reuse) a hymenoptera classifier — EfficientNet-Lite0 fine-tuned for 2 epochs,
ResNet-18 from scratch for 3 —, export it to int8 ONNX with the accuracy gate, and print `oculi
benchmark`'s table (size, accuracy change, batch-1 p50/p95, throughput, speed-up) for torch float32 / bfloat16,
ONNX float32 and ONNX int8, plus what ``runtime=auto`` picks afterwards.

``--avx2`` re-runs the benchmark in a child process with ``ATEN_CPU_CAPABILITY=avx2`` and
``ONEDNN_MAX_CPU_ISA=AVX2`` — torch's kernels as on a CPU without AVX-512 and bf16 (onnxruntime has no such switch:
its rows keep this CPU's instructions, so they are an upper bound for an AVX2-only CPU).

Usage: .venv/bin/python bench/edge_export.py [--models lite0,resnet18] [--work DIR] [--avx2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from transfer_hymenoptera import DATA

from oculi.engine.training import train
from oculi.export import benchmark, export_quantized
from oculi.export.benchmark import cpu_name
from oculi.inference.runtimes import choose_runtime, machine_kind
from oculi.tasks import load_predictor

MODELS = {"lite0": {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": "2"},
          "resnet18": {"num_layers": "18", "image_shape": "3,224,224", "use_pretrained_model": "0", "epochs": "3"}}


def bundle(name: str, work: Path) -> Path:
    """The trained bundle ``work/name`` (trained now if missing)."""
    out = work / name
    if not (out / "model.json").is_file():
        started = time.perf_counter()
        result = train("image-classification", {"train": DATA / "train", "validation": DATA / "val"},
                       MODELS[name], output=out, progress=False, echo=lambda *_: None)
        print(f"{name}: trained {len(result.history)} epoch(s) in {time.perf_counter() - started:.0f} s, "
              f"validation accuracy {result.metrics.get('validation:accuracy', float('nan')):.3f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="lite0,resnet18")
    parser.add_argument("--work", type=Path, default=Path("/tmp/oculi-bench-edge"))
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--avx2", action="store_true", help="also benchmark with torch limited to AVX2")
    parser.add_argument("--bench-only", type=Path, default=None, help=argparse.SUPPRESS)  # the --avx2 child
    args = parser.parse_args()
    if args.bench_only is not None:
        table = benchmark(args.bench_only, runs=args.runs, precisions=("float32", "int8"))
        print(table.markdown(), flush=True)
        return
    print(f"CPU: {cpu_name()} ({machine_kind()}), torch threads {torch.get_num_threads()}", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        path = bundle(name, args.work)
        meta = json.loads((path / "model.json").read_text())
        if "onnx_int8" not in meta:
            started = time.perf_counter()
            result = export_quantized(path, "int8", data=DATA / "val", calibration=DATA / "train")
            print(f"{name}: int8 export {time.perf_counter() - started:.0f} s, attempts {result.attempts}", flush=True)
        table = benchmark(path, data=DATA / "val", runs=args.runs)
        print(f"\n## {name}\n\n{table.markdown()}", flush=True)
        predictor = load_predictor(path)
        runtime, precision, why = choose_runtime(predictor.bundle, predictor.device)
        print(f"runtime=auto here: {runtime} {precision} — {why}\n", flush=True)
        if args.avx2:
            env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
            print(f"## {name}, torch limited to AVX2", flush=True)
            subprocess.run([sys.executable, __file__, "--bench-only", str(path), "--runs", str(args.runs)], env=env,
                           check=True)


if __name__ == "__main__":
    main()
