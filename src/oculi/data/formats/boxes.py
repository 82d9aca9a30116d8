"""Helpers shared by the detection formats: image sizes, box clean-up, class tables and output file names.

Every detection reader turns its own box encoding into ``xyxy`` absolute pixels (origin top-left, x right, y down,
``x1``/``y1`` exclusive edges, floats) and hands the boxes to :func:`clean_box`; every writer converts back from
that. No other module converts coordinates."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from oculi.types import IMAGE_EXTENSIONS, BoxTarget, Finding, Sample, SampleSet

Box = tuple[float, float, float, float]
CLIP_TOLERANCE = 0.01


def image_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` in pixels as displayed, read from the image header only (EXIF orientations 5–8 swap
    width and height); None when the file cannot be opened."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            try:
                orientation = int(img.getexif().get(0x0112, 1) or 1)
            except Exception:  # a broken EXIF block: treat as upright, the data check reports it
                orientation = 1
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
        # a corrupt header or a decompression bomb: the data check decodes the image and names the problem
        return None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def target_size(sample: Sample) -> tuple[int, int] | None:
    """The ``(width, height)`` of a detection sample: from its target when known, else from the image header."""
    target = sample.target
    if isinstance(target, BoxTarget) and target.width and target.height:
        return target.width, target.height
    return image_size(sample.image)


def clean_box(
    box: Box, size: tuple[int, int] | None, where: str, line: int | None, findings: list[Finding]
) -> Box | None:
    """Clip an ``xyxy`` pixel box to the image (``size`` = ``(width, height)``; no clipping when unknown) and
    drop it when it has no area left. Both are reported: ``box_clipped`` (info; not for overshoots below
    ``CLIP_TOLERANCE`` px, which are rounding noise of normalised formats) and ``empty_box`` (warning)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if size is not None:
        width, height = size
        clipped = (min(max(x0, 0.0), width), min(max(y0, 0.0), height),
                   min(max(x1, 0.0), width), min(max(y1, 0.0), height))
        moved = max(abs(a - b) for a, b in zip(clipped, (x0, y0, x1, y1), strict=True))
        if moved > CLIP_TOLERANCE and clipped[2] > clipped[0] and clipped[3] > clipped[1]:
            findings.append(Finding(
                "info", "box_clipped",
                f"box {_fmt((x0, y0, x1, y1))} reaches outside the {width}×{height} image; clipped to "
                f"{_fmt(clipped)}.", where, line))
        x0, y0, x1, y1 = clipped
    if x1 <= x0 or y1 <= y0:
        findings.append(Finding(
            "warning", "empty_box",
            f"box {_fmt(box)} (xyxy pixels) has no area inside the image and is left out. Fix its coordinates "
            "in the annotation if the object should count.", where, line))
        return None
    return x0, y0, x1, y1


def _fmt(box: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def number(value: float) -> int | float:
    """``value`` as an ``int`` when whole, else a float rounded to 1e-6 (keeps written files readable)."""
    rounded = round(float(value), 6)
    return int(rounded) if rounded.is_integer() else rounded


def class_table(
    names_by_id: dict[int, str], unnamed: set[int], classes: list[str] | None
) -> tuple[list[str], dict[int, int], tuple[int, ...] | None]:
    """Map a format's class ids to contiguous class indices.

    ``names_by_id``: every class id the format declares or uses, with its name (``str(id)`` for ids in
    ``unnamed``, which have no name). Without ``classes``: the classes are the ids sorted, and the third value
    records the original id of each index so a writer of the same format can restore it. With ``classes`` (read
    against training classes): named ids map by name, unnamed ids index into ``classes``; ids that match nothing
    are absent from the map (the reader reports them as ``unknown_class``)."""
    if classes is None:
        ids = sorted(names_by_id)
        return [names_by_id[i] for i in ids], {class_id: i for i, class_id in enumerate(ids)}, tuple(ids)
    index = {name: i for i, name in enumerate(classes)}
    mapping = {}
    for class_id, name in names_by_id.items():
        if class_id in unnamed:
            if 0 <= class_id < len(classes):
                mapping[class_id] = class_id
        elif name in index:
            mapping[class_id] = index[name]
    return list(classes), mapping, None


def unknown_class(class_id: int | str, classes: list[str], where: str, line: int | None) -> Finding:
    """The error finding for a box whose class is not one of ``classes`` (the box is left out)."""
    return Finding(
        "error", "unknown_class",
        f"class {class_id!r} is not one of the classes read against ({', '.join(classes)}); the box is left out. "
        "Add the class to the training data or fix the label.", where, line)


def beyond_num_classes(class_id: int, num_classes: int, where: str, line: int | None) -> Finding:
    """The error finding for a box whose class id is at or above ``num_classes`` (the box is left out)."""
    return Finding(
        "error", "label_out_of_range",
        f"class id {class_id} is outside the class ids (0–{num_classes - 1}, from num_classes={num_classes}); the "
        f"box is left out. Fix the label, or pass -p num_classes={class_id + 1} if there are that many classes.",
        where, line)


def output_ids(sample_set: SampleSet, fmt: str, first: int, findings: list[Finding], where: str) -> list[int]:
    """The class id to write for each class index: the original ids when ``sample_set`` was read from the same
    format ``fmt`` (so a round trip restores sparse ids), else ``first + index``. Renumbering is reported once."""
    original = sample_set.class_ids
    if original is not None and sample_set.format == fmt and len(original) == len(sample_set.classes):
        return list(original)
    ids = [first + i for i in range(len(sample_set.classes))]
    if original is not None and list(original) != ids:
        pairs = ", ".join(f"{n!r} {a}→{b}" for n, a, b in zip(sample_set.classes, original, ids, strict=True)
                          if a != b)
        findings.append(Finding(
            "info", "class_ids_renumbered",
            f"class ids written as {first}…{first + len(ids) - 1} in class order (names kept): {pairs}.", where))
    return ids


def unique_stems(samples: list[Sample], findings: list[Finding], where: str) -> list[str]:
    """A file stem per sample (its image's stem), suffixed ``_2``, ``_3``… where two images share a stem, since
    per-image annotation files are named after the image. Each renaming is an info finding."""
    seen: dict[str, int] = {}
    taken = {s.image.stem for s in samples}
    stems = []
    for sample in samples:
        stem = sample.image.stem
        if stem in seen:
            n = seen[stem]
            while f"{stem}_{n}" in taken:
                n += 1
            seen[stem] = n + 1
            new = f"{stem}_{n}"
            taken.add(new)
            findings.append(Finding(
                "info", "renamed",
                f"{sample.image} shares its file name with another image; written as {new}{sample.image.suffix}.",
                where))
            stem = new
        else:
            seen[stem] = 2
        stems.append(stem)
    return stems


def copy_image(image: Path, folder: Path, stem: str) -> Path:
    """Copy ``image`` byte for byte (``shutil.copy2``, never re-encoded) to ``folder/<stem><suffix>``."""
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / f"{stem}{image.suffix}"
    shutil.copy2(image, destination)
    return destination


def find_image(folder: Path, stem: str) -> Path | None:
    """The image file ``folder/<stem>.<image extension>`` (any case of the extension), or None."""
    for ext in IMAGE_EXTENSIONS:
        for candidate in (folder / f"{stem}{ext}", folder / f"{stem}{ext.upper()}"):
            if candidate.is_file():
                return candidate
    return None
