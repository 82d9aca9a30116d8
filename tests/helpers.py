"""Helpers shared by the tests: tiny generated image datasets and the tiny training configuration."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Three visually distinct classes: a tiny model separates them in one or two epochs.
COLOURS = {"circle": (220, 40, 40), "square": (40, 200, 40), "stripes": (40, 40, 220)}


def draw(kind: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A noisy ``size``×``size`` RGB image of one of the COLOURS classes."""
    base = rng.integers(0, 60, (size, size, 3)).astype(np.uint8)
    yy, xx = np.mgrid[:size, :size]
    if kind == "circle":
        mask = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2
    elif kind == "square":
        mask = (abs(yy - size / 2) < size / 4) & (abs(xx - size / 2) < size / 4)
    else:
        mask = (xx // max(1, size // 8)) % 2 == 0
    base[mask] = COLOURS[kind]
    return Image.fromarray(base, "RGB")


def make_class_folders(root: Path, per_class: int = 12, size: int = 32, seed: int = 0,
                       classes: tuple[str, ...] = tuple(COLOURS)) -> Path:
    """Write ``root/<class>/<n>.png`` for each class; returns ``root``."""
    rng = np.random.default_rng(seed)
    for kind in classes:
        (root / kind).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            draw(kind, size, rng).save(root / kind / f"{kind}_{n:03d}.png")
    return root


# Settings that make image-classification tiny and fast on CPU (same code path as the real configuration).
TINY = {"epochs": "1", "image_shape": "3,32,32", "num_layers": "20", "mini_batch_size": "8", "num_workers": "0",
        "learning_rate": "0.05"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a test server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
