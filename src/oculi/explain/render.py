"""Pictures of explanations: a heat map blended over the image (with the explained box drawn), and grids of a
convolution layer's feature maps and filters."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageDraw

HEAT_ALPHA = 0.5  # share of the heat colour in an overlay pixel where the map is 1


def heat_colours(saliency: np.ndarray) -> np.ndarray:
    """``float [H, W]`` in 0–1 → ``uint8 [H, W, 3]`` on a blue → green → yellow → red scale (jet-like)."""
    x = np.clip(saliency, 0, 1)[..., None]
    rgb = np.concatenate([np.clip(1.5 - np.abs(4 * x - 3), 0, 1), np.clip(1.5 - np.abs(4 * x - 2), 0, 1),
                          np.clip(1.5 - np.abs(4 * x - 1), 0, 1)], axis=-1)
    return (rgb * 255).astype(np.uint8)


def overlay(view: torch.Tensor, saliency: np.ndarray, box: list[float] | None = None) -> Image.Image:
    """``view`` (``uint8 [3, H, W]``) blended with the heat colours of ``saliency`` (``[H, W]``, 0–1), more where
    the map is higher; ``box`` (xyxy pixels) drawn as a white outline."""
    pixels = view.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    weight = (0.25 + 0.75 * np.clip(saliency, 0, 1))[..., None] * HEAT_ALPHA
    blended = (1 - weight) * pixels + weight * heat_colours(saliency).astype(np.float32)
    picture = Image.fromarray(blended.clip(0, 255).astype(np.uint8))
    if box is not None:
        ImageDraw.Draw(picture).rectangle(tuple(box), outline=(255, 255, 255), width=2)
    return picture


def png_bytes(picture: Image.Image) -> bytes:
    """``picture`` encoded as PNG."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def grid(tiles: np.ndarray, tile: int = 48, columns: int = 8) -> Image.Image:
    """``float [N, h, w]`` (one channel) or ``[N, h, w, 3]`` tiles, each scaled to its own 0–1 range, laid out
    ``columns`` wide at ``tile`` pixels with a 2-pixel gap."""
    count = len(tiles)
    rows = max(1, -(-count // columns))
    canvas = Image.new("RGB", (columns * (tile + 2), rows * (tile + 2)), (255, 255, 255))
    for n, values in enumerate(tiles):
        low, high = float(values.min()), float(values.max())
        scaled = ((values - low) / (high - low if high > low else 1.0) * 255).astype(np.uint8)
        mode = "RGB" if scaled.ndim == 3 else "L"
        image = Image.fromarray(scaled, mode).convert("RGB").resize((tile, tile), Image.NEAREST)
        canvas.paste(image, ((n % columns) * (tile + 2), (n // columns) * (tile + 2)))
    return canvas
