"""Which float32 training path is fastest on this CPU, for each algorithm's default network (issue 17, item 7:
CPUs without bf16, where autocast does not help).

Plain training loops (SGD, no Lightning, data in memory), fp32 throughout, each network in four ways:
  eager        contiguous tensors, eager mode — what a user's own script gets (the baseline);
  cl           channels_last model and inputs (oneDNN's NHWC convolutions);
  compile      ``torch.compile`` (inductor) of the network — for detection the base network + pyramid only;
  cl+compile   both.
Networks: image-classification's default ResNet-18 at 224², batch 32; object-detection's default FCOS on
EfficientNet-Lite0 at 256², batch 8; semantic-segmentation's default FCN on EfficientNet-Lite0, crop 240, batch 16.
Prints images/s and the speed-up over eager. To see an AVX2-only CPU on a newer one, run it under
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2`` (the figures then say so).

Usage: .venv/bin/python bench/fp32_paths.py [--networks resnet18,fcos,fcn] [--paths eager,cl,compile,cl+compile]
       [--steps 6] [--warmup 3]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from oculi.algorithms.detection_networks import NETWORKS
from oculi.algorithms.segmentation_models import build_segmentation

PATHS = ("eager", "cl", "compile", "cl+compile")


def classification(channels_last: bool, compiled: bool) -> tuple[torch.nn.Module, Callable[[], torch.Tensor], int]:
    """ResNet-18, 10 classes, a batch of 32 random 224² images: the model and a loss closure."""
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    images, labels = torch.rand(32, 3, 224, 224), torch.randint(0, 10, (32,))
    if channels_last:
        model, images = model.to(memory_format=torch.channels_last), images.contiguous(
            memory_format=torch.channels_last)
    net = torch.compile(model) if compiled else model
    return model, lambda: F.cross_entropy(net(images), labels), 32


def detection(channels_last: bool, compiled: bool) -> tuple[torch.nn.Module, Callable[[], torch.Tensor], int]:
    """FCOS on EfficientNet-Lite0 (ImageNet-initialised layout, random weights here), 3 classes, 8 random 256²
    images with two boxes each."""
    model = NETWORKS.get("fcos").build("efficientnet-lite0", 3, 256)
    images = [torch.rand(3, 256, 256) for _ in range(8)]
    boxes = torch.tensor([[20.0, 30.0, 120.0, 160.0], [150.0, 100.0, 250.0, 240.0]])
    targets = [{"boxes": boxes, "labels": torch.tensor([0, 2])} for _ in range(8)]
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = [i.unsqueeze(0).contiguous(memory_format=torch.channels_last)[0] for i in images]
    if compiled:
        model.backbone = torch.compile(model.backbone)
    return model, lambda: sum(model(images, targets).values()), 8


def segmentation(channels_last: bool, compiled: bool) -> tuple[torch.nn.Module, Callable[[], torch.Tensor], int]:
    """FCN on EfficientNet-Lite0, 3 classes, 16 random 240² crops with random masks."""
    model = build_segmentation("fcn", "efficientnet-lite0", 3, skip=True)
    images, masks = torch.rand(16, 3, 240, 240) * 2 - 1, torch.randint(0, 3, (16, 240, 240))
    if channels_last:
        model, images = model.to(memory_format=torch.channels_last), images.contiguous(
            memory_format=torch.channels_last)
    net = torch.compile(model) if compiled else model
    return model, lambda: F.cross_entropy(net(images), masks), 16


NETWORKS_TIMED = {"resnet18": classification, "fcos": detection, "fcn": segmentation}


def images_per_second(build: Callable, path: str, steps: int, warmup: int) -> tuple[float, float]:
    """(images/s after ``warmup`` steps, seconds of the warm-up — compilation included) of one path."""
    torch.manual_seed(0)
    model, loss_of, batch = build("cl" in path, "compile" in path)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    began = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        loss = loss_of()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start), start - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", default=",".join(NETWORKS_TIMED))
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    isa = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")
           if k in os.environ}
    print(f"fp32 training paths, {torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}{' ' + str(isa) if isa else ''}")
    print(f"{'network':<10}{'path':<12}{'img/s':>8}{'vs eager':>10}{'warm-up s':>11}")
    for name in args.networks.split(","):
        eager = None
        for path in args.paths.split(","):
            rate, warm = images_per_second(NETWORKS_TIMED[name], path, args.steps, args.warmup)
            eager = rate if path == "eager" else eager
            ratio = f"{rate / eager:.2f}×" if eager else ""
            print(f"{name:<10}{path:<12}{rate:>8.1f}{ratio:>10}{warm:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
