"""Why the default SSD learns bees slowly, part one: how well its default boxes fit the true boxes.

For each ``image_shape`` the true boxes of the training split are stretched to the network's square input (as the
model does) and compared with the SSD's default boxes (efficientnet-lite0 layout, no training needed):

- the share of true boxes that some default box matches at IoU ≥ ``overlap_threshold`` (the SSD matcher's
  threshold; torchvision then also gives each unmatched true box its best default box, however poor);
- the mean number of default boxes per true box at IoU ≥ 0.5 (positives per object: few positives, few gradients);
- the true boxes' size (√(w·h) as a share of the input side) and aspect ratio (w/h) percentiles, against the
  default boxes' scales and ratios per feature map;
- the same for the fitted layout (``default_boxes=auto``): a stride-8 feature map and scales / ratios fitted to
  the training boxes (:mod:`oculi.algorithms.detection_priors`), and how long the fit took.

Usage: .venv/bin/python bench/ssd_diagnosis.py [--dataset bees|coco-person] [--sizes 256,300,384,512]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detection_quality import BEES_PREFIX, SHARED, bees_split, coco_person_split  # noqa: E402

from oculi.algorithms.detection_models import build_ssd, ssd_default_boxes, ssd_grid_sizes  # noqa: E402
from oculi.algorithms.detection_priors import fit_default_boxes  # noqa: E402
from oculi.data.detection import read_detection  # noqa: E402


def stretched_boxes(path: Path, roots: dict[str, Path], side: int) -> torch.Tensor:
    """Every true box of the split at ``path``, in pixels of the ``side × side`` stretched input: ``[N, 4]``."""
    rows = []
    for sample in read_detection(path, image_roots=roots).samples:
        t = sample.target
        for x0, y0, x1, y1 in t.boxes:
            rows.append([x0 * side / t.width, y0 * side / t.height, x1 * side / t.width, y1 * side / t.height])
    return torch.tensor(rows, dtype=torch.float32)


def percentiles(values: torch.Tensor, qs: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)) -> str:
    """``p5 … p95`` of ``values`` as one line."""
    return "  ".join(f"p{int(q * 100)} {torch.quantile(values, q).item():.3f}" for q in qs)


def main() -> int:
    """Print the default-box fit per image size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("bees", "coco-person"), default="bees")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="256,300,384,512")
    parser.add_argument("--overlap-threshold", type=float, default=0.5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oculi-ssd-diag-"))
    split = (bees_split if args.dataset == "bees" else coco_person_split)(args.data, work, args.seed)
    roots = {BEES_PREFIX: args.data / "bees" / "images"}
    for side in (int(s) for s in args.sizes.split(",")):
        boxes = stretched_boxes(split["train"], roots, side)
        ssd = build_ssd("efficientnet-lite0", 1, side).eval()
        anchors = ssd_default_boxes(ssd)
        iou = box_iou(boxes, anchors)
        best = iou.max(dim=1).values
        size = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).sqrt() / side
        ratio = (boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1])
        generator = ssd.anchor_generator
        print(f"\n{args.dataset} train split, image_shape {side}: {len(boxes)} true boxes, "
              f"{len(anchors)} default boxes")
        print(f"  matched at IoU ≥ {args.overlap_threshold}: {(best >= args.overlap_threshold).float().mean():.1%}"
              f"   best IoU {percentiles(best)}")
        print(f"  default boxes per true box at IoU ≥ 0.5: {(iou >= 0.5).sum(dim=1).float().mean():.2f}")
        print(f"  true box size √(wh)/side: {percentiles(size)}")
        print(f"  true box aspect w/h:      {percentiles(ratio)}")
        print(f"  default scales per map:   {', '.join(f'{s:.3f}' for s in generator.scales[:-1])} "
              f"(extra {generator.scales[-1]:.3f}); ratios {generator.aspect_ratios}")
        start = time.perf_counter()
        fitted_grids = ssd_grid_sizes("efficientnet-lite0", side, fitted=True)
        fit = fit_default_boxes(boxes / side, fitted_grids, side, "efficientnet-lite0",
                                ssd_grid_sizes("efficientnet-lite0", side, fitted=False))
        fitted = build_ssd("efficientnet-lite0", 1, side, default_box_scales=fit.scales,
                           default_box_ratios=fit.ratios).eval()
        fitted_iou = box_iou(boxes, ssd_default_boxes(fitted))
        fitted_best = fitted_iou.max(dim=1).values
        print(f"  fitted (default_boxes=auto, {time.perf_counter() - start:.1f} s): maps {fitted_grids}, scales "
              f"{', '.join(f'{s:.3f}' for s in fit.scales)}, ratios {fit.ratios}; {len(fitted_iou[0])} default boxes")
        print(f"    matched at IoU ≥ {args.overlap_threshold}: "
              f"{(fitted_best >= args.overlap_threshold).float().mean():.1%}   best IoU {percentiles(fitted_best)}")
        print(f"    default boxes per true box at IoU ≥ 0.5: {(fitted_iou >= 0.5).sum(dim=1).float().mean():.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
