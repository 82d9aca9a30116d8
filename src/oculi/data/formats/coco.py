"""COCO object detection JSON: one file with ``images`` (``id``, ``file_name``, ``width``, ``height``),
``annotations`` (``image_id``, ``category_id``, ``bbox``, ``iscrowd``) and ``categories`` (``id``, ``name``).

``bbox`` is ``[x, y, width, height]`` in pixels (origin top-left) and becomes ``xyxy`` pixels
``(x, y, x + width, y + height)``. Category ids are often sparse (COCO's 80 classes use ids 1–90): the classes are
the categories sorted by id, and ``SampleSet.class_ids`` keeps the original ids so :func:`write_coco` restores
them. ``file_name`` is relative to an image root (by default the JSON's folder, then its ``images/``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oculi.data.formats.boxes import class_table, clean_box, image_size, number, output_ids, target_size, unknown_class
from oculi.errors import DataError
from oculi.types import BoxTarget, Finding, Sample, SampleSet

FORMAT = "coco"


def is_coco(path: Path) -> bool:
    """True when ``path`` is a JSON file holding an object with ``images`` and ``annotations`` lists."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError, UnicodeDecodeError, OSError):
        return False
    return isinstance(data, dict) and isinstance(data.get("images"), list) and "annotations" in data


def placeholder_categories(data: dict[str, Any], where: str) -> tuple[set[Any], list[Finding]]:
    """The ids of placeholder categories in COCO ``data`` and an info finding naming them: a category no
    annotation uses whose name is the ``supercategory`` of other categories — Roboflow writes one, id 0, named
    after the dataset (``{"id": 0, "name": "bees-x1", "supercategory": "none"}`` above ``{"id": 1, "name": "bee",
    "supercategory": "bees-x1"}``). Readers leave them out, so they do not become an empty class."""
    categories = [c for c in data.get("categories") or [] if isinstance(c, dict)]
    used = {a.get("category_id") for a in data.get("annotations") or [] if isinstance(a, dict)}
    parents = {c.get("supercategory") for c in categories if isinstance(c.get("supercategory"), str)}
    placeholders = [c for c in categories if c.get("id") not in used and isinstance(c.get("name"), str)
                    and c.get("name") in parents
                    and any(o is not c and o.get("supercategory") == c.get("name") for o in categories)]
    if not placeholders:
        return set(), []
    shown = ", ".join(f"{c.get('id')} {c.get('name')!r}" for c in placeholders)
    finding = Finding("info", "placeholder_category",
                      f"category {shown} is not used by any annotation and is only the supercategory of the others "
                      "(Roboflow writes one named after the dataset); it is left out, not made an empty class.",
                      where)
    return {c.get("id") for c in placeholders}, [finding]


def _load(json_path: Path) -> dict[str, Any]:
    if not json_path.is_file():
        raise DataError(f"{json_path}: COCO annotation file not found.")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise DataError(f"{json_path}: not valid JSON ({e}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataError(
            f"{json_path}: not a COCO file; expected an object with \"images\", \"annotations\" and \"categories\" "
            "lists."
        )
    for key in ("annotations", "categories"):
        if data.get(key) is not None and not isinstance(data[key], list):
            raise DataError(f"{json_path}: \"{key}\" is {type(data[key]).__name__} {data[key]!r:.40}; a COCO file "
                            f"holds a list of objects there. Fix \"{key}\" (or write [] when there are none).")
    for key, id_keys in (("images", ("id",)), ("annotations", ("id", "image_id", "category_id")),
                         ("categories", ("id",))):
        for entry in data.get(key) or []:
            for id_key in id_keys if isinstance(entry, dict) else ():
                if isinstance(entry.get(id_key), (list, dict)):  # an id must be usable as a key; keep it as text
                    entry[id_key] = json.dumps(entry[id_key])
    return data


