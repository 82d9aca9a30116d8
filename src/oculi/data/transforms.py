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


def detection_eval(size: int) -> Callable:
    """Stretch to ``size × size`` (no aspect preservation, as SageMaker's SSD), boxes scaled with the image."""
    return v2.Resize((size, size), antialias=True)
