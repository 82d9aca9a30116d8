"""Batch-transform throughput: images/s of ``oculi transform`` with 1 and 2 worker processes.

A ResNet-18 image-classification bundle with random weights (built through the project API: the algorithm's own
``prepare`` resolves every hyperparameter, ``build_model`` makes the network, ``save_bundle`` writes it; nothing is
downloaded or trained) runs over generated 224×224 JPEGs. Each configuration writes into a fresh output folder, so
every image is decoded, predicted, encoded and written. "transform" is the time from the model loaded to the last
result written (worker start-up included); "wall" adds listing, model loading and the job record. "CPU ms/image"
is the processor time of the bench and its worker processes per image: on a machine shared with other work the
rates fall with the CPU share we get, while this stays comparable.

Usage: .venv/bin/python bench/transform_throughput.py [--images 200] [--workers 1,2] [--batch-size 32] [--repeats 1]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(root: Path, count: int, size: int = 224) -> Path:
    """``count`` noisy JPEGs with a coloured disc or square, split over two class folders (``root/a``, ``root/b``)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for n in range(count):
        kind = "ab"[n % 2]
        pixels = rng.integers(0, 90, (size, size, 3)).astype(np.uint8)
        cx, cy, r = rng.integers(60, size - 60, 2).tolist() + [int(rng.integers(20, 50))]
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r) if kind == "a" else \
            ((abs(yy - cy) < r) & (abs(xx - cx) < r))
        pixels[mask] = rng.integers(120, 256, 3)
        (root / kind).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / kind / f"{n:04d}.jpg", quality=90)
    return root


def random_resnet18_bundle(images: Path, out: Path) -> Path:
    """An image-classification bundle (ResNet-18, 3×224×224) with random weights, resolved like a training run."""
    import torch

    from oculi.algorithms import get_algorithm
    from oculi.artifacts import save_bundle
    from oculi.config import resolve

    torch.manual_seed(0)
    algo = get_algorithm("image-classification")
    hp = resolve(algo.hyperparameters, None, {"num_layers": "18", "image_shape": "3,224,224", "num_workers": "0"},
                 algorithm=algo.name)
    data = algo.prepare({"train": images}, hp, init_meta=None, image_roots=None, progress=False)
    hp = data.hyperparameters
    model = algo.build_model(hp, data.classes, pretrained=False).eval()
    meta = {"algorithm": algo.name, "task": algo.task, "hyperparameters": hp.model_dump(mode="json"),
            "classes": data.classes, "input": algo.input_spec(hp), "metrics": {}}
    return save_bundle(out, meta, model)


def _cpu_seconds() -> float:
    """User + system time of this process and of its finished children (the worker processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--workers", default="1,2", help="Comma-separated worker counts to compare.")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1, help="Runs per configuration; the best is shown.")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="oculi-transform-bench-"))
    os.environ["OCULI_HOME"] = str(root / "home")  # keep the bench's jobs out of ~/.oculi
    from oculi.batch import transform

    images = make_images(root / "images", args.images)
    model = random_resnet18_bundle(images, root / "model")
    print(f"{args.images} generated 224×224 JPEGs, ResNet-18 (random weights), batch size {args.batch_size}, "
          f"{len(os.sched_getaffinity(0))} usable CPU cores; {root}", flush=True)
    print(f"{'workers':>7}  {'images':>6}  {'transform s':>11}  {'images/s':>8}  {'wall s':>6}  {'wall images/s':>13}  "
          f"{'CPU ms/image':>12}  load average", flush=True)
    for workers in (int(w) for w in args.workers.split(",")):
        best = None
        for repeat in range(args.repeats):
            started, cpu = time.perf_counter(), _cpu_seconds()
            summary = transform(model, images, root / f"out-{workers}-{repeat}", batch_size=args.batch_size,
                                workers=workers, progress=False, echo=None)
            wall, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
            assert summary.done == args.images and summary.failed == 0, summary
            if best is None or summary.seconds < best[0].seconds:
                best = (summary, wall, cpu, os.getloadavg()[0])
        summary, wall, cpu, load = best
        print(f"{workers:>7}  {summary.done:>6}  {summary.seconds:>11.2f}  {summary.images_per_second:>8.1f}  "
              f"{wall:>6.2f}  {summary.done / wall:>13.1f}  {1000 * cpu / summary.done:>12.0f}  {load:.1f}",
              flush=True)


if __name__ == "__main__":
    main()
