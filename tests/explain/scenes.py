"""Generated data with a known answer for the explanation tests: the evidence sits in one known region."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PATCH_COLOURS = {"green": (40, 220, 40), "blue": (50, 60, 235)}


def patch_image(colour: str, size: int, patch: int, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, ...]]:
    """Dark noise with one ``patch × patch`` square of ``colour`` at a random place on an 8-pixel grid (``none``:
    no square); returns the image and the square ``(x0, y0, x1, y1)``."""
    pixels = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    x, y = (int(v) * 8 for v in rng.integers(0, (size - patch) // 8 + 1, 2))
    if colour != "none":
        pixels[y:y + patch, x:x + patch] = PATCH_COLOURS[colour]
    return Image.fromarray(pixels), (x, y, x + patch, y + patch)


def write_patch_folders(root: Path, per_class: int, size: int, patch: int, seed: int) -> dict[str, tuple[int, ...]]:
    """``root/<colour>/<n>.png`` (the class is the patch's colour, or ``none``: without a patch, so that every
    colour class needs its patch as evidence); returns each coloured file's patch box by path."""
    rng = np.random.default_rng(seed)
    boxes = {}
    for colour in (*PATCH_COLOURS, "none"):
        (root / colour).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            image, box = patch_image(colour, size, patch, rng)
            path = root / colour / f"{n:03d}.png"
            image.save(path)
            if colour != "none":
                boxes[str(path)] = box
    return boxes
