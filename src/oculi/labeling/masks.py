"""Mask files of segmentation labeling jobs: one indexed (palette) PNG per image at the image's full size, pixel
value = class index, palette = the job's class colours. Human and machine labels live where Ground Truth puts
them (``OUTPUT/annotations/consolidated-annotation/output/<index>.png``); model proposals beside them in
``OUTPUT/annotations/proposals/``. Every write goes to a temporary file first and is renamed into place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from oculi.data.formats.masks import save_index_png, voc_palette
from oculi.errors import DataError

MAX_PIXELS = 50_000_000


def mask_path(output: Path, idx: int) -> Path:
    """Where item ``idx``'s label mask is written."""
    return Path(output) / "annotations" / "consolidated-annotation" / "output" / f"{idx}.png"


def proposal_path(output: Path, idx: int) -> Path:
    """Where item ``idx``'s pre-label mask (a model's) is written."""
    return Path(output) / "annotations" / "proposals" / f"{idx}.png"


def palette(num_classes: int) -> list[tuple[int, int, int]]:
    """The class colours (Pascal VOC's palette: 0 black, 1 dark red, 2 green, …)."""
    return voc_palette()[: max(num_classes, 1)]


def save_mask(values: np.ndarray, path: Path, num_classes: int) -> Path:
    """Write ``uint8 [H, W]`` class indices as an indexed PNG at ``path`` (temp file + rename). Values ≥
    ``num_classes`` are a DataError."""
    values = np.asarray(values, dtype=np.uint8)
    if values.size and int(values.max()) >= num_classes:
        raise DataError(f"mask for {path.name} holds class {int(values.max())}, but the job has {num_classes} "
                        f"classes (0–{num_classes - 1}); repaint with one of its classes.")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        save_index_png(values, Path(tmp), voc_palette())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_values(path: Path) -> np.ndarray:
    """The ``uint8 [H, W]`` class indices of a mask written by :func:`save_mask`."""
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.uint8)


def decode_runs(body: bytes, width: int, height: int) -> np.ndarray:
    """The console's mask upload — run-length pairs ``(value uint8, count uint32 little-endian)`` packed as 5
    bytes each, row-major — as ``uint8 [height, width]``. A DataError when the runs do not cover the image."""
    if width * height > MAX_PIXELS or len(body) % 5:
        raise DataError(f"mask upload of {len(body)} bytes is not whole (value, count) runs for a {width}×{height} "
                        "image; reload the page and paint again.")
    runs = np.frombuffer(body, dtype=np.dtype([("value", "u1"), ("count", "<u4")]))
    if int(runs["count"].sum()) != width * height:
        raise DataError(f"mask upload covers {int(runs['count'].sum())} pixels, the image has {width * height}; "
                        "reload the page and paint again.")
    return np.repeat(runs["value"], runs["count"]).reshape(height, width)


def encode_runs(values: np.ndarray) -> bytes:
    """The inverse of :func:`decode_runs` (what the page receives for an existing mask)."""
    flat = np.asarray(values, dtype=np.uint8).ravel()
    if flat.size == 0:
        return b""
    starts = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1])
    counts = np.diff(np.concatenate([starts, [flat.size]]))
    runs = np.empty(len(starts), dtype=np.dtype([("value", "u1"), ("count", "<u4")]))
    runs["value"], runs["count"] = flat[starts], counts
    return runs.tobytes()
