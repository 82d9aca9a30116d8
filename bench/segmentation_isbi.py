"""Quality on real data and predict latency: ``semantic-segmentation`` on ../shared/data/isbi2012-em (30 electron
microscope slices 512×512, membrane masks 0/255 read with the label map {"scale": "255"}), a seeded split of 24
training and 6 validation slices, EfficientNet-Lite0 (ImageNet weights), a CPU time budget per algorithm.

For each algorithm: one 1-epoch run measures the epoch time, then a fresh run trains as many epochs as fit in the
budget; prints validation mIoU and pixel accuracy (``oculi evaluate`` on the 6 slices, at full resolution) and the
end-to-end ``Predictor.predict`` latency for one 512×512 slice (median of 5, decode included).

Usage: .venv/bin/python bench/segmentation_isbi.py [--budget 600] [--algorithms fcn,psp,deeplab] [--seed 0]
       (--budget 20 for a smoke run)
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from oculi import load_model
from oculi.engine.training import train
from oculi.tasks import evaluate

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isbi2012-em"
SETTINGS = {"backbone": "efficientnet-lite0", "base_size": "512", "crop_size": "240", "mini_batch_size": "4",
            "validation_mini_batch_size": "1", "num_classes": "2", "optimizer": "adam", "learning_rate": "0.001"}


def layout(root: Path, seed: int) -> dict[str, Path]:
    """Copy a seeded 24 / 6 split of the slices into SageMaker's layout under ``root``; returns the channels."""
    names = sorted(p.name for p in (DATA / "image").glob("*.png"))
    random.Random(seed).shuffle(names)
    for split, chosen in (("train", names[:24]), ("validation", names[24:30])):
        (root / split).mkdir(parents=True)
        (root / f"{split}_annotation").mkdir()
        for name in chosen:
            shutil.copy(DATA / "image" / name, root / split / name)
            shutil.copy(DATA / "label" / name, root / f"{split}_annotation" / name)
    (root / "label_map.json").write_text('{"scale": "255"}')
    return {**{k: root / k for k in ("train", "train_annotation", "validation", "validation_annotation")},
            "label_map": root / "label_map.json"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=600.0, help="CPU seconds of training per algorithm")
    parser.add_argument("--algorithms", default="fcn,psp,deeplab")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (DATA / "image").is_dir():
        raise SystemExit(f"{DATA} is absent; this benchmark needs the isbi2012-em slices.")
    with tempfile.TemporaryDirectory() as tmp:
        channels = layout(Path(tmp) / "em", args.seed)
        print(f"isbi2012-em, 24 train / 6 validation (seed {args.seed}), efficientnet-lite0, "
              f"budget {args.budget:.0f} s")
        print(f"{'algorithm':<10}{'epochs':>7}{'train s':>9}{'mIoU':>8}{'pixel acc':>11}{'predict ms':>12}")
        for algorithm in args.algorithms.split(","):
            quiet = {"progress": False, "echo": lambda *_: None, "overwrite": True}
            probe = train("semantic-segmentation", channels, {**SETTINGS, "algorithm": algorithm, "epochs": "1"},
                          output=Path(tmp) / f"probe-{algorithm}", **quiet)
            epochs = max(1, int(args.budget // probe.seconds))
            start = time.perf_counter()
            result = train("semantic-segmentation", channels, {**SETTINGS, "algorithm": algorithm,
                                                               "epochs": str(epochs)},
                           output=Path(tmp) / algorithm, **quiet)
            seconds = time.perf_counter() - start
            scores = evaluate(result.model_dir, Path(tmp) / "em", progress=False).metrics
            predictor = load_model(result.model_dir)
            image = channels["validation"] / sorted(p.name for p in channels["validation"].iterdir())[0]
            latencies = []
            for _ in range(5):
                tick = time.perf_counter()
                predictor.predict(image)
                latencies.append((time.perf_counter() - tick) * 1000)
            print(f"{algorithm:<10}{epochs:>7}{seconds:>9.0f}{scores['mIOU']:>8.3f}{scores['pixel_accuracy']:>11.3f}"
                  f"{statistics.median(latencies):>12.0f}", flush=True)


if __name__ == "__main__":
    main()
