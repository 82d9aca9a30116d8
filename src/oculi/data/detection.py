"""Read object detection data in any supported format, recognised by its content.

Every reader returns a detection :class:`~oculi.types.SampleSet` whose targets are :class:`~oculi.types.BoxTarget`
(``xyxy`` absolute pixels, float); the format-specific coordinates are converted in ``oculi.data.formats``."""

from __future__ import annotations

import json
from pathlib import Path

from oculi.data.formats.coco import is_coco, read_coco
from oculi.data.formats.foreign import is_voc_xml, raise_if_foreign
from oculi.data.formats.manifest import is_manifest, read_detection_manifest
from oculi.data.formats.recordio import is_recordio, read_recordio
from oculi.data.formats.sagemaker_json import read_sagemaker_json
from oculi.data.formats.tools import TOOL_FORMATS, read_tool, to_detection, tool_format
from oculi.data.formats.voc import annotations_dir, read_voc
from oculi.data.formats.yolo import is_yolo, read_yolo, yolo_splits
from oculi.errors import ConfigError, DataError
from oculi.types import Finding, SampleSet

DETECTION_FORMATS = ("sagemaker-json", "manifest", "coco", "voc", "yolo", "labelstudio", "cvat")
# RecordIO is written too (`--to recordio`), but holds no file names: the images come back named after the records.
DETECTION_READ_FORMATS = (*DETECTION_FORMATS, "labelme", "via", "recordio")  # labelme and VIA are read, not written


def _is_sagemaker_annotations(folder: Path) -> bool:
    first = next(iter(sorted(folder.glob("*.json"))), None) if folder.is_dir() else None
    if first is None:
        return False
    try:
        data = json.loads(first.read_text(encoding="utf-8-sig"))
    except (ValueError, RecursionError, UnicodeDecodeError, OSError):
        return False
    return isinstance(data, dict) and isinstance(data.get("annotations"), list) and "images" not in data


def detect_format(path: Path, annotations: Path | None = None) -> str:
    """The detection format of ``path`` (one of :data:`DETECTION_FORMATS`), recognised by content: a JSON-lines
    file → ``manifest``; a JSON object with ``images``/``annotations`` (or a folder holding ``annotations.json``)
    → ``coco``; ``Annotations/*.xml`` → ``voc``; ``labels/*.txt`` or a data YAML → ``yolo``; ``annotations``
    given, a ``train_annotation`` sub-folder or a folder of per-image JSON → ``sagemaker-json``; a labeling
    tool's file → ``labelstudio``, ``cvat``, ``labelme`` or ``via`` (see :mod:`oculi.data.formats.tools`; then
    ``annotations`` is the image folder). Raises :class:`DataError` when nothing matches, saying which format the
    data looks like when it is one oculi does not read (CVAT for video, Label Studio JSON-MIN; see
    :mod:`oculi.data.formats.foreign`)."""
    path = Path(path)
    tool = tool_format(path) if path.exists() else None
    if tool is not None:
        return tool
    if annotations is not None:
        return "sagemaker-json"
    if not path.exists():
        raise DataError(f"{path}: not found.")
    if path.is_file():
        if is_recordio(path):
            return "recordio"
        if is_coco(path):
            return "coco"
        if path.suffix.lower() in (".yaml", ".yml") and is_yolo(path):
            return "yolo"
        raise_if_foreign(path)
        if is_voc_xml(path):
            raise DataError(f"{path}: one Pascal VOC annotation; pass the folder that holds the .xml files "
                            f"({path.parent}) or the VOC root holding Annotations/ and JPEGImages/.")
        if is_manifest(path):
            return "manifest"
    else:
        if (path / "train_annotation").is_dir() or _is_sagemaker_annotations(path):
            return "sagemaker-json"
        if annotations_dir(path) is not None:
            return "voc"
        if is_yolo(path):
            return "yolo"
        if is_coco(path / "annotations.json"):
            return "coco"
        raise_if_foreign(path)
    raise DataError(
        f"{path}: not a detection dataset oculi recognises. Expected an augmented manifest (.manifest), a COCO "
        "JSON file, a Pascal VOC folder (Annotations/*.xml), a YOLO folder (labels/*.txt + data.yaml), SageMaker "
        "`train` + `train_annotation` folders, or a Label Studio, CVAT for images, labelme or VIA file; name the "
        f"format with `--from {{{','.join(DETECTION_READ_FORMATS)}}}` if it is one of them."
    )


