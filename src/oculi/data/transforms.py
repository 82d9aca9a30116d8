"""Augmentation presets on ``uint8 [3, H, W]`` tensors (torchvision ``transforms.v2``).

Classification follows SageMaker's ``augmentation_type``: ``crop`` = random crop + horizontal flip;
``crop_color`` adds random hue/saturation/lightness shifts (±36°, ±50/255, ±50/255); ``crop_color_transform``
adds rotation ≤ 10°, shear ≤ 0.1 and aspect-ratio change ≤ 25 %. Evaluation and inference resize the shorter
side to ``resize`` and take the centre ``image_shape`` crop; normalisation happens on the model's device."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torchvision.transforms import InterpolationMode, v2

AUGMENTATION_TYPES = ("none", "crop", "crop_color", "crop_color_transform")


def classification_eval(resize: int, crop: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Shorter side → ``resize`` (bilinear, antialiased), then the centre ``crop`` (H, W)."""
    return v2.Compose([v2.Resize(resize, interpolation=InterpolationMode.BILINEAR, antialias=True),
                       v2.CenterCrop(crop)])


def classification_train(augmentation_type: str, resize: int,
                         crop: tuple[int, int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The training preset for SageMaker's ``augmentation_type`` (``none`` = the evaluation transform)."""
    if augmentation_type == "none":
        return classification_eval(resize, crop)
    steps: list[Callable] = [v2.Resize(resize, interpolation=InterpolationMode.BILINEAR, antialias=True)]
    if augmentation_type == "crop_color_transform":
        shear = math.degrees(math.atan(0.1))
        steps += [v2.RandomAffine(degrees=10, shear=(-shear, shear, -shear, shear)),
                  v2.RandomResizedCrop(crop, scale=(0.6, 1.0), ratio=(0.75, 1.25), antialias=True)]
    else:
        steps.append(v2.RandomCrop(crop, pad_if_needed=True))
    steps.append(v2.RandomHorizontalFlip())
    if augmentation_type in ("crop_color", "crop_color_transform"):
        steps.append(v2.ColorJitter(brightness=50 / 255, saturation=50 / 255, hue=36 / 360))
    return v2.Compose(steps)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``uint8 [B, 3, H, W]`` → ``float32`` normalised with per-channel ``mean``/``std`` (given in 0–1 units)."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1) * 255.0
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1) * 255.0
    return (images.float() - m) / s


def detection_train(size: int, fill: tuple[int, int, int]) -> Callable:
    """SageMaker's detection augmentation, applied on the fly with boxes kept consistent: colour jitter
    (brightness, contrast, saturation, hue — never a channel swap, which turns yellow bees blue), zoom-out (rescale
    onto a ``fill``-coloured canvas up to 2×), random IoU crop, horizontal flip, then the stretch to ``size ×
    size``. Takes and returns ``(uint8 [3, H, W], tv_tensors.BoundingBoxes xyxy, labels int64 [N])``; boxes that
    leave the image or shrink below 1 px are dropped with their labels."""
    from torchvision import tv_tensors  # noqa: F401 - the inputs are tv_tensors

    jitter = v2.RandomApply([v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03)], p=0.5)
    with_boxes = v2.Compose([
        jitter,
        v2.RandomZoomOut(fill={tv_tensors.Image: list(fill), "others": 0}, side_range=(1.0, 2.0), p=0.5),
        v2.RandomIoUCrop(),
        v2.RandomHorizontalFlip(),
        v2.Resize((size, size), antialias=True),
        v2.SanitizeBoundingBoxes(labels_getter=lambda inputs: inputs[2]),
    ])
    # RandomIoUCrop needs boxes to measure overlap: negatives get the rest of the pipeline.
    negatives = v2.Compose([jitter, v2.RandomHorizontalFlip(),
                            v2.Resize((size, size), antialias=True)])

    def apply(image: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor) -> tuple:
        return (with_boxes if len(labels) else negatives)(image, boxes, labels)

    return apply


MOSAIC_MIN_VISIBLE = 0.25  # a box cut by a mosaic's edge stays only with at least this share of its area


