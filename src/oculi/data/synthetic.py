"""Generated images with photo-like structure, for checks that need inputs but no data (ONNX export parity,
contract tests)."""

from __future__ import annotations

import numpy as np
import torch


def sample_images(count: int, height: int, width: int, seed: int) -> list[torch.Tensor]:
    """``count`` generated ``uint8 [3, height, width]`` images (smooth colour gradients, a few filled rectangles
    and discs, mild noise; seeded): inputs with photo-like structure for parity checks, no data needed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    images = []
    for _ in range(count):
        pixels = np.stack([rng.uniform(0, 255) * (xx / width) + rng.uniform(0, 255) * (yy / height)
                           for _ in range(3)], axis=-1) / 2
        for _ in range(int(rng.integers(2, 5))):
            h, w = (int(rng.integers(max(2, n // 8), max(3, n // 2))) for n in (height, width))
            y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            colour = rng.uniform(0, 255, 3)
            if rng.random() < 0.5:
                pixels[y:y + h, x:x + w] = colour
            else:
                inside = ((yy - y - h / 2) / (h / 2)) ** 2 + ((xx - x - w / 2) / (w / 2)) ** 2 <= 1
                pixels[inside] = colour
        pixels += rng.normal(0, 8, pixels.shape)
        images.append(torch.from_numpy(pixels.clip(0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous())
    return images
