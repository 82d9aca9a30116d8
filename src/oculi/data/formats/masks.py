"""Segmentation masks as PNG files, SageMaker's Semantic Segmentation layout and its label maps.

SageMaker's layout (section b.4 of the contracts)::

    train/0000.jpg  train_annotation/0000.png   (same base name; single-channel PNG, grayscale or palette "P")
    validation/…    validation_annotation/…
    label_map/train_label_map.json  label_map/validation_label_map.json   (optional)

Without a label map a pixel value is the class index. A label map either divides the values
(``{"scale": "3"}``: 0, 3, 6 → classes 0, 1, 2, floored) or lists the encoded value of each class
(``{"map": {"0": 5, "1": 0}}``: value 5 → class 0, value 0 → class 1). The value 255 means "ignore" (Pascal VOC's
border) unless a map names it or a scale turns it into a class (``{"scale": "255"}`` reads 0/255 masks). Pixels
are decoded through a 256-entry lookup table (value → class index, :data:`~oculi.types.IGNORE_INDEX`, or
:data:`UNMAPPED` for a value outside the label map, which a reader reports as an error and training would
ignore).

Every reader of segmentation data (this module, ``mask_manifest``, ``voc_masks``, ``coco_masks``) builds
:class:`~oculi.types.MaskTarget` samples and hands them to :func:`finish`, which opens each mask once and reports,
naming the file: unreadable masks, RGB masks where an index mask is expected, mask size ≠ image size, and values
outside the label map."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from oculi.errors import DataError
from oculi.types import IGNORE_INDEX, IMAGE_EXTENSIONS, Finding, MaskTarget, Sample, SampleSet

UNMAPPED = -1  # a pixel value the label map does not name (reported; ignored if it ever reaches training)
MAX_CLASSES = 254  # SageMaker's limit: 2 ≤ num_classes ≤ 254, 255 being the ignore value
_INDEX_MODES = ("P", "L", "1", "I", "I;16")


def voc_palette() -> list[tuple[int, int, int]]:
    """Pascal VOC's 256-colour palette (class 0 black, 1 dark red, …, 255 ignore = cream)."""
    colours = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours.append((r, g, b))
    return colours


def save_index_png(values: np.ndarray, path: Path, palette: Sequence[tuple[int, int, int]] | None = None) -> Path:
    """Write ``uint8 [H, W]`` ``values`` as an uncompressed-value palette (``P``) PNG (VOC colours by default):
    readers see the values themselves, viewers see colours."""
    image = Image.fromarray(np.asarray(values, dtype=np.uint8), "P")
    image.putpalette([v for rgb in (palette or voc_palette()) for v in rgb])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


# ------------------------------------------------------------------------------------------------ label maps


