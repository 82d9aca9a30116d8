"""COCO segmentations (polygons or RLE) as semantic segmentation: each image's annotations are rasterised into
one class mask — class 0 ``background`` where nothing is annotated, category ``k`` (categories sorted by id) as
class ``k + 1``, ``iscrowd`` regions ignored (255). Later annotations paint over earlier ones.

:func:`write_coco_masks` writes each class region of a mask as one RLE annotation and ignored pixels as
``iscrowd`` annotations, so reading the file back gives the same masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from oculi.data.formats.coco import _load, placeholder_categories
from oculi.data.formats.masks import finish, load_mask
from oculi.types import IGNORE_INDEX, Finding, MaskTarget, SampleSet


def _image_file(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / "images" / name):
        if candidate.is_file():
            return candidate
    return None


def read_coco_masks(json_path: Path, image_root: Path | None = None, classes: list[str] | None = None) -> SampleSet:
    """Read a COCO file's segmentations into a segmentation :class:`SampleSet` (see the module docstring).
    ``image_root``: the folder ``file_name`` is relative to (default: the JSON's folder, then its ``images/``).
    Findings: ``missing_image``, ``no_segmentation`` (an annotation with a box only: left out), ``unknown_class``."""
    json_path = Path(json_path)
    data = _load(json_path)
    placeholders, findings = placeholder_categories(data, str(json_path))
    categories = sorted((c for c in data.get("categories", []) if c.get("id") not in placeholders),
                        key=lambda c: c["id"])
    names = ["background", *(str(c["name"]) for c in categories)]
    index = {c["id"]: i + 1 for i, c in enumerate(categories)}
    if classes is not None:
        index = {cid: classes.index(names[i]) for cid, i in index.items() if names[i] in classes}
    by_image: dict[int, list] = {}
    for ann in data.get("annotations", []):
        segmentation = ann.get("segmentation")
        if not segmentation:
            findings.append(Finding("warning", "no_segmentation", f"annotation {ann.get('id')} has no segmentation; "
                                    "it is left out.", str(json_path)))
            continue
        if ann.get("category_id") not in index:
            findings.append(Finding("error", "unknown_class", f"annotation {ann.get('id')}: category "
                                    f"{ann.get('category_id')} is not a class here; it is left out.", str(json_path)))
            continue
        by_image.setdefault(ann.get("image_id"), []).append(
            (index[ann["category_id"]], segmentation, bool(ann.get("iscrowd", 0))))
    root = Path(image_root) if image_root is not None else json_path.parent
    entries = []
    for info in data["images"]:
        image = _image_file(root, str(info.get("file_name", "")))
        if image is None:
            findings.append(Finding("error", "missing_image", f"image {info.get('file_name')} not found in {root} or "
                                    f"{root / 'images'}; it is left out.", str(json_path)))
            continue
        polygons = sorted(by_image.get(info["id"], []), key=lambda item: item[2])  # crowd regions paint last
        target = MaskTarget(polygons=tuple(polygons), width=int(info["width"]), height=int(info["height"]))
        entries.append((image, target, f"{json_path} (image {info['id']})"))
    samples, class_names = finish(entries, classes or names, None, None, findings)
    return SampleSet(samples, class_names, task="segmentation", format="coco", source=str(json_path),
                     findings=findings)


def write_coco_masks(sample_set: SampleSet, json_path: Path) -> list[Finding]:
    """Write a segmentation ``sample_set`` as COCO JSON with RLE segmentations (images referenced by absolute
    path). Class 0 is COCO's unannotated background: its name is not kept (info ``background_class``)."""
    from pycocotools import mask as coco_mask

    json_path = Path(json_path)
    findings: list[Finding] = []
    if sample_set.classes and sample_set.classes[0] != "background":
        findings.append(Finding("info", "background_class", f"class 0 ({sample_set.classes[0]!r}) becomes COCO's "
                                "unannotated background, read back as 'background'.", str(json_path)))
    categories = [{"id": i, "name": name} for i, name in enumerate(sample_set.classes) if i > 0]
    images, annotations = [], []
    for image_id, sample in enumerate(sample_set.samples, start=1):
        mask = load_mask(sample.target)
        height, width = mask.shape
        images.append({"id": image_id, "file_name": str(sample.image.resolve()), "width": width, "height": height})
        for value in np.unique(mask):
            if value == 0 or (value == IGNORE_INDEX and not categories):
                continue
            rle = coco_mask.encode(np.asfortranarray((mask == value).astype(np.uint8)))
            crowd = int(value == IGNORE_INDEX)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": categories[0]["id"] if crowd else int(value),
                                "segmentation": {"size": [height, width], "counts": rle["counts"].decode()},
                                "area": float(coco_mask.area(rle)), "bbox": [float(v) for v in coco_mask.toBbox(rle)],
                                "iscrowd": crowd})
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}),
                         encoding="utf-8")
    return findings
