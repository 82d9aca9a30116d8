"""Image statistics per file, shared by the data audit and monitoring: size, aspect ratio, brightness, contrast,
saturation, sharpness (variance of the Laplacian), entropy, channel means, format/mode, a perceptual hash and the
file's SHA-1. Pixel statistics are measured on the image scaled so its longer side is :data:`STATS_SIDE` pixels,
so they compare across resolutions; brightness, contrast, saturation and channel means are fractions of 255."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oculi.analysis.cache import RecordCache, fingerprint
from oculi.errors import DataError

STATS_SIDE = 256  # longer side, in pixels, at which pixel statistics are measured
_VERSION = 1  # bump when a statistic's definition changes: cached records of another version are recomputed


@dataclass(frozen=True)
class ImageStats:
    """Statistics of one image file. ``width``/``height``: displayed size in pixels (after EXIF rotation);
    ``aspect`` = width / height; ``brightness``: mean gray level; ``contrast``: its standard deviation;
    ``saturation``: mean HSV saturation; ``sharpness``: variance of the 3×3 Laplacian of the gray image (0–255
    scale); ``entropy``: of the gray histogram in bits (0–8; low = little information); ``channel_means``: R, G,
    B; ``colourfulness``: mean absolute difference between channels (≈0 for a grayscale picture);
    ``format``/``mode``: Pillow's, as stored; ``phash``: 64-bit DCT perceptual hash as 16 hex digits; ``sha1``:
    of the file's bytes."""

    width: int
    height: int
    aspect: float
    brightness: float
    contrast: float
    saturation: float
    sharpness: float
    entropy: float
    channel_means: tuple[float, float, float]
    colourfulness: float
    format: str
    mode: str
    phash: str
    sha1: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)


# Scalar statistics a monitor or an audit compares across a collection.
SCALARS = ("width", "height", "aspect", "brightness", "contrast", "saturation", "sharpness", "entropy",
           "colourfulness")


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    return np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2 / n)


_DCT32 = _dct_matrix(32)


def perceptual_hash(gray: Image.Image) -> str:
    """pHash: the 8×8 lowest DCT frequencies of the 32×32 gray image against their median → 16 hex digits.
    Re-encoding, resizing and small crops change few of the 64 bits (compare with :func:`hamming`)."""
    small = np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = (_DCT32 @ small @ _DCT32.T)[:8, :8].ravel()
    bits = low > np.median(low[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def hamming(a: str, b: str) -> int:
    """Bits that differ between two :func:`perceptual_hash` values."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def compute_stats(path: Path) -> ImageStats:
    """Decode ``path`` and measure it. Raises :class:`~oculi.errors.DataError` naming the file when it cannot be
    decoded."""
    from oculi.data.image import _load_rgb, _open

    path = Path(path)
    data = path.read_bytes()
    img = _open(path)
    with img:
        fmt, mode = img.format or "", img.mode
        stored = img.size
        if img.format == "JPEG":
            img.draft("RGB", (STATS_SIDE * 2, STATS_SIDE * 2))
        rgb, _ = _load_rgb(img, path)
    # the displayed size is the stored one, turned when EXIF rotated the picture (draft may have shrunk `rgb`)
    turned = (rgb.width > rgb.height) != (stored[0] > stored[1]) and stored[0] != stored[1]
    width, height = stored[::-1] if turned else stored
    scale = STATS_SIDE / max(rgb.size)
    if scale < 1:
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                         Image.Resampling.BILINEAR)
    arr = np.asarray(rgb, dtype=np.float32)
    gray_img = rgb.convert("L")
    gray = np.asarray(gray_img, dtype=np.float32)
    lap = (gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4 * gray[1:-1, 1:-1]) \
        if min(gray.shape) > 2 else np.zeros(1, np.float32)
    hist = np.bincount(gray.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / hist.sum()
    hsv = np.asarray(rgb.convert("HSV"), dtype=np.float32)
    means = arr.reshape(-1, 3).mean(0) / 255
    colourful = (np.abs(arr[..., 0] - arr[..., 1]) + np.abs(arr[..., 1] - arr[..., 2])).mean() / 2 / 255
    return ImageStats(
        width=int(width), height=int(height), aspect=width / height, brightness=float(gray.mean() / 255),
        contrast=float(gray.std() / 255), saturation=float(hsv[..., 1].mean() / 255), sharpness=float(lap.var()),
        entropy=float(-(p * np.log2(p)).sum()), channel_means=(float(means[0]), float(means[1]), float(means[2])),
        colourfulness=float(colourful), format=fmt, mode=mode, phash=perceptual_hash(gray_img),
        sha1=hashlib.sha1(data).hexdigest())


def collect_stats(paths: Sequence[Path], *, workers: int = 2, cache: bool = True,
                  advance: Callable[[int], None] | None = None) -> dict[Path, ImageStats | DataError]:
    """Statistics of every file (each once), from the per-fingerprint cache where it has them; a file that does
    not decode maps to its :class:`~oculi.errors.DataError`. ``advance(n)`` is called as files are done (a
    progress bar)."""
    store = RecordCache(f"stats-v{_VERSION}", enabled=cache)
    unique = list(dict.fromkeys(Path(p) for p in paths))
    out: dict[Path, ImageStats | DataError] = {}
    todo: list[tuple[Path, str]] = []
    for path in unique:
        try:
            key = fingerprint(path)
        except OSError as e:
            out[path] = DataError(f"{path}: cannot be read ({e}).")
            continue
        record = store.get(key)
        if record is not None:
            out[path] = ImageStats(**{**record, "channel_means": tuple(record["channel_means"])})
        else:
            todo.append((path, key))
    if advance:
        advance(len(unique) - len(todo))

    def one(item: tuple[Path, str]) -> tuple[Path, str, ImageStats | DataError]:
        try:
            return item[0], item[1], compute_stats(item[0])
        except (DataError, OSError) as e:
            return item[0], item[1], e if isinstance(e, DataError) else DataError(f"{item[0]}: {e}")

    with ThreadPoolExecutor(max(1, workers)) as pool:
        for path, key, result in pool.map(one, todo):
            out[path] = result
            if isinstance(result, ImageStats):
                store.put(key, result.to_dict())
            if advance:
                advance(1)
    store.save()
    return out
