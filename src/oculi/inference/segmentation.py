"""Predictor for semantic-segmentation bundles: decode → long side rescaled to ``base_size`` → network → logits
scaled back to the original image size → class-index mask, and its SageMaker-style renderings (a PNG in the label
encoding, JSON with per-class pixel fractions, a colour overlay with a legend)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from oculi.artifacts import ModelBundle
from oculi.data.formats.masks import encode_classes, voc_palette
from oculi.data.transforms import normalize
from oculi.inference.predictor import ImageInput, Predictor

OVERLAY_ALPHA = 0.5  # share of the class colour in an overlay pixel


@dataclass
class SegmentationResult:
    """One image's prediction: ``mask`` ``int64 [H, W]`` class indices at the input image's size, ``classes``
    their names, ``encoding`` the training label map (for :meth:`png`)."""

    mask: torch.Tensor
    classes: list[str]
    encoding: dict[str, Any] | None = None

    def fractions(self) -> dict[str, float]:
        """Share of the image's pixels predicted as each class (by class name; sums to 1)."""
        counts = torch.bincount(self.mask.flatten(), minlength=len(self.classes)).double()
        return {name: round(float(c / counts.sum()), 6) for name, c in zip(self.classes, counts, strict=False)}

    def png(self) -> bytes:
        """SageMaker's ``image/png`` response: a palette PNG of the input's size whose pixel values are the
        classes in the label encoding (class indices unless the model was trained with a label map)."""
        buffer = io.BytesIO()
        image = Image.fromarray(encode_classes(self.mask.numpy(), self.encoding), "P")
        image.putpalette([v for rgb in voc_palette() for v in rgb])
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        """``{"width", "height", "classes", "fractions": {class: share}, "mask_png_base64": <png()>}``."""
        height, width = self.mask.shape
        return {"width": int(width), "height": int(height), "classes": list(self.classes),
                "fractions": self.fractions(), "mask_png_base64": base64.b64encode(self.png()).decode("ascii")}


def overlay(image: torch.Tensor, mask: torch.Tensor, classes: list[str], legend: bool = True) -> Image.Image:
    """``image`` (``uint8 [3, H, W]``) blended with the VOC colour of each pixel's class (``mask`` ``int64 [H, W]``;
    255 = ignore is left uncoloured), with a legend of the classes present below it when ``legend``."""
    palette = np.asarray(voc_palette(), dtype=np.float32)
    pixels = image.permute(1, 2, 0).numpy().astype(np.float32)
    values = mask.numpy()
    coloured = values != 255
    pixels[coloured] = (1 - OVERLAY_ALPHA) * pixels[coloured] + OVERLAY_ALPHA * palette[values[coloured]]
    picture = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    if not legend:
        return picture
    present = [int(v) for v in np.unique(values) if v != 255]
    row = 16
    canvas = Image.new("RGB", (picture.width, picture.height + row * len(present) + 4), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for n, value in enumerate(present):
        top = picture.height + 2 + n * row
        draw.rectangle((4, top + 2, 16, top + 13), fill=tuple(int(c) for c in palette[value]), outline=(0, 0, 0))
        name = classes[value] if value < len(classes) else str(value)
        draw.text((22, top + 2), f"{name} ({(values == value).mean():.1%})", fill=(0, 0, 0))
    return canvas


class SegmentationPredictor(Predictor):
    """Runs a semantic-segmentation bundle; ``predict`` returns a :class:`SegmentationResult` per image."""

    def __init__(self, bundle: ModelBundle, device: str | torch.device = "cpu") -> None:
        self.bundle = bundle
        self.device = torch.device(device)
        self.model = bundle.model.to(self.device).eval()
        self.spec = bundle.meta["input"]
        self.min_side = None  # full-size decode: masks have the input image's size

    @torch.inference_mode()
    def logits(self, image: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``uint8 [3, H, W]`` → ``float32 [C, h, w]`` logits at ``size`` (default ``(H, W)``), the network having
        seen the image with its long side at ``base_size``."""
        from torch.nn import functional as F  # noqa: N812

        from oculi.data.transforms import scale_long_side

        height, width = image.shape[-2:]
        scaled, _ = scale_long_side(image, image[:1], float(self.spec["base_size"]))
        inputs = normalize(scaled[None].to(self.device), tuple(self.spec["mean"]), tuple(self.spec["std"]))
        out = self.model(inputs).float()
        out = F.interpolate(out, size=size or (height, width), mode="bilinear", align_corners=False)
        return out[0].cpu()

    def predict(self, images: ImageInput | Iterable[ImageInput], batch_size: int = 1) -> Any:
        """Segment one image (returns a :class:`SegmentationResult`) or a list of images (returns a list). Images
        of any size run one at a time (``batch_size`` is accepted for the common interface)."""
        single = isinstance(images, (str, Path, bytes, torch.Tensor)) or hasattr(images, "getpixel")
        items = [images] if single else list(images)  # type: ignore[list-item]
        out = [SegmentationResult(self.logits(self.to_tensor(item)).argmax(0), self.classes,
                                  self.spec.get("label_encoding")) for item in items]
        return out[0] if single else out
