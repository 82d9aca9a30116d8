"""Training throughput of the ``object-detection`` networks: plain torchvision fp32 eager vs oculi's precision
policy (``precision_dtype=auto``: bf16 autocast + channels_last on a CPU with bf16, float32 + channels_last on one
without, e.g. AVX2-only; fp16 autocast + channels_last on a GPU).

``--detector fcos`` (the default network on pyramid base networks) or ``ssd``; ``--size`` (default 256, the
default image_shape), batch 8, 3 classes, two random boxes per image, SGD; every base network the detector takes.
Prints images/s per network and setting.

Usage: .venv/bin/python bench/detection_throughput.py [--detector fcos|ssd] [--networks resnet-50,…] [--size 256]
"""

from __future__ import annotations

import argparse
import time

import torch

from oculi.algorithms.detection_fcos import BASE_NETWORKS as FCOS_BASES
from oculi.algorithms.detection_models import BASE_NETWORKS as SSD_BASES
from oculi.algorithms.detection_models import to_model_targets
from oculi.algorithms.detection_networks import NETWORKS
from oculi.precision import auto_precision, memory_format, uses_channels_last

SIZE, BATCH, CLASSES = 256, 8, 3  # SIZE: --size's default


def batch(device: torch.device, size: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``BATCH`` random ``[3, size, size]`` images with two boxes each (xyxy pixels, 0-based labels)."""
    images = [torch.rand(3, size, size, device=device) for _ in range(BATCH)]
    boxes = torch.tensor([[20.0, 30.0, 120.0, 160.0], [150.0, 100.0, 280.0, 290.0]], device=device) * size / 300
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 2], device=device)} for _ in range(BATCH)]
    return images, to_model_targets(targets)


def images_per_second(detector: str, network: str, size: int, precision: str | None, steps: int, warmup: int,
                      device: torch.device) -> float:
    """Training images/s of one detector: ``precision`` None = fp32 contiguous eager, else oculi's policy for that
    ``precision_dtype`` (autocast when it is bfloat16 / float16, channels_last where :func:`uses_channels_last`)."""
    torch.manual_seed(0)
    model = NETWORKS.get(detector).build(network, CLASSES, size).to(device)
    if precision is not None:
        model = memory_format(model, precision, device.type)
    autocast = precision in ("bfloat16", "float16")
    dtype = torch.float16 if precision == "float16" else torch.bfloat16
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images, targets = batch(device, size)
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=autocast):
            losses = model(images, targets)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detector", choices=("fcos", "ssd"), default="fcos")
    parser.add_argument("--networks", help="comma-separated base networks (default: every one the detector takes)")
    parser.add_argument("--size", type=int, default=SIZE, help="image_shape")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    networks = args.networks.split(",") if args.networks else list(FCOS_BASES if args.detector == "fcos"
                                                                     else SSD_BASES)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = auto_precision()
    print(f"{args.detector} training, image_shape {args.size}, batch {BATCH}, {args.steps} steps after "
          f"{args.warmup} warm-up, "
          f"{device.type}, {torch.get_num_threads()} threads")
    policy = f"{precision}+CL img/s" if uses_channels_last(precision, device.type) else f"{precision} img/s"
    print(f"{'base_network':<20}{'fp32 eager img/s':>18}{policy:>20}{'speed-up':>10}")
    for network in networks:
        fp32 = images_per_second(args.detector, network, args.size, None, args.steps, args.warmup, device)
        ours = images_per_second(args.detector, network, args.size, precision, args.steps, args.warmup, device)
        print(f"{network:<20}{fp32:>18.1f}{ours:>20.1f}{ours / fp32:>9.2f}×")


if __name__ == "__main__":
    main()
