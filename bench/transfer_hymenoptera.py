"""Transfer learning on hymenoptera (ants vs bees: 244 train, 153 val photos) with oculi's defaults.

Sets only ``architecture``, ``use_pretrained_model`` and ``epochs`` (everything else is a default), prints the
validation accuracy of the kept (best) epoch and the wall time, training and data check included; then the same
number of epochs of a from-scratch ResNet-18 for comparison.

Usage: .venv/bin/python bench/transfer_hymenoptera.py [--epochs 5] [--scratch-epochs 5] [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from oculi.engine.training import train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "hymenoptera_data"


def run(name: str, params: dict[str, str], data: Path) -> None:
    """Train one configuration and print its best validation accuracy and wall time."""
    out = Path(tempfile.mkdtemp(prefix="oculi-hymenoptera-"))
    start = time.perf_counter()
    result = train("image-classification", {"train": data / "train", "validation": data / "val"}, params,
                   output=out / "model", progress=False, echo=lambda line: print("   ", line, flush=True))
    wall = time.perf_counter() - start
    print(f"{name}: validation accuracy {result.metrics['validation:accuracy']:.4f} (best epoch "
          f"{result.best_epoch}/{params['epochs']}), wall time {wall:.0f} s\n", flush=True)


def main() -> int:
    """Run the transfer-learning and from-scratch configurations."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scratch-epochs", type=int, default=5)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"hymenoptera data not found at {args.data}; pass --data PATH/hymenoptera_data")
        return 1
    print(f"CPU cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}\n")
    run("efficientnet-lite0, ImageNet weights",
        {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": str(args.epochs)}, args.data)
    if args.scratch_epochs:
        run("resnet-18 from scratch", {"num_layers": "18", "epochs": str(args.scratch_epochs)}, args.data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
