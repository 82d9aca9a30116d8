"""Segmentation defaults that learn: ``semantic-segmentation`` on ../shared/data/isbi2012-em (the seeded 24 / 6
split of ``segmentation_isbi.py``, SageMaker's layout, label map scale 255), DeepLab on EfficientNet-Lite0, crop
240, the same epochs for each run:

- SageMaker's defaults given explicitly (``optimizer=sgd``, ``learning_rate=0.001``: every layer at 0.001);
- oculi's ``auto`` defaults (``optimizer=auto`` → adamw at 0.001 when fine-tuning, every layer at that rate);
- the same with the backbone at a tenth of the rate (``backbone_lr_factor=0.1``), the usual fine-tuning recipe;

and the majority-class baseline (predicting the most frequent class everywhere) on the same 6 slices. Prints
mIoU and pixel accuracy from ``oculi evaluate`` (full resolution) and the training time of each run.

With ``--max-runtime SECONDS`` it instead trains each of ``--algorithms`` (fcn, psp, deeplab) with nothing but
that time budget set — every other hyperparameter at its default — and prints the same columns and the epochs the
budget allowed.

Usage: .venv/bin/python bench/segmentation_defaults.py [--epochs 20] [--seed 0] [--data DIR]
       .venv/bin/python bench/segmentation_defaults.py --max-runtime 300 [--algorithms fcn,psp,deeplab] [-p k=v]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import segmentation_isbi
import torch
from segmentation_isbi import layout

from oculi.algorithms.segmentation import majority_baseline
from oculi.engine.training import train
from oculi.tasks import evaluate

RUNS = {"sagemaker sgd 0.001": {"optimizer": "sgd", "learning_rate": "0.001"},
        "oculi auto": {},
        "auto backbone_lr_factor=0.1": {"backbone_lr_factor": "0.1"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated names of the runs to make")
    parser.add_argument("--data", type=Path, default=segmentation_isbi.DATA, help="the isbi2012-em folder")
    parser.add_argument("--max-runtime", type=int, help="train each of --algorithms with only this budget set")
    parser.add_argument("--algorithms", default="fcn,psp,deeplab")
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="KEY=VALUE",
                        help="with --max-runtime: a hyperparameter set on every run (to try a candidate default)")
    args = parser.parse_args()
    extra = dict(p.split("=", 1) for p in args.params)
    if not (args.data / "image").is_dir():
        raise SystemExit(f"{args.data} is absent; this benchmark needs the isbi2012-em slices (pass --data).")
    segmentation_isbi.DATA = args.data
    with tempfile.TemporaryDirectory() as tmp:
        channels = layout(Path(tmp) / "em", args.seed)
        if args.max_runtime:
            print(f"isbi2012-em, 24 train / 6 validation (seed {args.seed}), only max_runtime={args.max_runtime} "
                  f"set{' and ' + str(extra) if extra else ''}, torch threads {torch.get_num_threads()}")
            runs = {f"{name} ({args.max_runtime} s)": {"algorithm": name, "max_runtime": str(args.max_runtime),
                                                       **extra} for name in args.algorithms.split(",")}
        else:
            print(f"isbi2012-em, 24 train / 6 validation (seed {args.seed}), deeplab on efficientnet-lite0, crop "
                  f"240, {args.epochs} epochs, torch threads {torch.get_num_threads()}")
            runs = {name: {"algorithm": "deeplab", "epochs": str(args.epochs), **RUNS[name]}
                    for name in args.runs.split(",")}
        print(f"{'run':<26}{'train s':>9}{'mIoU':>8}{'pixel acc':>11}{'epochs':>8}")
        baseline = None
        for name, settings in runs.items():
            start = time.perf_counter()
            result = train("semantic-segmentation", channels, settings,
                           output=Path(tmp) / name.replace(" ", "-").replace("(", "").replace(")", ""),
                           progress=False, echo=lambda *_: None)
            seconds = time.perf_counter() - start
            scored = evaluate(result.model_dir, Path(tmp) / "em", progress=False)
            baseline = majority_baseline(torch.tensor(scored.confusion))
            warned = any("no better" in n for n in scored.notes)
            print(f"{name:<26}{seconds:>9.0f}{scored.metrics['mIOU']:>8.3f}{scored.metrics['pixel_accuracy']:>11.3f}"
                  f"{len(result.history):>8}" + ("  (no better than the baseline: warned)" if warned else ""),
                  flush=True)
        miou, accuracy, _ = baseline
        print(f"{'majority class everywhere':<26}{'':>9}{miou:>8.3f}{accuracy:>11.3f}")


if __name__ == "__main__":
    main()
