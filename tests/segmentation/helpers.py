"""Generated segmentation data: noisy non-square images whose masks are known functions of their pixels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from oculi.data.formats.masks import save_index_png

CLASSES = ["0", "1", "2"]  # background, box (red), disc (green)
COLOURS = {1: (230, 50, 50), 2: (50, 230, 50)}
# Tiny settings on the real code path: EfficientNet-Lite0 (its weights ship with oculi) at small sizes.
TINY = {"backbone": "efficientnet-lite0", "base_size": "64", "crop_size": "48", "mini_batch_size": "4",
        "validation_mini_batch_size": "4", "num_workers": "0", "epochs": "1", "learning_rate": "0.01",
        "precision_dtype": "float32"}


def shapes(size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8 [H, W, 3], mask uint8 [H, W])`` of ``size = (width, height)``: dark noise (class 0) with one
    red rectangle (class 1) and one green disc (class 2); the disc paints over the rectangle."""
    width, height = size
    image = rng.integers(0, 70, (height, width, 3)).astype(np.uint8)
    mask = np.zeros((height, width), dtype=np.uint8)
    w, h = int(rng.integers(width // 4, width // 2)), int(rng.integers(height // 4, height // 2))
    x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    mask[y:y + h, x:x + w] = 1
    r = int(rng.integers(min(size) // 8, min(size) // 4))
    cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
    yy, xx = np.mgrid[:height, :width]
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
    for value, colour in COLOURS.items():
        image[mask == value] = colour
    return image, mask


def write_layout(root: Path, split: str, count: int, seed: int, size: tuple[int, int] = (64, 48),
                 encode=None) -> Path:  # noqa: ANN001 - a value → value function
    """Write ``root/<split>/<n>.jpg`` (PNG content is lossless; JPEG would blur class colours, so .png) and
    ``root/<split>_annotation/<n>.png`` masks (values passed through ``encode`` when given); returns ``root``."""
    rng = np.random.default_rng(seed)
    (root / split).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        image, mask = shapes(size, rng)
        Image.fromarray(image).save(root / split / f"{n:03d}.png")
        values = np.vectorize(encode)(mask).astype(np.uint8) if encode else mask
        save_index_png(values, root / f"{split}_annotation" / f"{n:03d}.png")
    return root


def write_label_map(root: Path, content: dict) -> Path:
    """``root/label_map/train_label_map.json`` and ``validation_label_map.json`` holding ``content``."""
    for split in ("train", "validation"):
        path = root / "label_map" / f"{split}_label_map.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    return root / "label_map"
