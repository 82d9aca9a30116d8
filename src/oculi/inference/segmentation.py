"""Predictor for semantic-segmentation bundles: decode → long side rescaled to ``base_size`` → network → logits
scaled back to the original image size → class-index mask, and its SageMaker-style renderings (a PNG in the label
encoding, JSON with per-class pixel fractions, a colour overlay with a legend)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageDraw

from oculi.data.formats.masks import encode_classes, voc_palette
from oculi.data.transforms import normalize
from oculi.inference.predictor import Predictor

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

    task: ClassVar[str] = "segmentation"
    default_batch_size: ClassVar[int] = 4

    def network(self) -> torch.nn.Module:
        """The whole segmentation network: normalised ``float32 [B, 3, H, W]`` (any ``H, W ≥ 16``) → logits
        ``[B, num_classes, H, W]``."""
        return self.model

    def scaled(self, image: torch.Tensor) -> torch.Tensor:
        """``uint8 [3, H, W]`` → ``uint8 [3, h, w]`` with the long side at the bundle's ``base_size`` (aspect
        kept, antialiased), the size the network sees."""
        from oculi.data.transforms import scale_long_side

        return scale_long_side(image, image[:1], float(self.spec["base_size"]))[0]

    @torch.inference_mode()
    def logits_of_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Scaled ``uint8 [B, 3, h, w]`` images (:meth:`scaled`, all one size) → logits ``float32 [B, C, h, w]``
        on the model's device."""
        inputs = normalize(batch.to(self.device), tuple(self.spec["mean"]), tuple(self.spec["std"]))
        return self.runtime(inputs)[0].to(self.device)

    @torch.inference_mode()
    def logits(self, image: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """``uint8 [3, H, W]`` → ``float32 [C, h, w]`` logits at ``size`` (default ``(H, W)``), the network having
        seen the image with its long side at ``base_size``."""
        return _resize(self.logits_of_batch(self.scaled(image)[None])[0], size or tuple(image.shape[-2:])).cpu()

    def predict_batch(self, images: list[torch.Tensor], **options: Any) -> list[SegmentationResult]:
        """``uint8 [3, H, W]`` images → one :class:`SegmentationResult` each, in order; images whose scaled sizes
        agree (e.g. images of one size) run through the network as one batch."""
        scaled = [self.scaled(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(scaled):
            groups.setdefault(tuple(image.shape), []).append(index)
        masks: dict[int, torch.Tensor] = {}
        for members in groups.values():
            logits = self.logits_of_batch(torch.stack([scaled[i] for i in members]))
            for index, value in zip(members, logits, strict=True):
                masks[index] = _resize(value, tuple(images[index].shape[-2:])).argmax(0).cpu()
        return [SegmentationResult(masks[i], self.classes, self.spec.get("label_encoding"))
                for i in range(len(images))]

def _resize(logits: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``[C, h, w]`` logits → ``float32 [C, H, W]`` at ``size = (H, W)``, bilinear."""
    from torch.nn import functional as F  # noqa: N812

    return F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=False)[0]