def read_label_map(path: Path) -> dict[str, Any]:
    """Read a SageMaker label map JSON file into its canonical form ``{"scale": float}`` or ``{"map": {class
    index (int): encoded value (int)}}``. Raises :class:`DataError` naming the file for anything else."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError, RecursionError) as e:
        raise DataError(f"{path}: cannot read the label map ({e}). Expected JSON such as {{\"scale\": \"3\"}} or "
                        "{\"map\": {\"0\": 5, \"1\": 0}}.") from None
    return parse_label_map(data, str(path))


def parse_label_map(data: Any, source: str = "label map") -> dict[str, Any]:
    """Canonical form of a label map given as a dict (``{"scale": "3"}`` / ``{"map": {"0": 5}}``, strings or
    numbers); see :func:`read_label_map`."""
    fix = "Expected {\"scale\": \"3\"} or {\"map\": {\"0\": 5, \"1\": 0, …}} (class index → encoded pixel value)."
    if not isinstance(data, dict) or len(set(data) & {"scale", "map"}) != 1:
        raise DataError(f"{source}: not a label map. {fix}")
    if "scale" in data:
        try:
            scale = float(data["scale"])
        except (TypeError, ValueError):
            scale = 0.0
        if not scale > 0:
            raise DataError(f"{source}: `scale` got {data['scale']!r}; expected a number > 0. {fix}")
        return {"scale": scale}
    mapping = data["map"]
    out: dict[int, int] = {}
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            try:
                index, encoded = int(key), int(value)
            except (TypeError, ValueError):
                raise DataError(f"{source}: map entry {key!r}: {value!r} is not an integer pair. {fix}") from None
            if not (0 <= index <= MAX_CLASSES - 1 and 0 <= encoded <= 255):
                raise DataError(f"{source}: map entry {key!r}: {value!r} is out of range (class 0–253, value "
                                f"0–255). {fix}")
            out[index] = encoded
    if not out:
        raise DataError(f"{source}: `map` must be a non-empty object. {fix}")
    if len(set(out.values())) != len(out):
        raise DataError(f"{source}: two classes share one encoded value; each class needs its own value. {fix}")
    return {"map": dict(sorted(out.items()))}


def lookup_table(encoding: dict[str, Any] | None, num_classes: int) -> tuple[int, ...]:
    """The 256-entry value → class table for ``encoding`` (None = values are class indices): class indices
    ``0 … num_classes - 1``, :data:`IGNORE_INDEX` for 255 (unless the map names it), :data:`UNMAPPED` otherwise."""
    table = [UNMAPPED] * 256
    table[255] = IGNORE_INDEX
    if encoding is None:
        for value in range(min(num_classes, 255)):
            table[value] = value
    elif "scale" in encoding:
        for value in range(256):
            index = math.floor(value / encoding["scale"])
            if index < num_classes:
                table[value] = index  # 255 too when it scales to a class (e.g. 0/255 masks with scale 255)
    else:
        for index, value in encoding["map"].items():
            table[int(value)] = int(index) if int(index) < num_classes else UNMAPPED
    return tuple(table)


def encode_classes(classes: np.ndarray, encoding: dict[str, Any] | None) -> np.ndarray:
    """Class indices ``[H, W]`` → ``uint8`` pixel values in the label encoding (the inverse of the label map;
    :data:`IGNORE_INDEX` stays 255): what a PNG prediction holds."""
    classes = np.asarray(classes, dtype=np.int64)
    if encoding is None:
        return classes.astype(np.uint8)
    table = np.full(256, 255, dtype=np.int64)
    if "scale" in encoding:
        table[:255] = np.minimum(np.ceil(np.arange(255) * encoding["scale"]), 255)
    else:
        for index, value in encoding["map"].items():
            table[int(index)] = int(value)
    return table[np.clip(classes, 0, 255)].astype(np.uint8)


def encoding_json(encoding: dict[str, Any] | None) -> dict[str, Any] | None:
    """``encoding`` with string keys (as stored in ``model.json``); :func:`parse_label_map` reads it back."""
    if encoding is None or "scale" in encoding:
        return encoding
    return {"map": {str(k): int(v) for k, v in encoding["map"].items()}}


# ------------------------------------------------------------------------------------------------ masks


def load_mask(target: MaskTarget) -> np.ndarray:
    """The ``int64 [H, W]`` class-index mask of ``target`` (:data:`IGNORE_INDEX` where ignored; values outside
    the label map are ignored too — the data check reports them). Raises :class:`DataError` naming the file."""
    if target.mask is None:
        return _rasterise(target)
    try:
        with Image.open(target.mask) as image:
            image.load()
            mode = image.mode
            if mode in ("RGB", "RGBA") and target.colors:
                rgb = np.asarray(image.convert("RGB"))
                out = np.full(rgb.shape[:2], IGNORE_INDEX, dtype=np.int64)
                for colour, index in target.colors:
                    out[(rgb == np.array(colour, dtype=np.uint8)).all(axis=-1)] = index
                return out
            if mode not in _INDEX_MODES:
                raise DataError(f"{target.mask}: a {mode} mask; expected a single-channel index PNG (mode P or L). "
                                "Run `oculi data check` for how to fix it.")
            values = np.asarray(image).astype(np.int64)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{target.mask}: cannot read the mask ({e}).") from None
    if values.max(initial=0) > 255:
        raise DataError(f"{target.mask}: mask values above 255; expected 8-bit class indices.")
    if target.lookup is not None:
        table = np.asarray(target.lookup, dtype=np.int64)
        table[table == UNMAPPED] = IGNORE_INDEX
        values = table[values]
    return values


def _rasterise(target: MaskTarget) -> np.ndarray:
    """COCO segmentations (polygons or RLE) → an ``int64 [H, W]`` mask: background 0, each annotation painted in
    order with its class index, crowd regions :data:`IGNORE_INDEX`."""
    from pycocotools import mask as coco_mask

    height, width = int(target.height or 0), int(target.width or 0)
    out = np.zeros((height, width), dtype=np.int64)
    for index, segmentation, crowd in target.polygons:
        if isinstance(segmentation, list):
            rles = coco_mask.frPyObjects([list(p) for p in segmentation], height, width)
            rle = coco_mask.merge(rles)
        elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
            rle = coco_mask.frPyObjects(segmentation, height, width)
        else:
            rle = dict(segmentation)
            if isinstance(rle.get("counts"), str):
                rle["counts"] = rle["counts"].encode()
        area = coco_mask.decode(rle).astype(bool)
        out[area] = IGNORE_INDEX if crowd else index
    return out


def _scan(path: Path, colors: bool) -> tuple[str, tuple[int, int], np.ndarray | None]:
    """``(mode, (width, height), 256-bin histogram of pixel values or None for a colour mask)``."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("RGB", "RGBA") and colors:
            return image.mode, image.size, None
        if image.mode not in _INDEX_MODES:
            return image.mode, image.size, None
        values = np.asarray(image).astype(np.int64).ravel()
    if values.max(initial=0) > 255:
        raise ValueError(f"values up to {values.max()} (16-bit); expected 8-bit class indices")
    return "index", image.size, np.bincount(values, minlength=256)


