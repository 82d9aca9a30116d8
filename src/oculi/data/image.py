"""Decoding image files into the ``uint8 [3, H, W]`` RGB tensors of the sample vocabulary.

Pillow does the decoding: it reads every format we meet, applies EXIF orientation, and its JPEG ``draft`` mode
decodes large photos at 1/2–1/8 scale directly (several times faster than a full decode followed by a resize)."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from oculi.errors import DataError

if TYPE_CHECKING:  # torch is imported where a tensor is made, so `oculi --help` starts without it
    import torch

# Modes that need a conversion to RGB, with the note a data check prints for them (info, not errors).
_MODE_NOTES = {
    "L": "grayscale image, converted to RGB",
    "LA": "grayscale image with alpha, alpha dropped and converted to RGB",
    "I": "32-bit grayscale image, converted to RGB",
    "I;16": "16-bit grayscale image, converted to RGB",
    "1": "1-bit image, converted to RGB",
    "P": "palette image, converted to RGB",
    "PA": "palette image with alpha, converted to RGB",
    "RGBA": "RGBA image, alpha dropped",
    "CMYK": "CMYK image, converted to RGB",
    "YCbCr": "YCbCr image, converted to RGB",
}


@dataclass(frozen=True)
class ImageInfo:
    """What opening an image found out: its displayed size (after EXIF rotation), its mode and notes."""

    width: int
    height: int
    mode: str
    format: str | None
    notes: tuple[str, ...]


def max_file_pixels() -> int:
    """The most pixels an image file may claim (width × height in its header) before it is refused as a
    decompression bomb: Pillow's own error threshold, twice ``Image.MAX_IMAGE_PIXELS`` (about 179 Mpx unless
    changed; Pillow only warns below it, and large aerial or medium-format photos live there), or
    :data:`MAX_DECODED_PIXELS` when Pillow's limit is switched off. Request bodies have their own, lower limit
    (:func:`decode_image_bytes`)."""
    limit = Image.MAX_IMAGE_PIXELS
    return 2 * int(limit) if limit else MAX_DECODED_PIXELS


def _too_large(name: object, claim: str, limit: int) -> DataError:
    return DataError(f"{name}: {claim}, over the limit of {limit / 1e6:.0f} Mpx (a decompression bomb, or a "
                     "corrupt header); resize the image or remove it from the data.")


def _open(path: Path) -> Image.Image:
    """Open ``path`` lazily (header only); every failure, including a header claiming more pixels than
    :func:`max_file_pixels`, is a :class:`DataError` naming the file."""
    from oculi.data.formats.recordio import record_image

    limit = max_file_pixels()
    record = record_image(path)  # ``file.rec@offset``: the image inside a RecordIO record, read from the file
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the size is checked below
            img = Image.open(path if record is None else io.BytesIO(record))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except Image.DecompressionBombError as e:
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        claim = f"claims {int(pixels.group(1)) / 1e6:.0f} Mpx" if pixels else "claims too many pixels"
        raise _too_large(path, claim, limit) from None
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read (unknown or corrupt format).") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: cannot be opened ({e}).") from None
    w, h = img.size
    if w * h > limit:
        img.close()
        raise _too_large(path, f"claims a {w} × {h} image ({w * h / 1e6:.0f} Mpx)", limit)
    return img


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block is not worth failing the image for
        return 1


def _load_rgb(img: Image.Image, path: Path) -> tuple[Image.Image, list[str]]:
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as e:
            msg = str(e)
            kind = "truncated" if "truncated" in msg.lower() else "unreadable"
            raise DataError(f"{path}: {kind} image data ({msg}).") from None
    orientation = _orientation(img)
    if orientation != 1:
        img = ImageOps.exif_transpose(img)
        notes.append(f"EXIF orientation {orientation} applied")
    if img.mode != "RGB":
        notes.append(_MODE_NOTES.get(img.mode, f"{img.mode} image, converted to RGB"))
        if img.mode in ("I", "I;16", "F"):
            arr = np.asarray(img, dtype=np.float32)
            hi = float(arr.max()) or 1.0
            img = Image.fromarray((arr * (255.0 / hi)).clip(0, 255).astype(np.uint8), "L")
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        img = img.convert("RGB")
    return img, notes


def inspect_image(path: Path) -> ImageInfo:
    """Fully decode ``path`` (so truncation is caught) and describe it. Raises :class:`DataError` naming the
    file when it cannot be read."""
    path = Path(path)
    img = _open(path)
    with img:
        fmt, mode = img.format, img.mode
        rgb, notes = _load_rgb(img, path)
        if getattr(img, "n_frames", 1) > 1:
            notes.append(f"animated {fmt} with {img.n_frames} frames, first frame used")
        return ImageInfo(rgb.width, rgb.height, mode, fmt, tuple(notes))


def decode_image(path: Path, min_side: int | None = None) -> torch.Tensor:
    """Decode ``path`` into an RGB ``uint8`` tensor ``[3, H, W]`` with EXIF orientation applied.

    ``min_side``: when given, a JPEG may be decoded at a reduced scale as long as both sides stay ≥ ``min_side``
    (the caller resizes afterwards anyway). Raises :class:`DataError` naming the file on unreadable data."""
    path = Path(path)
    img = _open(path)
    with img:
        if min_side and img.format == "JPEG":
            w, h = img.size
            scale = min(w, h) / float(min_side)
            if scale >= 2:
                img.draft("RGB", (int(w / scale) + 1, int(h / scale) + 1))
        rgb, _ = _load_rgb(img, path)
        arr = np.asarray(rgb, dtype=np.uint8)
    return _chw(arr)


# Largest image a request body may decode to (about 8000 × 8000): a tiny PNG can claim 50000 × 50000 pixels and
# exhaust memory on decode, so the size in the header is checked before any pixel is decoded.
MAX_DECODED_PIXELS = 64_000_000


def decode_image_bytes(data: bytes, min_side: int | None = None, max_pixels: int = MAX_DECODED_PIXELS,
                       name: str = "the request body") -> torch.Tensor:
    """Decode encoded image bytes (JPEG, PNG, …) into an RGB ``uint8 [3, H, W]`` tensor, EXIF applied.

    The header's width × height is checked against ``max_pixels`` before decoding (a decompression bomb is refused
    without allocating its pixels); ``min_side`` allows reduced-scale JPEG decoding as in :func:`decode_image`.
    Raises :class:`DataError` naming ``name`` when the bytes are not a readable image or too large."""
    if not data:
        raise DataError(f"{name} is empty; send the encoded image bytes (JPEG or PNG).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise DataError(f"{name} claims an image too large to decode ({e}).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise DataError(f"{name} is not an image Pillow can read (unknown or corrupt format; expected JPEG or "
                        "PNG bytes).") from None
    with img:
        w, h = img.size
        if w * h > max_pixels:
            raise DataError(f"{name} claims a {w} × {h} image ({w * h / 1e6:.0f} Mpx), over the limit of "
                            f"{max_pixels / 1e6:.0f} Mpx; resize it before sending.")
        if min_side and img.format == "JPEG":
            scale = min(w, h) / float(min_side)
            if scale >= 2:
                img.draft("RGB", (int(w / scale) + 1, int(h / scale) + 1))
        rgb, _ = _load_rgb(img, Path(name))
        arr = np.asarray(rgb, dtype=np.uint8)
    return _chw(arr)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """Convert an in-memory Pillow image (any mode) to an RGB ``uint8 [3, H, W]`` tensor, EXIF applied."""
    rgb, _ = _load_rgb(img, Path(getattr(img, "filename", "") or "<image>"))
    return _chw(np.asarray(rgb, dtype=np.uint8))


def _chw(arr: np.ndarray) -> torch.Tensor:
    """An ``[H, W, 3]`` uint8 array as a contiguous ``[3, H, W]`` tensor (a copy: the array may be read-only)."""
    import torch

    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()