def read_coco(json_path: Path, image_root: Path | None = None, classes: list[str] | None = None) -> SampleSet:
    """Read a COCO JSON file into a detection :class:`SampleSet` (targets: :class:`BoxTarget`, ``xyxy``
    absolute pixels; see the module docstring).

    ``image_root``: the folder ``file_name`` is relative to (default: the JSON's folder, then its ``images/``).
    Images without annotations are kept as negatives; ``iscrowd`` boxes are kept and noted (info ``iscrowd``);
    an unused placeholder category (Roboflow's, see :func:`placeholder_categories`) is left out (info
    ``placeholder_category``).
    Findings: ``missing_image``, ``bad_box``, ``unknown_image`` (an annotation whose ``image_id`` is not listed),
    ``unknown_class``, ``empty_box``, ``box_clipped``. Raises :class:`DataError` when the file is missing or is
    not COCO."""
    json_path = Path(json_path)
    data = _load(json_path)
    where = str(json_path)
    roots = [Path(image_root)] if image_root is not None else [json_path.parent, json_path.parent / "images"]
    placeholders, findings = placeholder_categories(data, where)
    names: dict[int, str] = {}
    for category in data.get("categories") or []:
        if isinstance(category, dict) and category.get("id") in placeholders:
            continue
        try:
            names.setdefault(int(category["id"]), str(category["name"]))
        except (KeyError, TypeError, ValueError):
            findings.append(Finding("error", "bad_category", f"category {category!r} needs an integer id and a "
                                    "name.", where))
    used = {a.get("category_id") for a in data.get("annotations") or [] if isinstance(a, dict)}
    unnamed = {i for i in used if isinstance(i, int) and i not in names}
    if names and unnamed:
        findings.append(Finding(
            "warning", "undeclared_class",
            f"category id(s) {', '.join(map(str, sorted(unnamed)))} are used by annotations but not declared in "
            "\"categories\"; they are kept as classes named by their id. Add them to \"categories\" (or fix the "
            "annotations' category_id).", where))
    class_list, mapping, class_ids = class_table({**{i: str(i) for i in unnamed}, **names}, unnamed, classes)

    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in data.get("annotations") or []:
        by_image.setdefault(ann.get("image_id") if isinstance(ann, dict) else None, []).append(ann)
    listed = {img.get("id") for img in data["images"] if isinstance(img, dict)}
    orphans = [k for k in by_image if k not in listed]
    if orphans:
        count = sum(len(by_image[k]) for k in orphans)
        findings.append(Finding(
            "error", "unknown_image",
            f"{count} annotation(s) refer to image ids not in \"images\" (e.g. {orphans[0]!r}) and are left out. "
            "Add those images to the \"images\" list.", where))
    crowd = 0
    samples: list[Sample] = []
    for img in data["images"]:
        name = img.get("file_name") if isinstance(img, dict) else None
        if not isinstance(name, str):
            findings.append(Finding("error", "bad_image", f"image entry {img!r:.80} has no file_name.", where))
            continue
        image = next((r / name for r in roots if (r / name).is_file()), None)
        if image is None:
            findings.append(Finding(
                "error", "missing_image",
                f"image {name!r} (id {img.get('id')}) not found in {' or '.join(str(r) for r in roots)}. Pass the "
                "folder that holds the images as the image root (`--annotations`/`image_root`).", where))
            continue
        try:
            size: tuple[int, int] | None = (int(img["width"]), int(img["height"]))
        except (KeyError, TypeError, ValueError):
            size = image_size(image)
        boxes, labels = [], []
        for ann in by_image.get(img.get("id"), []):
            try:
                x, y, w, h = (float(v) for v in ann["bbox"])
                category = int(ann["category_id"])
            except (KeyError, TypeError, ValueError):
                findings.append(Finding("error", "bad_box", f"annotation {ann.get('id')!r} of {name}: needs "
                                        "\"bbox\": [x, y, width, height] and an integer category_id; left out.",
                                        where))
                continue
            if category not in mapping:
                findings.append(unknown_class(category, class_list, where, None))
                continue
            cleaned = clean_box((x, y, x + w, y + h), size, f"{where} ({name})", None, findings)
            if cleaned is not None:
                crowd += bool(ann.get("iscrowd"))
                boxes.append(cleaned)
                labels.append(mapping[category])
        width, height = size if size else (None, None)
        samples.append(Sample(image=image, target=BoxTarget(tuple(boxes), tuple(labels), (False,) * len(labels),
                                                            width, height), origin=f"{where} ({name})"))
    if crowd:
        findings.append(Finding(
            "info", "iscrowd",
            f"{crowd} box(es) are marked iscrowd (a group of objects); they are kept as ordinary boxes.", where))
    negatives = sum(not s.target.labels for s in samples)
    if negatives:
        findings.append(Finding("info", "negative_images", f"{negatives} image(s) without boxes kept as negatives.",
                                where))
    return SampleSet(samples, class_list, task="detection", format=FORMAT, source=where, findings=findings,
                     class_ids=class_ids)


def write_coco(sample_set: SampleSet, json_path: Path, image_root: Path | None = None) -> list[Finding]:
    """Write a detection ``sample_set`` (``xyxy`` pixel boxes) as COCO JSON (``bbox`` = ``[x, y, width,
    height]`` pixels, ``area`` = width × height, ``iscrowd`` 0).

    ``file_name`` is the image path relative to ``image_root`` (default: the JSON's folder) when the image lies
    under it, else its absolute path. Category ids are the original ids when the set was read from COCO, else
    1, 2, … in class order. Returns the findings about what changed (renumbered ids)."""
    json_path = Path(json_path)
    root = (Path(image_root) if image_root is not None else json_path.parent).resolve()
    findings: list[Finding] = []
    ids = output_ids(sample_set, FORMAT, 1, findings, str(json_path))
    images, annotations = [], []
    for image_id, sample in enumerate(sample_set.samples, start=1):
        target: BoxTarget = sample.target
        resolved = sample.image.resolve()
        file_name = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else str(resolved)
        entry: dict[str, Any] = {"id": image_id, "file_name": file_name}
        size = target_size(sample)
        if size is not None:
            entry["width"], entry["height"] = size
        images.append(entry)
        for (x0, y0, x1, y1), label in zip(target.boxes, target.labels, strict=True):
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": ids[label],
                "bbox": [number(x0), number(y0), number(x1 - x0), number(y1 - y0)],
                "area": number((x1 - x0) * (y1 - y0)), "iscrowd": 0,
            })
    categories = [{"id": ids[i], "name": name} for i, name in enumerate(sample_set.classes)]
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}),
                         encoding="utf-8")
    return findings
