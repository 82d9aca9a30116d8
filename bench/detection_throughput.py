"""Training throughput of the ``object-detection`` networks: plain torchvision fp32 eager vs bf16 autocast +
channels_last (oculi's CPU precision policy; on a GPU the same two settings are compared).

``--detector fcos`` (the default network on pyramid base networks) or ``ssd``; ``--size`` (default 256, the
default image_shape), batch 8, 3 classes, two random boxes per image, SGD; every base network the detector takes.
Prints images/s per network and setting. bf16 is skipped on a CPU without bf16 support.

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

SIZE, BATCH, CLASSES = 256, 8, 3  # SIZE: --size's default


def batch(device: torch.device, size: int) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``BATCH`` random ``[3, size, size]`` images with two boxes each (xyxy pixels, 0-based labels)."""
    images = [torch.rand(3, size, size, device=device) for _ in range(BATCH)]
    boxes = torch.tensor([[20.0, 30.0, 120.0, 160.0], [150.0, 100.0, 280.0, 290.0]], device=device) * size / 300
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 2], device=device)} for _ in range(BATCH)]
    return images, to_model_targets(targets)


def images_per_second(detector: str, network: str, size: int, bf16: bool, steps: int, warmup: int,
                      device: torch.device) -> float:
    """Training images/s of one detector: ``bf16`` = autocast to bfloat16 + channels_last, else fp32 contiguous."""
    torch.manual_seed(0)
    model = NETWORKS.get(detector).build(network, CLASSES, size).to(device)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images, targets = batch(device, size)
    model.train()
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
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
    bf16_ok = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"{args.detector} training, image_shape {args.size}, batch {BATCH}, {args.steps} steps after "
          f"{args.warmup} warm-up, "
          f"{device.type}, {torch.get_num_threads()} threads")
    print(f"{'base_network':<20}{'fp32 eager img/s':>18}{'bf16+CL img/s':>16}{'speed-up':>10}")
    for network in networks:
        fp32 = images_per_second(args.detector, network, args.size, False, args.steps, args.warmup, device)
        if bf16_ok:
            bf16 = images_per_second(args.detector, network, args.size, True, args.steps, args.warmup, device)
            print(f"{network:<20}{fp32:>18.1f}{bf16:>16.1f}{bf16 / fp32:>9.2f}×")
        else:
            print(f"{network:<20}{fp32:>18.1f}{'n/a (no bf16)':>16}{'':>10}")


if __name__ == "__main__":
    main()
