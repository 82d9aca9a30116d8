"""SSD default boxes fitted to the training boxes (``object-detection``'s ``default_boxes=auto|fitted``).

SageMaker's SSD keeps its default boxes fixed (scales 0.07/0.15…0.87 of the input side, maps from stride 16 on
EfficientNet/ResNet), so on data with small objects many true boxes have no default box at IoU ≥ 0.5 and are
learned only from their single best (poor) match: on bees at image_shape 300, 55 % of the true boxes are matched.
The fitted layout adds a stride-8 feature map and picks the default boxes' scales and aspect ratios on the training
boxes: scales spread geometrically from a smallest to a largest size (candidates from the box-size quantiles and
from what each map's stride can still place), ratios from the box shapes, keeping the candidate that matches the
largest share of training boxes at the SSD matcher's IoU (fewer default boxes breaking ties).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torchvision.ops import box_iou

from oculi.algorithms.detection_models import Float32DefaultBoxes, default_boxes, fitted_boxes
from oculi.types import SampleSet

MATCH_IOU = 0.5  # torchvision's SSD matcher: a default box is a positive at IoU ≥ 0.5 with a true box
MAX_FIT_BOXES = 1500  # boxes the fit scores (a seeded sample of larger sets): a few seconds of CPU at most


@dataclass(frozen=True)
class FittedBoxes:
    """Default boxes chosen on the training boxes: per-map ``scales`` (``len(grids) + 1`` fractions of the input
    side), the ``ratios`` used on every map, and the share of the training boxes some default box matches at IoU
    ≥ 0.5 with them (``matched``) and with SageMaker's fixed layout (``sagemaker_matched``)."""

    scales: list[float]
    ratios: list[float]
    matched: float
    sagemaker_matched: float


def training_boxes(train: SampleSet, seed: int = 0) -> torch.Tensor:
    """The training set's true boxes as fractions of their image (``float32 [N, 4]`` xyxy in [0, 1]: where they
    land on the stretched square input), at most :data:`MAX_FIT_BOXES` of them (a seeded sample)."""
    rows = [[x0 / t.width, y0 / t.height, x1 / t.width, y1 / t.height]
            for t in (s.target for s in train.samples) for x0, y0, x1, y1 in t.boxes]
    boxes = torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)
    if len(boxes) > MAX_FIT_BOXES:
        keep = torch.randperm(len(boxes), generator=torch.Generator().manual_seed(seed))[:MAX_FIT_BOXES]
        boxes = boxes[keep]
    return boxes


def priors(generator: Float32DefaultBoxes, grids: list[int], image_size: int) -> torch.Tensor:
    """The default boxes ``generator`` lays on feature maps of sides ``grids``: ``[A, 4]`` xyxy pixels of the
    ``image_size`` square input (as :func:`~oculi.algorithms.detection_models.ssd_default_boxes`, without a
    network)."""
    from torchvision.models.detection.image_list import ImageList

    blank = torch.zeros(1, 3, image_size, image_size)
    maps = [torch.empty(1, 0, g, g) for g in grids]
    return generator(ImageList(blank, [(image_size, image_size)]), maps)[0]


def matched_share(boxes: torch.Tensor, anchors: torch.Tensor, image_size: int) -> float:
    """Share of ``boxes`` (fractions, xyxy) that some default box in ``anchors`` (pixels) overlaps at IoU ≥ 0.5."""
    if len(boxes) == 0:
        return 0.0
    best = box_iou(boxes * image_size, anchors).max(dim=1).values
    return float((best >= MATCH_IOU).float().mean())


def _shapes(scales: list[float], ratios: list[float], k: int) -> torch.Tensor:
    """The default-box shapes ``[K, 2]`` (w, h fractions) of map ``k``, in torchvision's order: s_k, √(s_k·s_k+1),
    then s_k·√r × s_k/√r and its transpose per ratio."""
    s, extra = scales[k], (scales[k] * scales[k + 1]) ** 0.5
    rows = [[s, s], [extra, extra]]
    for r in ratios:
        rows += [[s * r ** 0.5, s / r ** 0.5], [s / r ** 0.5, s * r ** 0.5]]
    return torch.tensor(rows)


