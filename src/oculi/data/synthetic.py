"""Generated images with photo-like structure, for checks that need inputs but no data (ONNX export parity,
contract tests)."""

from __future__ import annotations

from pathlib import Path

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


# --- tiny generated datasets, one per task, in each task's main on-disk format --------------------------------
# The scenes: dark noise with one red rectangle (class 1 "box") and one green disc (class 2 "disc"); a tiny model
# learns them in a few steps. Contract tests train every registered algorithm on these (through DataTask.synthesize).
_RED, _GREEN = (230, 50, 50), (50, 230, 50)


def _scene(width: int, height: int, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int, int]],
                                                                        np.ndarray]:
    """``(image uint8 [H, W, 3], boxes [(class, x0, y0, x1, y1)], mask uint8 [H, W])``; classes 1 = box, 2 = disc."""
    image = rng.integers(0, 70, (height, width, 3)).astype(np.uint8)
    mask = np.zeros((height, width), dtype=np.uint8)
    w, h = int(rng.integers(width // 4, width // 2)), int(rng.integers(height // 4, height // 2))
    x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    mask[y:y + h, x:x + w] = 1
    r = int(rng.integers(min(width, height) // 8, min(width, height) // 5))
    cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
    yy, xx = np.mgrid[:height, :width]
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 2
    image[mask == 1], image[mask == 2] = _RED, _GREEN
    return image, [(1, x, y, x + w, y + h), (2, cx - r, cy - r, cx + r + 1, cy + r + 1)], mask


def write_classification_data(root: Path, seed: int = 0, per_class: int = 8, size: int = 32) -> dict[str, Path]:
    """Class folders ``root/{train,validation}/{box,disc}/*.png`` (one shape per image); returns the channels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {}
    for split, count in (("train", per_class), ("validation", max(2, per_class // 2))):
        for label, name in ((1, "box"), (2, "disc")):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                image, _, mask = _scene(size, size, rng)
                image[(mask != 0) & (mask != label)] = rng.integers(0, 70, 3)
                Image.fromarray(image).save(folder / f"{n:03d}.png")
        channels[split] = root / split
    return channels


def write_detection_data(root: Path, seed: int = 0, count: int = 16, size: tuple[int, int] = (128, 96)
                         ) -> dict[str, Path]:
    """COCO files ``root/{train,validation}/annotations.json`` with their images (classes box, disc)."""
    import json

    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {}
    for split, n_images in (("train", count), ("validation", max(2, count // 4))):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(n_images):
            image, boxes, _ = _scene(*size, rng)
            Image.fromarray(image).save(folder / f"{i:03d}.png")
            images.append({"id": i + 1, "file_name": f"{i:03d}.png", "width": size[0], "height": size[1]})
            annotations += [{"id": len(annotations) + 1, "image_id": i + 1, "category_id": c,
                             "bbox": [x0, y0, x1 - x0, y1 - y0]} for c, x0, y0, x1, y1 in boxes]
        path = folder / "annotations.json"
        path.write_text(json.dumps({"images": images, "annotations": annotations,
                                    "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "disc"}]}))
        channels[split] = path
    return channels


def write_segmentation_data(root: Path, seed: int = 0, count: int = 8, size: tuple[int, int] = (64, 48)
                            ) -> dict[str, Path]:
    """SageMaker's mask layout under ``root``: ``train/``, ``train_annotation/``, ``validation/``,
    ``validation_annotation/`` (index PNGs: 0 background, 1 box, 2 disc); returns the four channels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    channels = {}
    for split, n_images in (("train", count), ("validation", max(2, count // 4))):
        for sub in (split, f"{split}_annotation"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n_images):
            image, _, mask = _scene(*size, rng)
            Image.fromarray(image).save(root / split / f"{i:03d}.png")
            Image.fromarray(mask, "L").save(root / f"{split}_annotation" / f"{i:03d}.png")
        channels[split], channels[f"{split}_annotation"] = root / split, root / f"{split}_annotation"
    return channels
