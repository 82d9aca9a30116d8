"""Training throughput of oculi's loop vs plain PyTorch fp32 eager, and of the data pipeline alone.

ResNet-18, 224×224, batch 32, on this machine's CPU (or GPU when present). Prints images/s for:
  1. plain PyTorch: fp32, eager, contiguous memory, SGD — the baseline a user's own script gets;
  2. oculi's loop: the same model through oculi's engine (Lightning Trainer, oculi's precision policy:
     bf16 autocast + channels_last on a bf16 CPU), fed from memory;
  3. the data pipeline alone: decode + augment with the workers oculi uses, over real photos
     (../shared/data/hymenoptera when present, else generated 500×375 JPEGs).

Usage: .venv/bin/python bench/train_throughput.py [--steps 12] [--warmup 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

from oculi.algorithms import get_algorithm
from oculi.algorithms.backbones import IMAGENET_MEAN, IMAGENET_STD, build_network
from oculi.algorithms.classification import ClassificationModule
from oculi.config import resolve
from oculi.data.dataset import ClassificationDataset
from oculi.data.transforms import classification_train, normalize
from oculi.precision import auto_precision, lightning_precision, memory_format
from oculi.types import Sample

BATCH, SIZE, CLASSES = 32, 224, 10
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "hymenoptera_data"


def plain_fp32(steps: int, warmup: int) -> float:
    """Images/s of a plain fp32 eager training loop (normalisation included, as oculi's includes it)."""
    torch.manual_seed(0)
    model = build_network("resnet", 18, CLASSES).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randint(0, 256, (BATCH, 3, SIZE, SIZE), dtype=torch.uint8)
    targets = torch.randint(0, CLASSES, (BATCH,))
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(normalize(images, IMAGENET_MEAN, IMAGENET_STD)), targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * BATCH / (time.perf_counter() - start)


class _Timer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.images = warmup, 0.0, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx + 1 == self.warmup:
            self.start = time.perf_counter()
        elif batch_idx + 1 > self.warmup:
            self.images += len(batch[0])
        self.end = time.perf_counter()


def oculi_loop(steps: int, warmup: int) -> tuple[float, str]:
    """Images/s of oculi's engine on in-memory uint8 batches; returns (rate, precision used)."""
    torch.manual_seed(0)
    hp = resolve(get_algorithm("image-classification").hyperparameters,
                 {"num_layers": "18", "learning_rate": "0.01", "resize": "256", "mini_batch_size": str(BATCH)})
    precision = auto_precision()
    hp = hp.model_copy(update={"precision_dtype": precision, "lr_scheduler": "constant", "num_classes": CLASSES})
    model = build_network("resnet", 18, CLASSES)
    module = ClassificationModule(memory_format(model, precision), hp, CLASSES, IMAGENET_MEAN, IMAGENET_STD, None, [])
    n = (warmup + steps) * BATCH
    data = TensorDataset(torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8),
                         torch.randint(0, CLASSES, (n,)))
    timer = _Timer(warmup)
    trainer = L.Trainer(max_epochs=1, precision=lightning_precision(precision), logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer], accelerator="auto", devices=1)
    trainer.fit(module, DataLoader(data, batch_size=BATCH))
    return timer.images / (timer.end - timer.start), precision


def _photos() -> list[Path]:
    if SHARED.is_dir():
        return sorted(p for p in (SHARED / "train").glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg"))
    folder = Path(tempfile.mkdtemp(prefix="oculi-bench-"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(128):
        path = folder / f"{i}.jpg"
        Image.fromarray(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def data_pipeline(workers: int, epochs: int = 2) -> tuple[float, int]:
    """Images/s of decode + ``crop`` augmentation through a DataLoader with ``workers`` processes."""
    photos = _photos()
    dataset = ClassificationDataset([Sample(p, 0) for p in photos], 1,
                                    classification_train("crop", 256, (SIZE, SIZE)), min_side=256)
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0)
    next(iter(loader))  # start the workers
    start = time.perf_counter()
    count = 0
    for _ in range(epochs):
        for images, _targets in loader:
            count += len(images)
    return count / (time.perf_counter() - start), len(photos)


def main() -> None:
    """Run the three measurements and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    cpu = os.cpu_count()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU, {cpu} cores"
    print(f"ResNet-18, {SIZE}×{SIZE}, batch {BATCH}, {args.steps} timed steps after {args.warmup} warm-up; {device}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    base = plain_fp32(args.steps, args.warmup)
    print(f"plain PyTorch fp32 eager      {base:7.1f} img/s", flush=True)
    ours, precision = oculi_loop(args.steps, args.warmup)
    print(f"oculi loop ({precision:9s})      {ours:7.1f} img/s   {ours / base:.2f}× plain", flush=True)
    workers = min(2, cpu or 1)
    rate, n = data_pipeline(workers)
    print(f"data pipeline ({workers} workers, {n} photos, decode + crop augment) {rate:7.1f} img/s "
          f"({'not' if rate > ours else 'IS'} the bottleneck)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
