"""Augmented manifests of semantic segmentation labels (Ground Truth's semantic-segmentation output)::

    {"source-ref": "s3://b/city.png", "city-streets-ref": "s3://b/mask.png",
     "city-streets-ref-metadata": {"internal-color-map": {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"},
                                                          "1": {"class-name": "buildings", "hex-color": "#2acf59"}},
                                   "type": "groundtruth/semantic-segmentation", …}}

The label attribute is the one key ending in ``-ref`` besides ``source-ref``/``image-ref``. The mask is a palette
(or grayscale) PNG whose values are the colour map's class ids; an RGB mask is decoded by the ``hex-color`` of
each class. Class names come from ``internal-color-map`` (merged over all lines). Mask and image references are
resolved like classification manifests' (local paths, ``file://``, ``s3://`` through ``image_roots``)."""

from __future__ import annotations

import json
from pathlib import Path

from oculi.data.formats.manifest import IMAGE_ATTRIBUTES, _open_records, _resolve, _s3_prefixes, _whole
from oculi.data.formats.masks import finish, load_mask, save_index_png, voc_palette
from oculi.errors import DataError
from oculi.types import Finding, MaskTarget, SampleSet

SEGMENTATION_TYPE = "groundtruth/semantic-segmentation"


def _hex(colour: str) -> tuple[int, int, int] | None:
    text = colour.strip().lstrip("#") if isinstance(colour, str) else ""
    if len(text) != 6:
        return None
    try:
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)
    except ValueError:
        return None


def read_mask_manifest(
    path: Path,
    image_roots: dict[str, Path] | None = None,
    classes: list[str] | None = None,
    num_classes: int | None = None,
    label_attribute: str | None = None,
) -> SampleSet:
    """Read a ``-ref`` segmentation manifest into a segmentation :class:`SampleSet` (see the module docstring).

    Bad lines are error findings naming the manifest and line (``bad_json``, ``missing_image``, ``missing_mask``)
    and are left out; the masks are checked by :func:`~oculi.data.formats.masks.finish`. Raises
    :class:`DataError` when the file is missing, empty or has no (or several) ``-ref`` label attributes."""
    path = Path(path)
    prefixes = _s3_prefixes(image_roots)
    findings: list[Finding] = []
    records = _open_records(path, findings)
    candidates = sorted({k for _, r in records for k in r if k.endswith("-ref") and k not in IMAGE_ATTRIBUTES})
    attribute = label_attribute or (candidates[0] if len(candidates) == 1 else None)
    if attribute is None:
        raise DataError(f"{path}: {'no' if not candidates else len(candidates)} mask attribute(s) ending in `-ref` "
                        f"({', '.join(candidates) or 'none'}); each line needs \"source-ref\" and one \"<name>-ref\" "
                        "with the mask PNG.")
    names: dict[int, str] = {}
    colours: dict[int, tuple[int, int, int]] = {}
    entries = []
    for lineno, record in records:
        metadata = record.get(f"{attribute}-metadata")
        colour_map = metadata.get("internal-color-map") if isinstance(metadata, dict) else None
        for key, entry in (colour_map or {}).items():
            index = _whole(key)
            if index is not None and isinstance(entry, dict):
                if isinstance(entry.get("class-name"), str):
                    names.setdefault(index, entry["class-name"])
                rgb = _hex(entry.get("hex-color", ""))
                if rgb is not None:
                    colours.setdefault(index, rgb)
        ref = next((record[k] for k in IMAGE_ATTRIBUTES if k in record), None)
        mask_ref = record.get(attribute)
        if not isinstance(ref, str) or not isinstance(mask_ref, str):
            findings.append(Finding("error", "missing_attribute", f"each line needs \"source-ref\" and \"{attribute}\" "
                                    "references; it is left out.", str(path), lineno))
            continue
        image, fix = _resolve(ref, path.parent, prefixes)
        if image is None:
            findings.append(Finding("error", "missing_image", f"image {ref} not found: {fix}.", str(path), lineno))
            continue
        mask, fix = _resolve(mask_ref, path.parent, prefixes)
        if mask is None:
            findings.append(Finding("error", "missing_mask", f"mask {mask_ref} not found: {fix}.", str(path), lineno))
            continue
        entries.append((image, mask, f"{path}:{lineno}"))
    colour_pairs = tuple((rgb, index) for index, rgb in sorted(colours.items()))
    targets = [(image, MaskTarget(mask=mask, colors=colour_pairs), origin) for image, mask, origin in entries]
    count = num_classes or (max(names) + 1 if names else None)
    default = [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]
    samples, class_names = finish(targets, classes, count, None, findings, default_names=default)
    return SampleSet(samples, class_names, task="segmentation", format="manifest", source=str(path),
                     findings=findings)


def write_mask_manifest(sample_set: SampleSet, path: Path, label_attribute: str = "label-ref") -> list[Finding]:
    """Write a segmentation ``sample_set`` as a Ground-Truth-style manifest: masks as palette PNGs of class ids
    in ``<manifest folder>/masks/`` (VOC colours; 255 = ignore), one line per image with ``source-ref`` and
    ``<label_attribute>`` (absolute paths) and an ``internal-color-map`` naming every class."""
    path = Path(path)
    palette = voc_palette()
    colour_map = {str(i): {"class-name": name, "hex-color": "#{:02x}{:02x}{:02x}".format(*palette[i])}
                  for i, name in enumerate(sample_set.classes)}
    rows = []
    for n, sample in enumerate(sample_set.samples):
        mask = save_index_png(load_mask(sample.target), path.parent / "masks" / f"{n:06d}-{sample.image.stem}.png")
        rows.append(json.dumps({"source-ref": str(sample.image.resolve()), label_attribute: str(mask.resolve()),
                                f"{label_attribute}-metadata": {"internal-color-map": colour_map,
                                                                "type": SEGMENTATION_TYPE}}) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rows), encoding="utf-8")
    return []
