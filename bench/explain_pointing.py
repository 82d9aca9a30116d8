"""Pointing game for detection explanations (issue 16's figure): on the bees validation split (the seeded 320/80
split of ``detection_quality.py``), the share of true boxes whose explanation — the map of the detection that
matches the box (IoU ≥ 0.5) — peaks inside the box, per CAM method.

A map that explains *its box* should peak on that bee, not on another bee or the background. Two baselines say
what chance gives: the image centre as the "peak", and a uniformly random pixel (the box's share of the image).

Needs a bees detector bundle (``--model``; ``detection_quality.py --dataset bees`` prints where its bundle is).

Usage: .venv/bin/python bench/explain_pointing.py --model /tmp/oculi-bees-…/model [--methods gradcam,gradcam++,…]
       [--min-score 0.3] [--images 80]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from detection_quality import BEES_PREFIX, SHARED, bees_split
from torchvision.ops import box_iou

from oculi.data.detection import read_detection
from oculi.explain import METHODS, Explainer
from oculi.tasks import load_predictor


def pointing(explainer: Explainer, samples: list, min_score: float) -> dict[str, float]:
    """Counts over ``samples``: true boxes, boxes with a matching detection, hits (the matching detection's map
    peaks inside the true box), and the two baselines' hits over all true boxes."""
    counts = {"boxes": 0, "matched": 0, "hits": 0, "centre": 0, "random": 0.0, "seconds": 0.0, "maps": 0}
    for sample in samples:
        truth = torch.tensor(sample.target.boxes, dtype=torch.float32).reshape(-1, 4)
        if not len(truth):
            continue
        started = time.perf_counter()
        result = explainer.explain(sample.image, min_score=min_score)
        counts["seconds"] += time.perf_counter() - started
        counts["maps"] += len(result.explanations)
        height, width = result.view.shape[-2:]
        counts["boxes"] += len(truth)
        inside = (truth[:, 0] <= width / 2) & (width / 2 <= truth[:, 2]) & (truth[:, 1] <= height / 2) & (
            height / 2 <= truth[:, 3])
        counts["centre"] += int(inside.sum())
        counts["random"] += float(((truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1])).sum() / (width * height))
        if not result.explanations:
            continue
        found = torch.tensor([item.target.box for item in result.explanations], dtype=torch.float32)
        overlap = box_iou(truth, found)
        for t in range(len(truth)):
            best = int(overlap[t].argmax())
            if float(overlap[t, best]) < 0.5:
                continue
            counts["matched"] += 1
            saliency = result.explanations[best].saliency
            y, x = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
            x0, y0, x1, y1 = truth[t].tolist()
            counts["hits"] += int(x0 <= x + 0.5 <= x1 and y0 <= y + 0.5 <= y1)
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="a bees object-detection bundle")
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--seed", type=int, default=0, help="split seed (as detection_quality.py)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--min-score", type=float, default=0.3, help="detections explained: score at least this")
    parser.add_argument("--images", type=int, default=80, help="validation images used (at most 80)")
    args = parser.parse_args()
    if not (args.data / "bees" / "train.manifest").exists():
        print(f"{args.data / 'bees'} not found; pass --data PATH (the folder holding bees/)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        split = bees_split(args.data, Path(tmp), args.seed)
        samples = read_detection(split["validation"], image_roots={BEES_PREFIX: args.data / "bees" / "images"})
        samples = samples.samples[: args.images]
    predictor = load_predictor(args.model, precision="float32")
    print(f"CPU cores {os.cpu_count()}, torch threads {torch.get_num_threads()}; {len(samples)} bees validation "
          f"images (seed {args.seed}), detections with score ≥ {args.min_score}, model {args.model}")
    print(f"{'method':<11}{'boxes':>7}{'matched':>9}{'hits':>6}{'of matched':>12}{'of all':>8}{'s/map':>7}")
    counts = {}
    for method in args.methods.split(","):
        counts = pointing(Explainer(predictor, method, faithfulness=False), samples, args.min_score)
        print(f"{method:<11}{counts['boxes']:>7}{counts['matched']:>9}{counts['hits']:>6}"
              f"{counts['hits'] / max(1, counts['matched']):>12.3f}{counts['hits'] / max(1, counts['boxes']):>8.3f}"
              f"{counts['seconds'] / max(1, counts['maps']):>7.2f}", flush=True)
    print(f"baselines over all {counts['boxes']} true boxes: image centre {counts['centre'] / counts['boxes']:.3f}, "
          f"random pixel {counts['random'] / counts['boxes']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
