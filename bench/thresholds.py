"""Thresholds and calibration on real data: does a threshold chosen on one half of held-out data keep its promise
on the other half, and does temperature scaling lower the calibration error there?

Trains ResNet-20 (32×32) on 600 MNIST digits from ../shared/data/mnist5k for a few epochs, chooses an "unsure"
threshold for ``--rule`` and fits the temperature on 500 held-out digits (``oculi evaluate --choose-thresholds``'
code path), then measures on 500 others: expected calibration error before/after, and the precision and
coverage of the answers above the threshold. Prints a few lines; takes under a minute on 2 quiet cores, several
minutes on busy ones.

Usage: python bench/thresholds.py [--epochs 6] [--rule precision=0.95]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist5k" / "mnist_5k.csv.gz"


def write_digits(rows: np.ndarray, folder: Path) -> Path:
    """``rows`` (784 pixels + label) as ``folder/<digit>/<n>.png``."""
    for n, row in enumerate(rows):
        target = folder / str(int(row[-1]))
        target.mkdir(parents=True, exist_ok=True)
        Image.fromarray(row[:-1].reshape(28, 28).astype(np.uint8)).convert("RGB").save(target / f"{n:05d}.png")
    return folder


def main() -> None:
    """Train, choose on one half, measure on the other; print the figures."""
    from oculi.engine.training import train
    from oculi.evaluation.calibration import expected_calibration_error
    from oculi.inference.calibration import scale_distribution
    from oculi.tasks import evaluate, load_predictor
    from oculi.tasks.thresholds import evaluate_with_thresholds

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--rule", default="precision=0.95")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with gzip.open(DATA, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    rows = rows[np.random.default_rng(0).permutation(len(rows))]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_dir = write_digits(rows[:600], root / "train")
        choose_dir = write_digits(rows[1000:1500], root / "choose")
        test_dir = write_digits(rows[1500:2000], root / "test")
        started = time.perf_counter()
        hp = {"epochs": str(args.epochs), "image_shape": "3,32,32", "num_layers": "20", "mini_batch_size": "64",
              "num_workers": "0", "learning_rate": "0.05"}
        train("image-classification", {"train": train_dir, "validation": choose_dir}, hp, output=root / "model",
              progress=False, echo=lambda *_: None)
        trained = time.perf_counter() - started
        predictor = load_predictor(root / "model", precision="float32")
        started = time.perf_counter()
        _, chosen = evaluate_with_thresholds(predictor, choose_dir, args.rule, progress=False)
        choosing = time.perf_counter() - started
        test = evaluate(predictor, test_dir, progress=False)
        cal = chosen.calibration
        probs = test.probabilities.double()
        for name, p in (("before", probs), ("after", scale_distribution(probs, cal.temperature))):
            top, predicted = p.max(dim=1)
            right = (predicted == test.targets).double()
            sure = top >= cal.unsure
            print(f"held-out {name:6s}: ECE {expected_calibration_error(top, right):.4f}  accuracy "
                  f"{float(right.mean()):.4f}" + (f"  sure answers {int(sure.sum())}/{len(sure)} "
                                                  f"({float(sure.double().mean()):.1%}), their precision "
                                                  f"{float(right[sure].mean()):.4f}" if name == "after" else ""))
        choice = chosen.choices["unsure"]
        print(f"chosen on 500 digits ({args.rule}): temperature {cal.temperature:.3f}, unsure below "
              f"{cal.unsure:.4f} (precision there {choice.precision:.4f}, {choice.kept} kept); ECE "
              f"{chosen.ece_before:.4f} → {chosen.ece_after:.4f}")
        print(f"training {trained:.0f} s ({args.epochs} epochs, 600 digits); evaluate + choose {choosing:.1f} s")


if __name__ == "__main__":
    main()
