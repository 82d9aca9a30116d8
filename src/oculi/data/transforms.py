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
