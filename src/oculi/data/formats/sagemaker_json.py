"""SageMaker object detection "Image + JSON" channels: a ``train`` folder of images and a ``train_annotation``
folder with one ``<image base name>.json`` per image::

    {"file": "sample_image1.jpg",
     "image_size": [{"width": 500, "height": 400, "depth": 3}],
     "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128}],
     "categories": [{"class_id": 0, "name": "dog"}]}

Boxes are ``left, top, width, height`` in pixels (origin top-left) and become ``xyxy`` pixels
``(left, top, left + width, top + height)``. ``categories`` is optional; without it a class is named
``str(class_id)``. Class ids may be sparse: the classes are the ids sorted, and ``SampleSet.class_ids`` keeps the
original ids so :func:`write_sagemaker_json` restores them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oculi.data.formats.boxes import (
    beyond_num_classes,
    class_table,
    clean_box,
    copy_image,
    find_image,
    image_size,
    number,
    output_ids,
    target_size,
    unique_stems,
    unknown_class,
)
from oculi.errors import DataError
from oculi.types import IMAGE_EXTENSIONS, BoxTarget, Finding, Sample, SampleSet

FORMAT = "sagemaker-json"


def _locate(record: dict[str, Any], stem: str, images: Path | None, annotation: Path) -> Path | None:
    ref = record.get("file")
    candidates: list[Path] = []
    if isinstance(ref, str) and ref:
        ref_path = Path(ref)
        if ref_path.is_absolute():
            candidates.append(ref_path)
        elif images is not None:
            candidates += [images / ref_path, images / ref_path.name]
        candidates.append(annotation.parent / ref_path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return find_image(images, stem) if images is not None else None


def _missing_image(record: dict[str, Any], annotation: Path, images: Path | None) -> str:
    """The missing-image message: every place looked in, and the fix (an images folder when none was given)."""
    ref = record.get("file")
    looked = []
    if isinstance(ref, str) and ref:
        folders = [] if Path(ref).is_absolute() else [*([str(images)] if images is not None else []),
                                                       str(annotation.parent)]
        looked.append(f'its "file" {ref!r}' + (f" in {' and in '.join(folders)}" if folders else ""))
    if images is not None:
        looked.append(f"{images / annotation.stem}.jpg, .png or another image extension")
        fix = "Put the image in the images folder under the same base name."
    else:
        fix = ("No images folder was given: pass the dataset folder holding train/ and train_annotation/, or the "
               "images folder with this annotation folder (`--annotations`, `-c train_annotation=`).")
    places = " and ".join(looked) or 'nothing (no "file" and no images folder)'
    return f"no image for this annotation: looked for {places}. {fix}"


def _size(record: dict[str, Any]) -> tuple[int, int] | None:
    sizes = record.get("image_size")
    size = sizes[0] if isinstance(sizes, list) and sizes else sizes
    if isinstance(size, dict):
        try:
            return int(size["width"]), int(size["height"])
        except (KeyError, TypeError, ValueError):
            return None
    return None


def _line_of(file: Path, class_id: int) -> int | None:
    """The line of ``file`` where an annotation with ``class_id`` is written (the first one), for findings;
    None when it cannot be told (e.g. the id is written as a float)."""
    import re

    pattern = re.compile(rf'"class_id"\s*:\s*{class_id}(?![0-9.])')
    lines = file.read_text(encoding="utf-8-sig").splitlines()
    return next((n for n, line in enumerate(lines, start=1) if pattern.search(line)), None)


def read_sagemaker_json(images: Path | None, annotations: Path, classes: list[str] | None = None,
                        num_classes: int | None = None) -> SampleSet:
    """Read a SageMaker ``train`` + ``train_annotation`` channel pair into a detection :class:`SampleSet`
    (targets: :class:`BoxTarget`, ``xyxy`` absolute pixels; see the module docstring).

    The image of ``<base>.json`` is its ``file`` (absolute, or relative to ``images``), else ``images/<base>.<image
    extension>``. ``classes``: class names to read against (named ids map by name, unnamed ids index into them). When
    the files declare ``categories``, those are the classes: a box whose ``class_id`` they do not name is an
    ``unknown_class`` error naming the file and line (the box is left out); without them, ``num_classes`` (when given)
    makes ids ``0…num_classes-1`` the classes and a higher id a ``label_out_of_range`` error. Findings: ``bad_json``,
    ``bad_box``, ``missing_image``, ``unknown_class``, ``empty_box``, ``box_clipped``, ``no_annotation`` (an image
    without a JSON file, left out). Raises :class:`DataError` when ``annotations`` is not a folder of ``.json``
    files."""
    annotations = Path(annotations)
    images = Path(images) if images is not None else None
    files = sorted(annotations.glob("*.json")) if annotations.is_dir() else []
    if not files:
        raise DataError(
            f"{annotations}: no per-image .json annotation files. SageMaker object detection reads a `train` folder "
            f"of images and a `train_annotation` folder with one <image name>.json per image; pass that folder."
        )
    findings: list[Finding] = []
    records: list[tuple[Path, dict[str, Any]]] = []
    names: dict[int, str] = {}
    used: set[int] = set()
    for file in files:
        try:
            record = json.loads(file.read_text(encoding="utf-8-sig"))
        except (ValueError, RecursionError, UnicodeDecodeError) as e:
            findings.append(Finding("error", "bad_json", f"not valid JSON ({e}); the image is left out.", str(file)))
            continue
        if not isinstance(record, dict):
            findings.append(Finding("error", "bad_json", "expected a JSON object {...}.", str(file)))
            continue
        for category in record.get("categories") or []:
            if isinstance(category, dict) and isinstance(category.get("name"), str):
                try:
                    names.setdefault(int(category["class_id"]), category["name"])
                except (KeyError, TypeError, ValueError):
                    findings.append(Finding("warning", "bad_json", f"category {category!r} has no integer "
                                            "class_id; ignored.", str(file)))
        for ann in record.get("annotations") or []:
            if isinstance(ann, dict) and isinstance(ann.get("class_id"), int | float):
                used.add(int(ann["class_id"]))
        records.append((file, record))
    # With categories, they are the list of classes: an id they do not name is a mistake, not a new class.
    unnamed = set() if names else (set(range(num_classes)) if num_classes is not None else used)
    class_list, mapping, class_ids = class_table(
        {**{i: str(i) for i in unnamed}, **names}, unnamed, classes)

    samples: list[Sample] = []
    seen_images: set[Path] = set()
    for file, record in records:
        where = str(file)
        image = _locate(record, file.stem, images, file)
        if image is None:
            findings.append(Finding("error", "missing_image", _missing_image(record, file, images), where))
            continue
        seen_images.add(image.resolve())
        size = _size(record) or image_size(image)
        boxes, labels = [], []
        for position, ann in enumerate(record.get("annotations") or [], start=1):
            try:
                left, top = float(ann["left"]), float(ann["top"])
                box = (left, top, left + float(ann["width"]), top + float(ann["height"]))
                class_id = int(ann["class_id"])
            except (KeyError, TypeError, ValueError):
                findings.append(Finding(
                    "error", "bad_box",
                    f"annotation {ann!r} needs numeric class_id, left, top, width and height; it is left out.",
                    where))
                continue
            if names and class_id not in names:
                findings.append(Finding(
                    "error", "unknown_class",
                    f"annotation {position} has class_id {class_id}, which is not in \"categories\" ("
                    f"{', '.join(f'{i}: {n}' for i, n in sorted(names.items()))}); the box is left out. Fix the "
                    "class_id, or add the class to \"categories\".", where, _line_of(file, class_id)))
                continue
            if not names and num_classes is not None and classes is None and not 0 <= class_id < num_classes:
                findings.append(beyond_num_classes(class_id, num_classes, where, _line_of(file, class_id)))
                continue
            if class_id not in mapping:
                findings.append(unknown_class(class_id, class_list, where, None))
                continue
            cleaned = clean_box(box, size, where, None, findings)
            if cleaned is not None:
                boxes.append(cleaned)
                labels.append(mapping[class_id])
        width, height = size if size else (None, None)
        target = BoxTarget(tuple(boxes), tuple(labels), (False,) * len(labels), width, height)
        samples.append(Sample(image=image, target=target, origin=where))
    if images is not None and images.is_dir():
        loose = sorted(p for p in images.iterdir()
                       if p.suffix.lower() in IMAGE_EXTENSIONS and p.resolve() not in seen_images)
        if loose:
            findings.append(Finding(
                "warning", "no_annotation",
                f"{len(loose)} image(s) have no <name>.json annotation and are left out (e.g. {loose[0].name}). "
                f"Add {annotations}/<name>.json (an empty \"annotations\" list for an image without objects).",
                str(images)))
    return SampleSet(samples, class_list, task="detection", format=FORMAT, source=str(annotations),
                     findings=findings, class_ids=class_ids)


def write_sagemaker_json(sample_set: SampleSet, images_out: Path | None, annotations_out: Path) -> list[Finding]:
    """Write ``sample_set`` (``xyxy`` pixel boxes) as SageMaker per-image JSON files in ``annotations_out``
    (``left, top, width, height`` pixels, ``image_size``, ``categories`` with every class).

    With ``images_out`` the images are copied there (byte for byte) and ``file`` is the copied name; without it
    ``file`` is the image's absolute path. Class ids are the original ids when the set was read from SageMaker
    JSON, else the class indices. Returns the findings about what changed (renamed files, renumbered ids)."""
    annotations_out = Path(annotations_out)
    annotations_out.mkdir(parents=True, exist_ok=True)
    findings: list[Finding] = []
    ids = output_ids(sample_set, FORMAT, 0, findings, str(annotations_out))
    categories = [{"class_id": ids[i], "name": name} for i, name in enumerate(sample_set.classes)]
    for sample, stem in zip(sample_set.samples, unique_stems(sample_set.samples, findings, str(annotations_out)),
                            strict=True):
        target: BoxTarget = sample.target
        if images_out is not None:
            file = copy_image(sample.image, Path(images_out), stem).name
        else:
            file = str(sample.image.resolve())
        size = target_size(sample)
        record: dict[str, Any] = {"file": file}
        if size is not None:
            record["image_size"] = [{"width": size[0], "height": size[1], "depth": 3}]
        record["annotations"] = [
            {"class_id": ids[label], "left": number(x0), "top": number(y0),
             "width": number(x1 - x0), "height": number(y1 - y0)}
            for (x0, y0, x1, y1), label in zip(target.boxes, target.labels, strict=True)
        ]
        record["categories"] = categories
        (annotations_out / f"{stem}.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return findings