def _image_size(path: Path) -> tuple[int, int] | None:
    """The displayed ``(width, height)`` of an image (EXIF rotation applied), None when unreadable (the image
    check reports that)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            rotated = image.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except Exception:
        return None
    return (height, width) if rotated else (width, height)


_RGB_FIX = ("oculi needs a single-channel index mask (grayscale or palette \"P\" mode PNG) whose pixel values are "
            "class indices. Map each colour to its class index and save it as mode L or P, e.g. with Pillow: "
            "Image.fromarray(index_array.astype('uint8'), 'L').save(path); a Pascal VOC colour mask that was "
            "re-saved as RGB can be converted back with its palette (`oculi data convert` writes index PNGs).")


def finish(
    entries: Sequence[tuple[Path, MaskTarget, str]],
    classes: list[str] | None,
    num_classes: int | None,
    encoding: dict[str, Any] | None,
    findings: list[Finding],
    *,
    default_names: Sequence[str] | None = None,
) -> tuple[list[Sample], list[str]]:
    """Open every mask of ``entries`` (``(image, target, origin)``) once and build the samples and class names.

    The classes are ``classes`` when given (reading against the training classes), else ``num_classes`` of
    them, else as many as the data needs (label map classes, or the highest value seen + 1); names are
    ``default_names[i]`` where given, else ``str(i)``. Each sample's target gets its lookup table (from
    ``encoding``, see :func:`lookup_table`, unless it has one) and the classes ``present``. Appends findings
    (``unreadable_mask``, ``rgb_mask``, ``mask_size``, ``value_outside_label_map``) naming the mask file;
    samples whose mask cannot be read are left out."""
    scanned: list[tuple[Path, MaskTarget, str, np.ndarray | None]] = []
    for image, target, origin in entries:
        if target.mask is None:  # COCO polygons: rasterised now to know the classes present
            histogram = np.bincount(_rasterise(target).ravel(), minlength=256)
            scanned.append((image, target, origin, histogram))
            continue
        try:
            mode, size, histogram = _scan(target.mask, bool(target.colors))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            findings.append(Finding("error", "unreadable_mask", f"the mask cannot be read ({e}); the image "
                                    f"{image} is left out.", str(target.mask)))
            continue
        if histogram is None and not target.colors:
            findings.append(Finding("error", "rgb_mask", f"a {mode} mask (colours) where an index mask is "
                                    f"expected. {_RGB_FIX}", str(target.mask)))
        image_size = _image_size(image)
        if image_size is not None and image_size != size:
            findings.append(Finding("error", "mask_size", f"the mask is {size[0]}×{size[1]} px but its image "
                                    f"{image} is {image_size[0]}×{image_size[1]} px; masks must have their image's "
                                    "size (resize the mask with nearest-neighbour, never bilinear).",
                                    str(target.mask)))
        target = replace(target, width=(image_size or size)[0], height=(image_size or size)[1])
        scanned.append((image, target, origin, histogram))

    if classes is not None:
        count = len(classes)
    elif num_classes is not None:
        count = num_classes
    elif encoding is not None and "map" in encoding:
        count = max(encoding["map"]) + 1
    else:
        # 255 is the ignore value, except with a scale that makes it a class (0/255 masks with scale 255).
        keep_255 = encoding is not None and encoding["scale"] > 1
        seen = [v for _, t, _, h in scanned if h is not None and t.mask is not None for v in np.nonzero(h)[0]
                if v != 255 or keep_255]
        top = max(seen, default=0)
        count = (math.floor(top / encoding["scale"]) if encoding else int(top)) + 1
        coloured = [i for _, t, _, _ in scanned for _, i in t.colors] + \
                   [i for _, t, _, _ in scanned for i, _, _ in t.polygons]
        count = max([count, *(i + 1 for i in coloured)])
    names = list(classes) if classes is not None else [
        default_names[i] if default_names is not None and i < len(default_names) else str(i) for i in range(count)]
    table = lookup_table(encoding, count)

    samples = []
    for image, target, origin, histogram in scanned:
        lookup = target.lookup if target.lookup is not None else (table if target.mask is not None else None)
        present: set[int] = set()
        if histogram is not None:
            values = np.nonzero(histogram)[0]
            if lookup is None:
                present = {int(v) for v in values if v != IGNORE_INDEX}
                outside = [int(v) for v in values if v != IGNORE_INDEX and v >= count]
            else:
                present = {lookup[v] for v in values if lookup[v] not in (UNMAPPED, IGNORE_INDEX)}
                outside = [int(v) for v in values if lookup[v] == UNMAPPED]
            if outside:
                findings.append(Finding("error", "value_outside_label_map", _outside_message(outside, encoding,
                                                                                            count),
                                        str(target.mask or image)))
        elif target.colors:
            present = {i for _, i in target.colors}
        samples.append(Sample(image, replace(target, lookup=lookup, present=tuple(sorted(present))), origin))
    return samples, names


def _outside_message(values: list[int], encoding: dict[str, Any] | None, count: int) -> str:
    shown = ", ".join(map(str, values[:8])) + (" …" if len(values) > 8 else "")
    if encoding is None:
        rule = f"the classes are 0–{count - 1} (num_classes={count}) and 255 is ignored"
        fix = (f"pass -p num_classes={max(values) + 1} if they are classes, or set those pixels to 255 to ignore "
               "them")
    elif "scale" in encoding:
        rule = f"with scale {encoding['scale']:g} they give classes ≥ {count}"
        fix = "fix the scale in the label map or the mask values (255 = ignore)"
    else:
        rule = "the label map does not name them"
        fix = "add them to the label map's `map`, or set those pixels to 255 to ignore them"
    return f"pixel value(s) {shown} are outside the label map: {rule}. Fix: {fix}; they are ignored meanwhile."


# ------------------------------------------------------------------------------------------------ SageMaker layout


def _label_map_file(label_map: Path | None, split: str) -> Path | None:
    """The label map for ``split``: ``label_map`` itself when it is a file, else ``<split>_label_map.json`` in
    it (or its only JSON file)."""
    if label_map is None:
        return None
    label_map = Path(label_map)
    if label_map.is_file():
        return label_map
    if not label_map.is_dir():
        raise DataError(f"{label_map}: label map not found; pass a JSON file or SageMaker's label_map folder.")
    named = label_map / f"{split}_label_map.json"
    if named.is_file():
        return named
    found = sorted(label_map.glob("*.json"))
    if len(found) == 1:
        return found[0]
    raise DataError(f"{label_map}: expected {named.name} (or one JSON file); found "
                    f"{', '.join(p.name for p in found) or 'none'}.")


def read_mask_folders(
    images: Path,
    annotations: Path,
    *,
    label_map: Path | None = None,
    split: str = "train",
    classes: list[str] | None = None,
    num_classes: int | None = None,
    encoding: dict[str, Any] | None = None,
) -> SampleSet:
    """Read SageMaker's layout: ``images`` (e.g. ``train/``) and ``annotations`` (``train_annotation/``) with
    PNG masks of the same base name, decoded through the label map (``label_map``: a JSON file or SageMaker's
    ``label_map`` folder, from which ``<split>_label_map.json`` is used; without one, ``encoding`` in
    :func:`parse_label_map`'s canonical form, else none). Classes are named ``"0"``, ``"1"``, ….

    Findings: ``missing_mask`` (an image without a mask: left out), ``extra_mask`` (a mask without an image), and
    those of :func:`finish`. Raises :class:`DataError` when a folder is missing or holds no images."""
    images, annotations = Path(images), Path(annotations)
    for folder, what in ((images, "images"), (annotations, "annotation masks")):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder of {what} not found. SageMaker's layout is train/ + "
                            "train_annotation/ (PNG masks with the images' base names).")
    map_file = _label_map_file(label_map, split)
    if map_file:
        encoding = read_label_map(map_file)
    masks = {p.stem: p for p in sorted(annotations.iterdir()) if p.suffix.lower() == ".png"}
    files = [p for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise DataError(f"{images}: no images ({', '.join(IMAGE_EXTENSIONS[:4])} …).")
    findings: list[Finding] = []
    entries = []
    for image in files:
        mask = masks.get(image.stem)
        if mask is None:
            findings.append(Finding("error", "missing_mask", f"no mask {annotations / (image.stem + '.png')} for "
                                    "this image; it is left out. Add the mask or remove the image.", str(image)))
            continue
        entries.append((image, MaskTarget(mask=mask), str(image)))
    stems = {p.stem for p in files}
    for stem, mask in masks.items():
        if stem not in stems:
            findings.append(Finding("warning", "extra_mask", f"a mask without an image {images / stem}.*; it is not "
                                    "used.", str(mask)))
    samples, names = finish(entries, classes, num_classes, encoding, findings)
    return SampleSet(samples, names, task="segmentation", format="sagemaker-masks", source=str(images),
                     findings=findings, label_encoding=encoding)


def write_mask_folders(sample_set: SampleSet, images: Path, annotations: Path) -> list[Finding]:
    """Write ``sample_set`` in SageMaker's layout: images copied byte for byte into ``images``, masks as palette
    PNGs of class indices (255 = ignore, no label map needed) in ``annotations``. Class names are not part of the
    layout: returns an info finding saying so (and one per renamed duplicate base name)."""
    from oculi.data.formats.boxes import copy_image, unique_stems

    findings: list[Finding] = []
    stems = unique_stems(sample_set.samples, findings, str(images))
    for sample, stem in zip(sample_set.samples, stems, strict=True):
        copy_image(sample.image, Path(images), stem)
        save_index_png(load_mask(sample.target), Path(annotations) / f"{stem}.png")
    if any(name != str(i) for i, name in enumerate(sample_set.classes)):
        findings.append(Finding("info", "class_names_dropped", "SageMaker's mask layout has no class names; the "
                                f"masks hold class indices 0–{len(sample_set.classes) - 1} ("
                                + ", ".join(f"{i} = {n}" for i, n in enumerate(sample_set.classes[:8]))
                                + (" …" if len(sample_set.classes) > 8 else "") + ").", str(annotations)))
    return findings
