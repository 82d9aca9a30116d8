"""Object detection quality on the seeds' own task: ../shared/data/bees (AWS's Ground Truth bee labeling job).

Makes a seeded 320/80 train/validation split of the 400 manifest lines (``--seed``), trains ``object-detection``
(efficientnet-lite0 with its shipped ImageNet weights unless ``-p`` says otherwise) and prints validation mAP at
IoU 0.5 for every epoch with the elapsed wall time — the curve over time — then the kept (best) epoch.
``--write-split DIR`` only writes the two manifests (e.g. for another tool on the same split).

Usage: .venv/bin/python bench/detection_bees.py [--epochs 20] [-p image_shape=256 -p mini_batch_size=16 …]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

from oculi.engine.training import train

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bees"
PREFIX = "s3://sagemaker-remars/datasets/na-bees/500"


def write_split(data: Path, folder: Path, seed: int, validation: int = 80) -> tuple[Path, Path]:
    """Shuffle the manifest's lines with ``seed`` and write ``train.manifest`` (the rest) and
    ``validation.manifest`` (``validation`` lines) into ``folder``."""
    lines = [line for line in (data / "train.manifest").read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    folder.mkdir(parents=True, exist_ok=True)
    train_path, val_path = folder / "train.manifest", folder / "validation.manifest"
    train_path.write_text("\n".join(lines[validation:]) + "\n")
    val_path.write_text("\n".join(lines[:validation]) + "\n")
    return train_path, val_path


def main() -> int:
    """Split, train, print the mAP curve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--write-split", type=Path, help="only write the split manifests into this folder")
    args = parser.parse_args()
    if not (args.data / "train.manifest").is_file():
        print(f"bees data not found at {args.data}; pass --data PATH/bees")
        return 1
    if args.write_split:
        for path in write_split(args.data, args.write_split, args.seed):
            print(path)
        return 0
    work = Path(tempfile.mkdtemp(prefix="oculi-bees-"))
    train_path, val_path = write_split(args.data, work, args.seed)
    params = {"base_network": "efficientnet-lite0", "epochs": str(args.epochs)}
    params.update(kv.split("=", 1) for kv in args.params)
    print(f"CPU cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"split seed {args.seed}: 320 train / 80 validation; hyperparameters {params}\n", flush=True)
    start = time.perf_counter()
    result = train("object-detection", {"train": train_path, "validation": val_path}, params,
                   output=work / "model", image_roots={PREFIX: args.data / "images"}, progress=False,
                   echo=lambda line: print("   ", line, flush=True))
    wall = time.perf_counter() - start
    history = json.loads((work / "model" / "model.json").read_text()).get("history", [])
    print("\nepoch  elapsed_s  validation:mAP@0.5")
    elapsed = 0.0
    for row in history:
        elapsed += float(row.get("seconds", 0))
        print(f"{row['epoch']:>5}  {elapsed:>9.0f}  {row.get('validation:mAP', float('nan')):.4f}")
    print(f"\nbest epoch {result.best_epoch}: validation:mAP {result.metrics['validation:mAP']:.4f}; "
          f"wall time {wall:.0f} s (data check and final save included); bundle {work / 'model'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
