"""End-to-end predict latency of ``object-detection`` bundles: one 640×480 JPEG, decode → preprocess → model →
NMS → SageMaker JSON, for each base network at ``image_shape`` 300.

Each network gets a bundle from a one-epoch run on 8 generated images (random base-network weights: vgg-16 and
resnet-50 ImageNet weights are not shipped), unless ``--model NETWORK=BUNDLE`` names a trained one. An untrained
head scores many boxes above SSD's 0.01 threshold, so NMS does more work than for a trained model: the figures are
an upper bound. Prints the median and 90th percentile over ``--runs`` calls after ``--warmup`` calls.

Usage: .venv/bin/python bench/detection_latency.py [--runs 30] [--model efficientnet-lite0=path/to/bundle]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from oculi.algorithms.detection_models import BASE_NETWORKS
from oculi.engine.training import train
from oculi.tasks import load_predictor


def shapes(root: Path, count: int = 8) -> Path:
    """``count`` 160×120 JPEGs with one red rectangle each, as a COCO file."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        canvas = rng.integers(0, 80, (120, 160, 3)).astype(np.uint8)
        x, y, w, h = (int(v) for v in (*rng.integers(0, 80, 2), *rng.integers(20, 40, 2)))
        canvas[y:y + h, x:x + w] = (230, 60, 60)
        Image.fromarray(canvas).save(root / "images" / f"{i}.jpg")
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 160, "height": 120})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": [x, y, w, h]})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "box"}]}))
    return path


def photo() -> bytes:
    """A 640×480 JPEG (smooth noise, quality 90) as bytes."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (60, 80, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((640, 480), Image.BILINEAR).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def main() -> int:
    """Build or load one bundle per network and time single-image predictions."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(BASE_NETWORKS))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model", action="append", default=[], metavar="NETWORK=BUNDLE")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.model)
    work = Path(tempfile.mkdtemp(prefix="oculi-det-latency-"))
    data = shapes(work / "data")
    jpeg = work / "photo.jpg"
    jpeg.write_bytes(photo())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; one 640×480 JPEG, image_shape 300\n")
    print(f"{'network':<20}{'median ms':>10}{'p90 ms':>10}  bundle")
    for network in args.networks.split(","):
        bundle = given.get(network)
        if bundle is None:
            bundle = work / network
            train("object-detection", {"train": data},
                  {"base_network": network, "use_pretrained_model": "0" if network != "efficientnet-lite0" else "1",
                   "epochs": "1", "mini_batch_size": "4", "image_shape": "300"},
                  output=bundle, progress=False, echo=lambda *_: None)
        predictor = load_predictor(bundle)
        times = []
        for run in range(args.warmup + args.runs):
            start = time.perf_counter()
            body = json.dumps(predictor.predict(jpeg).sagemaker())
            if run >= args.warmup:
                times.append((time.perf_counter() - start) * 1000)
        assert body.startswith('{"prediction"')
        p90 = statistics.quantiles(times, n=10)[-1]
        print(f"{network:<20}{statistics.median(times):>10.1f}{p90:>10.1f}  {bundle}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