def best_overlaps(boxes: torch.Tensor, grids: list[int], scales: list[float], ratios: list[float]) -> torch.Tensor:
    """Each box's best IoU with the default boxes of :func:`~oculi.algorithms.detection_models.fitted_boxes`, in
    closed form (``[N]``): for a given shape the best default box is the one centred nearest the box's centre
    (overlap falls with the offset on each axis independently), so only that one is scored per shape and map
    instead of every default box — hundreds of candidate layouts score in well under a second. Default-box sides are
    clipped to the image side as torchvision's generator does."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    area = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    best = torch.zeros(len(boxes))
    for k, grid in enumerate(grids):
        nearest = ((centre * grid).floor().clamp(0, grid - 1) + 0.5) / grid  # [N, 2]
        half = _shapes(scales, ratios, k).clamp(max=1) / 2  # [K, 2]
        low, high = nearest[:, None, :] - half[None], nearest[:, None, :] + half[None]
        inner = (torch.minimum(high, boxes[:, None, 2:]) - torch.maximum(low, boxes[:, None, :2])).clamp(min=0)
        inter = inner.prod(dim=2)
        union = area[:, None] + (high - low).prod(dim=2) - inter
        best = torch.maximum(best, (inter / union).max(dim=1).values)
    return best


def _quantile(values: torch.Tensor, q: float) -> float:
    return float(torch.quantile(values, q))


def fit_default_boxes(boxes: torch.Tensor, grids: list[int], image_size: int, base_network: str,
                      sagemaker_grids: list[int]) -> FittedBoxes:
    """Scales and ratios for the fitted layout's feature maps (sides ``grids``, finest first) at ``image_size``,
    chosen on ``boxes`` (:func:`training_boxes`) to match the largest share of them at IoU ≥ 0.5 (fewer default
    boxes break ties), scored by :func:`best_overlaps`. Start: the best of Liu et al.'s layouts (a small first
    scale, the others evenly spaced up to a largest) and geometric ones, over a grid of smallest and largest
    scales, for ratios 2 / 2 and 3 / the boxes' own elongation; then each scale in turn is moved up or down while
    that matches more boxes. ``base_network`` and ``sagemaker_grids`` (the SageMaker layout's map sides) give the
    fixed layout's share for comparison. Without boxes, 0.05 to 0.9 geometrically."""
    sagemaker = matched_share(boxes, priors(default_boxes(base_network, image_size, len(sagemaker_grids)),
                                            sagemaker_grids, image_size), image_size)
    num_maps = len(grids)
    if len(boxes) == 0:
        return FittedBoxes(_geometric(0.05, 0.9, num_maps), [2.0], 0.0, sagemaker)
    aspect = ((boxes[:, 2] - boxes[:, 0]) / (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-8)).clamp(min=1e-3)
    elongation = round(min(max(_quantile(torch.maximum(aspect, 1 / aspect), 0.75), 1.5), 4.0), 2)
    ratio_sets = [[2.0], [2.0, 3.0], *([[elongation]] if abs(elongation - 2.0) > 0.2 else [])]

    def score(scales: list[float], ratios: list[float]) -> tuple[float, int]:
        share = float((best_overlaps(boxes, grids, scales, ratios) >= MATCH_IOU).float().mean())
        return share, -sum(g * g for g in grids) * (2 + 2 * len(ratios))

    starts = [_geometric(low, high, num_maps) for low in (0.02, 0.03, 0.04, 0.06, 0.09) for high in (0.5, 0.7, 0.9)]
    starts += [_liu(low, second, high, num_maps) for low in (0.02, 0.03, 0.04, 0.06, 0.09)
               for second in (0.1, 0.15, 0.2) for high in (0.7, 0.9, 1.0) if second > low]
    best = max(((score(scales, ratios), scales, ratios) for scales in starts for ratios in ratio_sets),
               key=lambda t: t[0])
    (top, scales, ratios) = best
    for _ in range(3):  # coordinate ascent: each scale × or ÷ 1.15 / 1.3, kept increasing, while the share grows
        moved = False
        for k in range(num_maps + 1):
            for factor in (1 / 1.3, 1 / 1.15, 1.15, 1.3):
                trial = list(scales)
                trial[k] = round(min(trial[k] * factor, 1.05), 4)
                if any(b <= a for a, b in zip(trial, trial[1:], strict=False)):
                    continue
                result = score(trial, ratios)
                if result > top:
                    top, scales, moved = result, trial, True
        if not moved:
            break
    share = matched_share(boxes, priors(fitted_boxes(num_maps, scales, ratios), grids, image_size), image_size)
    return FittedBoxes(scales, ratios, share, sagemaker)


def _geometric(low: float, high: float, num_maps: int) -> list[float]:
    """``num_maps + 1`` scales: ``low`` on the finest map to ``high`` on the coarsest, evenly in log scale, and
    one step beyond (at most 1.05) for the coarsest map's extra box."""
    step = (high / low) ** (1 / max(num_maps - 1, 1))
    return [round(min(low * step ** k, 1.05), 4) for k in range(num_maps + 1)]


def _liu(low: float, second: float, high: float, num_maps: int) -> list[float]:
    """Liu et al.'s SSD layout: ``low`` on the finest map, then evenly from ``second`` to ``high``, and one step
    beyond (at most 1.05)."""
    step = (high - second) / max(num_maps - 2, 1)
    return [round(v, 4) for v in [low, *(second + step * k for k in range(num_maps - 1)),
                                  min(high + step, 1.05)]][: num_maps + 1]


def resolve_default_boxes(hp: Any, train: SampleSet, notes: list[str],
                          init_meta: dict[str, Any] | None) -> dict[str, Any]:
    """SSD's ``default_boxes`` at prepare time: ``auto`` with an ``--init-model`` (``init_meta``) keeps its
    boxes (SageMaker's for a bundle without fitted ones); ``auto`` / ``fitted`` without ``default_box_scales`` fit
    them to ``train``'s boxes (:func:`fit_default_boxes`) and say so in ``notes`` with the matched shares;
    explicit scales are checked against the layout's feature-map count; ``sagemaker`` keeps the fixed boxes.
    Returns the hyperparameter updates (stored in the bundle, so every later use rebuilds the same boxes)."""
    from oculi.algorithms.detection_models import ssd_grid_sizes

    if init_meta is not None and hp.default_boxes == "auto":
        saved = init_meta["hyperparameters"]
        kept = "fitted" if saved.get("default_box_scales") else "sagemaker"
        notes.append(f"default_boxes=auto → {kept} (the --init-model's default boxes)")
        return {"default_boxes": kept, "default_box_scales": saved.get("default_box_scales"),
                "default_box_ratios": saved.get("default_box_ratios")}
    if hp.default_boxes == "sagemaker":
        return {}
    up: dict[str, Any] = {"default_boxes": "fitted"}
    grids = ssd_grid_sizes(hp.base_network, hp.image_shape, fitted=True)
    if hp.default_box_scales is not None:
        fitted_boxes(len(grids), hp.default_box_scales, hp.default_box_ratios or [2.0])  # checks the count
        if hp.default_box_ratios is None:
            up["default_box_ratios"] = [2.0]
        return up
    sagemaker_grids = ssd_grid_sizes(hp.base_network, hp.image_shape, fitted=False)
    fit = fit_default_boxes(training_boxes(train, hp.seed), grids, hp.image_shape, hp.base_network, sagemaker_grids)
    ratios = hp.default_box_ratios or fit.ratios
    up.update(default_box_scales=fit.scales, default_box_ratios=ratios)
    notes.append(f"default_boxes={hp.default_boxes} → fitted to the training boxes: a stride-8 feature map "
                 f"({len(grids)} maps), scales {','.join(f'{v:g}' for v in fit.scales)}, ratios "
                 f"{','.join(f'{v:g}' for v in ratios)}; {fit.matched:.0%} of the training boxes have a default box "
                 f"at IoU ≥ {MATCH_IOU:g} (SageMaker's fixed boxes: {fit.sagemaker_matched:.0%})")
    return up