def read_detection(
    path: Path,
    *,
    annotations: Path | None = None,
    image_roots: dict[str, Path] | None = None,
    names: Path | None = None,
    classes: list[str] | None = None,
    format: str = "auto",
    split: str | None = None,
    num_classes: int | None = None,
    label_attribute: str | None = None,
    default_class: str | None = None,
) -> SampleSet:
    """Read detection data at ``path`` into a :class:`SampleSet` of ``xyxy`` absolute-pixel :class:`BoxTarget`
    targets, in ``format`` (one of :data:`DETECTION_READ_FORMATS`, or ``"auto"``: see :func:`detect_format`).

    ``annotations``: the SageMaker ``train_annotation`` folder when ``path`` is the ``train`` images folder (or
    the image root for COCO and VOC). ``image_roots``: ``{"s3://bucket/prefix": folder}`` for manifests.
    ``names``: a YOLO names file. ``classes``: class names to read against. ``split``: for a YOLO dataset whose
    data YAML names split folders, read only that split (``train``, ``val``, ``test``). ``num_classes``
    (SageMaker's hyperparameter): for formats whose files may not name their classes (manifests without a
    class-map, SageMaker JSON without categories, YOLO without names), the classes are ids ``0…num_classes-1`` and
    a box with a higher id is a ``label_out_of_range`` finding naming the file and line. ``label_attribute``: the
    manifest attribute holding the boxes, when its lines have several (VIA: the region attribute holding the
    class). ``default_class``: the class of VIA regions without a class attribute. Labeling tools' polygons and
    masks are read as their bounding boxes."""
    path = Path(path)
    if format != "auto" and format not in DETECTION_READ_FORMATS:
        raise ConfigError(f"detection format {format!r} is unknown; expected one of "
                          f"{', '.join(DETECTION_READ_FORMATS)}.")
    fmt = detect_format(path, annotations) if format == "auto" else format
    if fmt in TOOL_FORMATS:
        return to_detection(read_tool(path, format=fmt, image_root=annotations, default_class=default_class,
                                      class_attribute=label_attribute), classes, num_classes)
    if fmt == "manifest":
        if path.is_dir():
            found = sorted(path.glob("*.manifest"))
            if len(found) != 1:
                raise DataError(f"{path}: expected one .manifest file in this folder, found {len(found)}; pass the "
                                "manifest file itself.")
            path = found[0]
        return read_detection_manifest(path, image_roots=image_roots, classes=classes, num_classes=num_classes,
                                       label_attribute=label_attribute)
    if fmt == "recordio":
        sample_set = read_recordio(path, classes=classes, num_classes=num_classes)
        if sample_set.samples and sample_set.task != "detection":
            raise DataError(f"{path}: RecordIO with class-id labels (image classification); object detection needs "
                            "SageMaker's packed box labels [2, 5, class, xmin, ymin, xmax, ymax, …].")
        sample_set.task = "detection"
        return sample_set
    if fmt == "coco":
        json_path = path / "annotations.json" if path.is_dir() else path
        return read_coco(json_path, image_root=annotations, classes=classes)
    if fmt == "voc":
        return read_voc(path, image_root=annotations, classes=classes)
    if fmt == "yolo":
        return read_yolo(path, names=names, classes=classes, split=split, num_classes=num_classes)
    if annotations is not None:
        return read_sagemaker_json(path, annotations, classes=classes, num_classes=num_classes)
    if (path / "train_annotation").is_dir():
        sample_set = read_sagemaker_json(path / "train", path / "train_annotation", classes=classes,
                                         num_classes=num_classes)
        if _has_validation(path):
            sample_set.findings.append(Finding(
                "info", "split_not_read", f"{path / 'validation'}/ + validation_annotation/ hold a validation split, "
                f"not read here: read it on its own (`oculi data convert {path / 'validation'} --annotations "
                f"{path / 'validation_annotation'} …`, `--validation` in training).", str(path)))
        return sample_set
    return read_sagemaker_json(None, path, classes=classes, num_classes=num_classes)


def _has_validation(path: Path) -> bool:
    return (path / "validation").is_dir() and (path / "validation_annotation").is_dir()


def detection_splits(path: Path, *, image_roots: dict[str, Path] | None = None, num_classes: int | None = None,
                     label_attribute: str | None = None) -> dict[str, SampleSet]:
    """The splits of a detection dataset for the data check: for a YOLO dataset whose data YAML names split
    folders (see :func:`~oculi.data.formats.yolo.yolo_splits`), ``train`` and, when named, ``validation`` (the
    YAML's ``val``) and ``test``, each read against the training classes; for SageMaker's layout with
    ``validation/`` + ``validation_annotation/``, ``train`` and ``validation``; any other dataset is one ``train``
    split. ``num_classes`` and ``label_attribute``: see :func:`read_detection`."""
    path = Path(path)
    fmt = detect_format(path)
    splits = yolo_splits(path) if fmt == "yolo" else {}
    if "train" in splits:
        sets = {"train": read_yolo(path, split="train", num_classes=num_classes)}
        for split, name in (("val", "validation"), ("test", "test")):
            if split in splits:
                sets[name] = read_yolo(path, classes=sets["train"].classes, split=split)
        read = ", ".join(f"{split} → {folder}" for split, folder in splits.items())
        sets["train"].findings.insert(0, Finding("info", "yolo_splits", f"splits read as the data YAML names them: "
                                                 f"{read}.", str(path)))
        return sets
    train = read_detection(path, image_roots=image_roots, num_classes=num_classes, label_attribute=label_attribute)
    if not (path.is_dir() and _has_validation(path) and fmt == "sagemaker-json"):
        return {"train": train}
    train.findings[:] = [f for f in train.findings if f.code != "split_not_read"]
    return {"train": train, "validation": read_sagemaker_json(path / "validation", path / "validation_annotation",
                                                              classes=train.classes)}