def mosaic(tiles: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], size: int,
           centre: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Four augmented ``size × size`` samples ``(uint8 [3, S, S], boxes float [N, 4] xyxy, labels [N])`` joined
    YOLO's way: they meet at ``centre`` (output pixels, each coordinate in ``[0, size]``) — top-left, top-right,
    bottom-left, bottom-right — and the ``size × size`` window shows the part of each that falls in it (together
    they cover it), so objects keep their scale. Boxes are clipped to their tile's visible part and kept only when
    at least ``MOSAIC_MIN_VISIBLE`` of their area and 2 px each way remain."""
    cx, cy = round(centre[0]), round(centre[1])
    canvas = torch.empty(3, size, size, dtype=torch.uint8)
    all_boxes, all_labels = [], []
    # each tile's offset in output pixels: where its top-left corner lands
    offsets = ((cx - size, cy - size), (cx, cy - size), (cx - size, cy), (cx, cy))
    for (image, boxes, labels), (ox, oy) in zip(tiles, offsets, strict=True):
        x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + size, size), min(oy + size, size)
        if x1 <= x0 or y1 <= y0:
            continue
        canvas[:, y0:y1, x0:x1] = image[:, y0 - oy:y1 - oy, x0 - ox:x1 - ox]
        if len(labels) == 0:
            continue
        shifted = boxes.reshape(-1, 4) + torch.tensor([ox, oy, ox, oy], dtype=boxes.dtype)
        clipped = torch.stack([shifted[:, 0].clamp(x0, x1), shifted[:, 1].clamp(y0, y1),
                               shifted[:, 2].clamp(x0, x1), shifted[:, 3].clamp(y0, y1)], dim=1)
        area = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
        width, height = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
        keep = (width >= 2) & (height >= 2) & (width * height >= MOSAIC_MIN_VISIBLE * area)
        all_boxes.append(clipped[keep])
        all_labels.append(labels[keep])
    boxes = torch.cat(all_boxes) if all_boxes else torch.zeros(0, 4)
    labels = torch.cat(all_labels) if all_labels else torch.zeros(0, dtype=torch.int64)
    return canvas, boxes.float(), labels


def detection_eval(size: int) -> Callable:
    """Stretch to ``size × size`` (no aspect preservation, as SageMaker's SSD), boxes scaled with the image."""
    return v2.Resize((size, size), antialias=True)


def scale_long_side(image: torch.Tensor, mask: torch.Tensor, long_side: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize so the longer side is ``long_side`` px (aspect kept): the image bilinear (antialiased), the mask
    nearest-neighbour (a ``tv_tensors.Mask`` always resizes with nearest)."""
    from torchvision.transforms.v2 import functional as F

    height, width = image.shape[-2:]
    scale = long_side / max(height, width)
    size = [max(1, round(height * scale)), max(1, round(width * scale))]
    return F.resize(image, size, antialias=True), F.resize(mask, size, interpolation=InterpolationMode.NEAREST)


def _pad_to(image: torch.Tensor, mask: torch.Tensor, size: int, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad right/bottom to at least ``size × size``: the image with 0, the mask with ``ignore_index`` (padding
    counts in neither loss nor metrics)."""
    from torchvision.transforms.v2 import functional as F

    height, width = image.shape[-2:]
    pad = [0, 0, max(0, size - width), max(0, size - height)]
    if pad[2] or pad[3]:
        image, mask = F.pad(image, pad, fill=0), F.pad(mask, pad, fill=ignore_index)
    return image, mask


def segmentation_train(base_size: int, crop_size: int, ignore_index: int) -> Callable:
    """SageMaker's segmentation augmentation: the long side rescaled to ``base_size`` × U(0.5, 2.0) (aspect kept),
    a random ``crop_size × crop_size`` crop (padded with 0 / ``ignore_index`` where the image is smaller) and a
    horizontal flip half of the time. Takes and returns ``(uint8 [3, H, W], tv_tensors.Mask int64 [1, H, W])``; the
    mask is always resized nearest-neighbour, so it keeps its class values and stays aligned with the image. Uses
    torch's random generator (seeded per worker by Lightning)."""
    from torchvision.transforms.v2 import functional as F

    def apply(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        factor = 0.5 + 1.5 * float(torch.rand(()))
        image, mask = scale_long_side(image, mask, base_size * factor)
        image, mask = _pad_to(image, mask, crop_size, ignore_index)
        height, width = image.shape[-2:]
        top = int(torch.randint(0, height - crop_size + 1, ()))
        left = int(torch.randint(0, width - crop_size + 1, ()))
        image, mask = F.crop(image, top, left, crop_size, crop_size), F.crop(mask, top, left, crop_size, crop_size)
        if float(torch.rand(())) < 0.5:
            image, mask = F.horizontal_flip(image), F.horizontal_flip(mask)
        return image, mask

    return apply


def segmentation_eval(base_size: int, crop_size: int | None, ignore_index: int) -> Callable:
    """Validation preprocessing: the long side rescaled to ``base_size``; with ``crop_size`` the centre
    ``crop_size`` square (padded with 0 / ``ignore_index``) of image and mask, without it (SageMaker's
    ``validation_mini_batch_size=1``) the whole rescaled image and the original, unresized mask — the model's
    output is scaled back to the mask, so scores are measured at the annotation's resolution."""
    from torchvision.transforms.v2 import functional as F

    def apply(image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scaled, scaled_mask = scale_long_side(image, mask, base_size)
        if crop_size is None:
            return scaled, mask
        scaled, scaled_mask = _pad_to(scaled, scaled_mask, crop_size, ignore_index)
        return F.center_crop(scaled, [crop_size]), F.center_crop(scaled_mask, [crop_size])

    return apply
