"""Edge export figures: train (or reuse) a model — the hymenoptera classifiers (EfficientNet-Lite0 fine-tuned for 2
epochs, ResNet-18 from scratch for 3), the bees detector (default settings, ``--detector-budget`` seconds on a seeded
320 / 80 split of ../shared/data/bees) and the isbi membrane segmenter (DeepLab-v3 on EfficientNet-Lite0,
``--segmenter-budget`` seconds, 24 / 6 slices) —, export it to int8 ONNX with the accuracy gate, and print `oculi
benchmark`'s table (size, metric change, batch-1 p50/p95, throughput, speed-up) for torch float32 / bfloat16, ONNX
float32 and ONNX int8, plus what ``runtime=auto`` picks afterwards.

``--avx2`` re-runs the benchmark in a child process with ``ATEN_CPU_CAPABILITY=avx2`` and
``ONEDNN_MAX_CPU_ISA=AVX2`` — torch's kernels as on a CPU without AVX-512 and bf16 (onnxruntime has no such switch:
its rows keep this CPU's instructions, so they are an upper bound for an AVX2-only CPU; OpenVINO is left out of
those rows, as its CPU plugin follows the switch only in part).

Usage: .venv/bin/python bench/edge_export.py [--models lite0,resnet18,bees,isbi] [--work DIR] [--avx2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import torch
from segmentation_isbi import SETTINGS, layout
from transfer_hymenoptera import DATA

from oculi.engine.training import train
from oculi.export import QuantizationRefused, benchmark, export_quantized
from oculi.export.benchmark import cpu_name
from oculi.inference.runtimes import choose_runtime, machine_kind
from oculi.tasks import load_predictor

MODELS = {"lite0": {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": "2"},
          "resnet18": {"num_layers": "18", "image_shape": "3,224,224", "use_pretrained_model": "0", "epochs": "3"},
          "bees": {},
          "isbi": {**SETTINGS, "algorithm": "deeplab"}}
ALGORITHMS = {"bees": "object-detection", "isbi": "semantic-segmentation"}
BEES = DATA.parents[1] / "bees"


def channels(name: str, work: Path) -> dict[str, Path]:
    """The training channels of model ``name`` (made under ``work`` the first time): the bees' manifest with local
    image paths, split 320 / 80 (seed 0); the isbi slices in SageMaker's layout (24 / 6, seed 0)."""
    if name == "isbi":
        root = work / "isbi-data"
        return layout(root, 0) if not root.exists() else {
            **{k: root / k for k in ("train", "train_annotation", "validation", "validation_annotation")},
            "label_map": root / "label_map.json"}
    if name == "bees":
        lines = [json.loads(line) for line in (BEES / "train.manifest").read_text().splitlines() if line.strip()]
        for line in lines:
            line["source-ref"] = str(BEES / "images" / line["source-ref"].rsplit("/", 1)[-1])
        random.Random(0).shuffle(lines)
        paths = {"train": work / "bees-train.manifest", "validation": work / "bees-validation.manifest"}
        paths["train"].write_text("".join(json.dumps(line) + "\n" for line in lines[80:]))
        paths["validation"].write_text("".join(json.dumps(line) + "\n" for line in lines[:80]))
        return paths
    return {"train": DATA / "train", "validation": DATA / "val"}


def bundle(name: str, work: Path, budgets: dict[str, float]) -> tuple[Path, dict[str, Path]]:
    """The trained bundle ``work/name`` (trained now if missing) and its channels."""
    out = work / name
    data = channels(name, work)
    if not (out / "model.json").is_file():
        started = time.perf_counter()
        params = dict(MODELS[name])
        if name in budgets:
            params["max_runtime"] = str(budgets[name])
        result = train(ALGORITHMS.get(name, "image-classification"), data, params, output=out, progress=False,
                       echo=lambda *_: None)
        metric = next((f"{k} {v:.3f}" for k, v in result.metrics.items() if k.startswith("validation:")
                       and k.split(":")[1] in ("accuracy", "mAP", "mIOU")), "")
        print(f"{name}: trained {len(result.history)} epoch(s) in {time.perf_counter() - started:.0f} s, {metric}",
              flush=True)
    return out, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="lite0,resnet18,bees,isbi")
    parser.add_argument("--detector-budget", type=float, default=900.0, help="training seconds of the bees detector")
    parser.add_argument("--segmenter-budget", type=float, default=600.0, help="training seconds of the segmenter")
    parser.add_argument("--work", type=Path, default=Path("/tmp/oculi-bench-edge"))
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--avx2", action="store_true", help="also benchmark with torch limited to AVX2")
    parser.add_argument("--bench-only", type=Path, default=None, help=argparse.SUPPRESS)  # the --avx2 child
    args = parser.parse_args()
    if args.bench_only is not None:
        # OpenVINO is left out here: its CPU plugin does not follow ONEDNN_MAX_CPU_ISA throughout (limited so, it
        # crashed compiling the bees detector), so its rows would not stand for an AVX2-only CPU
        table = benchmark(args.bench_only, runs=args.runs, runtimes=("torch", "onnx"), precisions=("float32", "int8"))
        print(table.markdown(), flush=True)
        return
    print(f"CPU: {cpu_name()} ({machine_kind()}), torch threads {torch.get_num_threads()}", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        path, data = bundle(name, args.work, {"bees": args.detector_budget, "isbi": args.segmenter_budget})
        evaluation = data["validation"].parent if "validation_annotation" in data else data["validation"]
        meta = json.loads((path / "model.json").read_text())
        if "onnx_int8" not in meta:
            started = time.perf_counter()
            try:
                result = export_quantized(path, "int8", data=evaluation, calibration=data["train"])
                print(f"{name}: int8 export {time.perf_counter() - started:.0f} s, attempts {result.attempts}",
                      flush=True)
            except QuantizationRefused as refused:
                print(f"{name}: int8 export refused after {time.perf_counter() - started:.0f} s: {refused}",
                      flush=True)
        table = benchmark(path, data=evaluation, runs=args.runs)
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
