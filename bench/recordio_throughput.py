"""Training data throughput from a RecordIO ``.rec`` against the same images as JPEG files: decode + ``crop``
augmentation (224×224) through the DataLoader, as training runs it, in images/s.

The images: ../shared/data/hymenoptera's training JPEGs (else generated 500×375 JPEGs), packed into a ``.rec``
with ``oculi data convert --to recordio`` (the bytes are not re-encoded). Both runs decode the same JPEG bytes;
the ``.rec`` run reads each from ``train.rec@offset``.

Usage: .venv/bin/python bench/recordio_throughput.py [--workers 0] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader

from oculi.data.channels import read_channel
from oculi.data.convert import convert
from oculi.data.dataset import ClassificationDataset
from oculi.data.transforms import classification_train

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "hymenoptera_data" / "train"


def _folders(tmp: Path) -> Path:
    if SHARED.is_dir():
        return SHARED
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp / "img" / name).mkdir(parents=True)
        for i in range(120):
            Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(tmp / "img" / name / f"{i}.jpg")
    return tmp / "img"


def throughput(samples: list, classes: int, workers: int, epochs: int) -> float:
    """Images/s of decode + crop augmentation over ``samples`` through a DataLoader."""
    dataset = ClassificationDataset(samples, classes, classification_train("crop", 256, (224, 224)), min_side=256)
    loader = DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    next(iter(loader))  # warm up (and start the workers)
    start, count = time.perf_counter(), 0
    for _ in range(epochs):
        for images, _ in loader:
            count += len(images)
    return count / (time.perf_counter() - start)


def main() -> None:
    """Print images/s for JPEG files and for the same images in a .rec."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = _folders(Path(tmp))
        files = read_channel(folders)
        convert(folders, "recordio", Path(tmp) / "rec")
        records = read_channel(Path(tmp) / "rec" / "train.rec")
        size = (Path(tmp) / "rec" / "train.rec").stat().st_size / 1e6
        print(f"{len(files)} images ({folders}); train.rec {size:.1f} MB; workers {args.workers}")
        for name, sample_set in (("jpeg files", files), ("recordio", records), ("jpeg files", files),
                                 ("recordio", records)):
            rate = throughput(sample_set.samples, sample_set.num_classes, args.workers, args.epochs)
            print(f"{name:>10}: {rate:7.1f} images/s")


if __name__ == "__main__":
    main()
