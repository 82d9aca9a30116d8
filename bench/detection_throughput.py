"""Training throughput of the ``object-detection`` SSD networks: plain torchvision fp32 eager vs bf16 autocast +
channels_last (oculi's CPU precision policy; on a GPU the same two settings are compared).

image_shape 300, batch 8, 3 classes, two random boxes per image, SGD; every base network (vgg-16, resnet-50,
efficientnet-lite0). Prints images/s per network and setting. bf16 is skipped on a CPU without bf16 support.

Usage: .venv/bin/python bench/detection_throughput.py [--networks vgg-16,resnet-50] [--steps 10] [--warmup 2]
"""

from __future__ import annotations

import argparse
import time

import torch

from oculi.algorithms.detection_models import BASE_NETWORKS, build_ssd, to_model_targets

SIZE, BATCH, CLASSES = 300, 8, 3


def batch(device: torch.device) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """``BATCH`` random ``[3, SIZE, SIZE]`` images with two boxes each (xyxy pixels, 0-based labels)."""
    images = [torch.rand(3, SIZE, SIZE, device=device) for _ in range(BATCH)]
    boxes = torch.tensor([[20.0, 30.0, 120.0, 160.0], [150.0, 100.0, 280.0, 290.0]], device=device)
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 2], device=device)} for _ in range(BATCH)]
    return images, to_model_targets(targets)


def images_per_second(network: str, bf16: bool, steps: int, warmup: int, device: torch.device) -> float:
    """Training images/s of one SSD: ``bf16`` = autocast to bfloat16 + channels_last, else fp32 contiguous."""
    torch.manual_seed(0)
    model = build_ssd(network, CLASSES, SIZE).to(device)
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    images, targets = batch(device)
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
    parser.add_argument("--networks", default=",".join(BASE_NETWORKS))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16_ok = device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported()
    print(f"SSD training, image_shape {SIZE}, batch {BATCH}, {args.steps} steps after {args.warmup} warm-up, "
          f"{device.type}, {torch.get_num_threads()} threads")
    print(f"{'base_network':<20}{'fp32 eager img/s':>18}{'bf16+CL img/s':>16}{'speed-up':>10}")
    for network in args.networks.split(","):
        fp32 = images_per_second(network, False, args.steps, args.warmup, device)
        if bf16_ok:
            bf16 = images_per_second(network, True, args.steps, args.warmup, device)
            print(f"{network:<20}{fp32:>18.1f}{bf16:>16.1f}{bf16 / fp32:>9.2f}×")
        else:
            print(f"{network:<20}{fp32:>18.1f}{'n/a (no bf16)':>16}{'':>10}")


if __name__ == "__main__":
    main()
