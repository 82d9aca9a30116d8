"""Training throughput of ``semantic-segmentation`` at crop_size 240: oculi's training loop (the Lightning engine
with SegmentationModule and oculi's CPU precision policy: bf16 autocast + channels_last where the CPU supports
bf16) against the same network (torchvision's FCNHead / DeepLabHead, oculi's pyramid-pooling head) trained by a
plain fp32 eager PyTorch loop, in the same run, on random 240×240 images and masks.

Prints training images/s per algorithm × backbone × decoder (``skip``: oculi's default stride-4 skip decoder;
``none``: SageMaker's plain head). The machine's load changes figures from run to run; compare
columns of one run, not runs.

Usage: .venv/bin/python bench/segmentation_throughput.py [--algorithms fcn,psp,deeplab]
       [--backbones resnet-50,efficientnet-lite0] [--decoders skip,none] [--steps 5] [--warmup 2] [--batch 4]
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings

import lightning as L
import torch
from torch.nn import functional as F  # noqa: N812
from torch.utils.data import DataLoader, TensorDataset

from oculi.algorithms.segmentation import SegmentationModule, SemanticSegmentationHyperparameters
from oculi.algorithms.segmentation_models import build_segmentation, segmentation_input_spec
from oculi.precision import auto_precision, lightning_precision, memory_format

CROP, CLASSES = 240, 3


def data(count: int) -> TensorDataset:
    """``count`` random ``uint8 [3, CROP, CROP]`` images with random ``int64`` masks."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, CROP, CROP), dtype=torch.uint8, generator=generator)
    masks = torch.randint(0, CLASSES, (count, CROP, CROP), generator=generator)
    return TensorDataset(images, masks)


def plain(algorithm: str, backbone: str, skip: bool, steps: int, warmup: int, batch: int) -> float:
    """Images/s of a plain fp32 eager loop (SGD, cross-entropy) on the same network."""
    torch.manual_seed(0)
    model = build_segmentation(algorithm, backbone, CLASSES, skip=skip).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images, masks = data(batch).tensors
    inputs = images.float() / 127.5 - 1
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss = F.cross_entropy(model(inputs), masks, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


class _Clock(L.Callback):
    """Times the training batches after ``warmup``."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def on_train_batch_start(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        self.end = time.perf_counter()


def oculi_loop(algorithm: str, backbone: str, skip: bool, steps: int, warmup: int,
               batch: int) -> tuple[float, str]:
    """Images/s of oculi's engine path (Lightning Trainer + SegmentationModule, oculi's precision policy)."""
    torch.manual_seed(0)
    precision = auto_precision()
    hp = SemanticSegmentationHyperparameters(algorithm=algorithm, backbone=backbone, crop_size=CROP,
                                             mini_batch_size=batch, precision_dtype=precision, lr_scheduler="poly",
                                             decoder="skip" if skip else "none", optimizer="sgd",
                                             learning_rate=1e-3, backbone_lr_factor=1.0, epochs=1)
    model = build_segmentation(algorithm, backbone, CLASSES, skip=skip)
    model = memory_format(model, precision)
    spec = segmentation_input_spec(backbone, 520, CROP, None)
    module = SegmentationModule(model, hp, CLASSES, tuple(spec["mean"]), tuple(spec["std"]))
    clock = _Clock(warmup)
    trainer = L.Trainer(max_steps=warmup + steps, accelerator="auto", devices=1, logger=False,
                        precision=lightning_precision(precision), callbacks=[clock], enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0)
    trainer.fit(module, DataLoader(data(batch * (warmup + steps)), batch_size=batch))
    return steps * batch / (clock.end - clock.start), precision


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algorithms", default="fcn,psp,deeplab")
    parser.add_argument("--backbones", default="resnet-50,efficientnet-lite0")
    parser.add_argument("--decoders", default="skip,none")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    print(f"segmentation training at crop_size {CROP}, batch {args.batch}, {args.steps} timed steps after "
          f"{args.warmup} warm-up, {torch.get_num_threads()} threads")
    print(f"{'algorithm':<10}{'backbone':<20}{'decoder':<9}{'plain fp32 img/s':>18}{'oculi img/s':>14}"
          f"{'oculi precision':>17}")
    for backbone in args.backbones.split(","):
        for algorithm in args.algorithms.split(","):
            for decoder in args.decoders.split(","):
                skip = decoder == "skip"
                base = plain(algorithm, backbone, skip, args.steps, args.warmup, args.batch)
                ours, precision = oculi_loop(algorithm, backbone, skip, args.steps, args.warmup, args.batch)
                print(f"{algorithm:<10}{backbone:<20}{decoder:<9}{base:>18.2f}{ours:>14.2f}{precision:>17}",
                      flush=True)


if __name__ == "__main__":
    main()
