"""The files labeling tools write — Label Studio JSON exports, CVAT for images 1.1 XML, labelme JSON and VGG Image
Annotator (VIA) JSON — read into one shape list per image, then projected onto a task.

Each tool module (:mod:`~oculi.data.formats.labelstudio`, :mod:`~oculi.data.formats.cvat`,
:mod:`~oculi.data.formats.labelme`, :mod:`~oculi.data.formats.via`) turns its own encoding (percent coordinates,
``x,y;x,y`` point strings, ``all_points_x``/``all_points_y``, Label Studio's brush RLE, CVAT's mask RLE) into
:class:`Shape` objects in absolute pixels (origin top-left, x right, y down). The projections then give the
sample vocabulary of :mod:`oculi.types`:

- classification (:func:`to_classification`): image-level tags (Label Studio Choices, CVAT ``<tag>``) → class index
  (several tags on one image → multi-label);
- detection (:func:`to_detection`): boxes as they are; a polygon or a mask becomes its bounding box;
- segmentation (:func:`to_segmentation`): polygons, boxes and masks painted in file order into one class mask
  (class 0 ``background`` where nothing is drawn), through COCO polygons / RLE in a :class:`MaskTarget`.

Every change of kind (a polygon read as its box, a box painted as a mask, a region given the default class, a tag
that the task does not use) is one info finding with its count, so the conversion ledger says so."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from oculi.data.formats.boxes import clean_box, image_size, unknown_class
from oculi.errors import ConfigError, DataError
from oculi.types import BoxTarget, Finding, MaskTarget, Sample, SampleSet

TOOL_FORMATS = ("labelstudio", "cvat", "labelme", "via")
WRITTEN_TOOL_FORMATS = ("labelstudio", "cvat")
DEFAULT_CLASS = "object"
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")  # Label Studio prefixes uploaded file names with 8 hex digits


@dataclass(frozen=True)
class Shape:
    """One label of an image in absolute pixels. ``kind``: ``tag`` (image-level class), ``box`` (``box`` =
    ``xyxy``), ``polygon`` (``points`` = ``((x, y), …)``) or ``mask`` (``rle`` = a COCO RLE dict with compressed
    ``counts`` and ``size`` ``[height, width]``). ``where`` names the entry in the file for messages."""

    kind: str
    label: str
    box: tuple[float, float, float, float] | None = None
    points: tuple[tuple[float, float], ...] = ()
    rle: dict[str, Any] | None = None
    where: str = ""


@dataclass
class Item:
    """One image of a label file: ``image`` the local file (None when not found), ``name`` as the file writes it,
    ``width``/``height`` in pixels when the file says, ``shapes`` in file order, ``labeled``: False for an image
    the tool lists without any annotation (Label Studio tasks nobody annotated), which no task reads."""

    name: str
    image: Path | None
    width: int | None = None
    height: int | None = None
    shapes: list[Shape] = field(default_factory=list)
    labeled: bool = True
    where: str = ""


@dataclass
class LabelFile:
    """What a tool file holds: ``format`` (one of :data:`TOOL_FORMATS`), ``source`` the file (or labelme folder),
    ``items`` one per image, ``classes`` the label names the file declares (CVAT's ``<labels>``; else empty) and
    ``findings`` what reading noticed."""

    format: str
    source: Path
    items: list[Item]
    classes: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def kinds(self) -> set[str]:
        """The shape kinds present (``tag``, ``box``, ``polygon``, ``mask``)."""
        return {s.kind for item in self.items for s in item.shapes}


def load_json(path: Path, what: str) -> Any:
    """Parse the JSON file ``path``; a syntax error is a :class:`DataError` naming the file, line and column."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); re-export the "
                        f"{what} file from the tool.") from None
    except (OSError, UnicodeDecodeError, RecursionError) as e:
        raise DataError(f"{path}: cannot read the {what} file ({e}).") from None


def as_number(value: Any, path: Path, where: str, what: str) -> float:
    """``value`` as a float, else a :class:`DataError` naming the file, the entry and the field."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DataError(f"{path}: {where}: {what} is {value!r}; expected a number. Fix or delete this entry.")
    try:
        result = float(value)
    except ValueError:
        raise DataError(f"{path}: {where}: {what} is {value!r}; expected a number. Fix or delete this "
                        "entry.") from None
    if result != result or result in (float("inf"), float("-inf")):
        raise DataError(f"{path}: {where}: {what} is {value!r}; expected a finite number.")
    return result


def find_image(name: str, roots: list[Path]) -> Path | None:
    """The local image a tool file names: ``name`` itself when it is a local path, else under each of ``roots``
    (and its ``images/``) by the relative path, then by the file name; Label Studio's upload prefix
    (``1a2b3c4d-bee.jpg``) and ``/data/local-files/?d=`` URLs are understood; None when not found."""
    if "?d=" in name:
        name = name.split("?d=", 1)[1]
    name = name.replace("\\", "/")
    if "://" not in name:
        direct = Path(name)
        if direct.is_absolute() and direct.is_file():
            return direct
    relative = name.split("://", 1)[-1].lstrip("/")
    basename = relative.rsplit("/", 1)[-1]
    candidates = [relative, basename]
    if _UPLOAD_PREFIX.match(basename):
        candidates.append(_UPLOAD_PREFIX.sub("", basename))
    for root in roots:
        for folder in (root, root / "images"):
            for candidate in candidates:
                if candidate and (folder / candidate).is_file():
                    return folder / candidate
    return None


def image_roots(path: Path, image_root: Path | None) -> list[Path]:
    """Where a tool file's images are looked for: ``image_root`` when given, else the file's folder."""
    if image_root is not None:
        return [Path(image_root)]
    return [Path(path) if Path(path).is_dir() else Path(path).parent]


def polygon_box(points: tuple[tuple[float, float], ...]) -> tuple[float, float, float, float]:
    """The ``xyxy`` bounding box of polygon ``points``."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def mask_rle(mask: Any) -> dict[str, Any]:
    """A boolean ``[H, W]`` array as a COCO RLE dict (compressed ``counts`` as text, ``size`` ``[H, W]``)."""
    import numpy as np
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode()}


# --- recognition and reading -------------------------------------------------------------------------------

def _readers() -> dict[str, tuple[Any, Any]]:
    from oculi.data.formats import cvat, labelme, labelstudio, via

    return {"labelstudio": (labelstudio.is_labelstudio, labelstudio.read_labelstudio),
            "cvat": (cvat.is_cvat, cvat.read_cvat),
            "labelme": (labelme.is_labelme, labelme.read_labelme),
            "via": (via.is_via, via.read_via)}


def tool_format(path: Path) -> str | None:
    """The tool format of ``path`` (one of :data:`TOOL_FORMATS`) recognised by content — a file, a folder of
    labelme JSON files, or a folder holding exactly one tool file at its top (a CVAT export's
    ``annotations.xml`` next to ``images/``; a folder with several sub-folders is never one) — else None."""
    path = Path(path)
    found = _tool_file(path)
    return found[0] if found else None


def _file_format(path: Path) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _file_format_cached(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _file_format_cached(path: str, mtime: int, size: int) -> str | None:
    """One content probe per file version: recognising a dataset asks several times (each task, then the reader)."""
    return next((name for name, (recognise, _) in _readers().items() if recognise(Path(path))), None)


def _tool_file(path: Path) -> tuple[str, Path] | None:
    if path.is_file():
        found = _file_format(path)
        return (found, path) if found else None
    if not path.is_dir():
        return None
    if len([p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]) > 1:
        return None  # class folders (or a dataset's split folders) beside a stray tool file: not a tool export
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in (".json", ".xml")
                   and not p.name.startswith("."))
    if files and _file_format(files[0]) == "labelme":
        return "labelme", path
    found = [(name, p) for p in files[:20] if (name := _file_format(p)) not in (None, "labelme")]
    return found[0] if len(found) == 1 else None


def read_tool(path: Path, *, format: str = "auto", image_root: Path | None = None,
              default_class: str | None = None, class_attribute: str | None = None) -> LabelFile:
    """Read the tool file ``path`` (``format``: one of :data:`TOOL_FORMATS`, or ``auto``, see
    :func:`tool_format`). ``image_root``: the folder the file's image names are relative to (default: the file's
    folder, then its ``images/``). ``default_class``: the class of VIA regions without a class attribute (default
    :data:`DEFAULT_CLASS`); ``class_attribute``: the VIA region attribute that holds the class (default: found, see
    :mod:`~oculi.data.formats.via`). Raises :class:`DataError` naming the file and entry for a corrupt file."""
    path = Path(path)
    found = _tool_file(path)
    if format == "auto":
        if found is None:
            raise DataError(f"{path}: not a Label Studio, CVAT, labelme or VIA file oculi recognises.")
        format, path = found
    elif format not in TOOL_FORMATS:
        raise ConfigError(f"labeling-tool format {format!r} is unknown; expected one of {', '.join(TOOL_FORMATS)}.")
    elif found is not None and found[0] == format:
        path = found[1]
    stat = path.stat()
    return _read_cached(str(path), format, stat.st_mtime_ns, stat.st_size, str(image_root or ""),
                        default_class or DEFAULT_CLASS, class_attribute or "")


@lru_cache(maxsize=8)
def _read_cached(path: str, format: str, mtime: int, size: int, image_root: str, default_class: str,
                 class_attribute: str) -> LabelFile:
    """One parse per file version: recognising a task, then reading it, must not parse a large export twice."""
    reader = _readers()[format][1]
    options: dict[str, Any] = {"image_root": Path(image_root) if image_root else None}
    if format == "via":
        options.update(default_class=default_class, class_attribute=class_attribute or None)
    return reader(Path(path), **options)


# --- projections onto the tasks ------------------------------------------------------------------------------

def _names(label_file: LabelFile, kinds: tuple[str, ...]) -> list[str]:
    """Class names: those the file declares, then the others met in ``kinds`` shapes in sorted order."""
    used = sorted({s.label for item in label_file.items for s in item.shapes if s.kind in kinds})
    declared = [n for n in label_file.classes if n in used] if label_file.classes else []
    return declared + [n for n in used if n not in declared]


def _usable(label_file: LabelFile, findings: list[Finding]) -> list[Item]:
    """Items with an image and at least one annotation; reports the others."""
    items = []
    unlabeled = [i for i in label_file.items if not i.labeled]
    if unlabeled:
        findings.append(Finding("info", "unlabeled", f"{len(unlabeled)} image(s) have no annotation at all (e.g. "
                                f"{unlabeled[0].name}); they are left out.", str(label_file.source)))
    for item in label_file.items:
        if not item.labeled:
            continue
        if item.image is None:
            findings.append(Finding("error", "missing_image", f"image {item.name!r} not found; it is left out. Pass "
                                    "the image folder with --annotations (Python: image_root).", item.where))
            continue
        items.append(item)
    return items


def _count_note(findings: list[Finding], counts: Counter[str], source: str, messages: dict[str, str]) -> None:
    for code, message in messages.items():
        if counts[code]:
            findings.append(Finding("info", code, message.format(n=counts[code]), source))


def _size(item: Item) -> tuple[int, int] | None:
    if item.width and item.height:
        return int(item.width), int(item.height)
    return image_size(item.image) if item.image is not None else None


def to_classification(label_file: LabelFile, classes: list[str] | None = None) -> SampleSet:
    """The image-level tags of ``label_file`` as a classification :class:`SampleSet`: one tag → its class index;
    several (on any image) → a multi-label set of tuples. Images without a tag are left out (info
    ``no_tag``); other shapes are not read (info ``shapes_ignored``). ``classes``: read against these names."""
    findings = list(label_file.findings)
    source = str(label_file.source)
    names = list(classes) if classes is not None else _names(label_file, ("tag",))
    index = {name: i for i, name in enumerate(names)}
    counts: Counter[str] = Counter()
    rows = []
    for item in _usable(label_file, findings):
        tags = list(dict.fromkeys(s.label for s in item.shapes if s.kind == "tag"))
        counts["shapes_ignored"] += sum(s.kind != "tag" for s in item.shapes)
        unknown = [t for t in tags if t not in index]
        for tag in unknown:
            findings.append(unknown_class(tag, names, item.where, None))
        tags = [t for t in tags if t in index]
        if not tags:
            counts["no_tag"] += 1
            continue
        rows.append((item, tuple(index[t] for t in tags)))
    multi = any(len(t) > 1 for _, t in rows)
    samples = [Sample(item.image, t if multi else t[0], item.where) for item, t in rows]
    _count_note(findings, counts, source, {
        "no_tag": "{n} image(s) have no class tag (Choices / <tag>); they are left out.",
        "shapes_ignored": "{n} region(s) (boxes, polygons, masks) are not read for image classification."})
    return SampleSet(samples, names, task="classification", multi_label=multi, format=label_file.format,
                     source=source, findings=findings)


def to_detection(label_file: LabelFile, classes: list[str] | None = None,
                 num_classes: int | None = None) -> SampleSet:
    """The regions of ``label_file`` as a detection :class:`SampleSet` of ``xyxy`` pixel boxes: boxes as they
    are, each polygon and mask as its bounding box (info ``polygon_as_box`` / ``mask_as_box`` with the count);
    tags are not read (info ``tags_ignored``). Images with an annotation but no region are negatives.
    ``classes``: read against these names; ``num_classes``: a class beyond it is an error finding."""
    findings = list(label_file.findings)
    source = str(label_file.source)
    names = list(classes) if classes is not None else _names(label_file, ("box", "polygon", "mask"))
    index = {name: i for i, name in enumerate(names)}
    counts: Counter[str] = Counter()
    samples = []
    for item in _usable(label_file, findings):
        size = _size(item)
        boxes, labels = [], []
        for shape in item.shapes:
            if shape.kind == "tag":
                counts["tags_ignored"] += 1
                continue
            if shape.label not in index or (num_classes is not None and index[shape.label] >= num_classes):
                findings.append(unknown_class(shape.label, names[:num_classes] if num_classes else names,
                                              shape.where, None))
                continue
            if shape.kind == "box":
                box = shape.box
            elif shape.kind == "polygon":
                counts["polygon_as_box"] += 1
                box = polygon_box(shape.points)
            else:
                counts["mask_as_box"] += 1
                box = _mask_box(shape.rle)
                if box is None:
                    findings.append(Finding("warning", "empty_mask", "the mask has no pixel; it is left out.",
                                            shape.where))
                    continue
            cleaned = clean_box(box, size, shape.where, None, findings)
            if cleaned is not None:
                boxes.append(cleaned)
                labels.append(index[shape.label])
        width, height = size if size else (None, None)
        samples.append(Sample(item.image, BoxTarget(tuple(boxes), tuple(labels), (False,) * len(labels), width,
                                                    height), item.where))
    _count_note(findings, counts, source, {
        "polygon_as_box": "{n} polygon(s) read as their bounding boxes (object detection).",
        "mask_as_box": "{n} mask(s) read as their bounding boxes (object detection).",
        "tags_ignored": "{n} image-level tag(s) are not read for object detection."})
    return SampleSet(samples, names, task="detection", format=label_file.format, source=source,
                     findings=findings)


def _mask_box(rle: dict[str, Any] | None) -> tuple[float, float, float, float] | None:
    from pycocotools import mask as coco_mask

    if rle is None:
        return None
    x, y, w, h = (float(v) for v in coco_mask.toBbox({"size": rle["size"], "counts": rle["counts"].encode()}))
    return (x, y, x + w, y + h) if w > 0 and h > 0 else None


def to_segmentation(label_file: LabelFile, classes: list[str] | None = None) -> SampleSet:
    """The regions of ``label_file`` as a segmentation :class:`SampleSet`: class 0 ``background`` where nothing is
    drawn, each label ``k`` (in :func:`_names` order) class ``k + 1``; polygons, masks and boxes (info
    ``box_as_mask``) are painted in file order, later over earlier (info ``polygon_as_mask``). Tags are not read.
    ``classes``: read against these names (``background`` first)."""
    from oculi.data.formats.masks import finish

    findings = list(label_file.findings)
    source = str(label_file.source)
    names = list(classes) if classes is not None else \
        ["background", *(n for n in _names(label_file, ("box", "polygon", "mask")) if n != "background")]
    index = {name: i for i, name in enumerate(names)}
    counts: Counter[str] = Counter()
    entries = []
    for item in _usable(label_file, findings):
        size = _size(item)
        if size is None:
            findings.append(Finding("error", "unreadable_image", "the image size is unknown (the file says none and "
                                    "the image cannot be opened); it is left out.", item.where))
            continue
        width, height = size
        painted = []
        for shape in item.shapes:
            if shape.kind == "tag":
                counts["tags_ignored"] += 1
                continue
            if shape.label not in index:
                findings.append(unknown_class(shape.label, names, shape.where, None))
                continue
            if shape.kind == "mask":
                if list(shape.rle["size"]) != [height, width]:
                    findings.append(Finding("error", "mask_size", f"the mask is {shape.rle['size'][1]}×"
                                            f"{shape.rle['size'][0]} px but the image is {width}×{height} px; it is "
                                            "left out.", shape.where))
                    continue
                painted.append((index[shape.label], shape.rle, False))
                continue
            if shape.kind == "box":
                counts["box_as_mask"] += 1
                x0, y0, x1, y1 = shape.box
                points = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            else:
                counts["polygon_as_mask"] += 1
                points = shape.points
            painted.append((index[shape.label], [[round(v, 3) for p in points for v in p]], False))
        entries.append((item.image, MaskTarget(polygons=tuple(painted), width=width, height=height), item.where))
    samples, names = finish(entries, names, None, None, findings)
    _count_note(findings, counts, source, {
        "polygon_as_mask": "{n} polygon(s) painted into the class masks (semantic segmentation).",
        "box_as_mask": "{n} box(es) painted into the class masks as filled rectangles (semantic segmentation).",
        "tags_ignored": "{n} image-level tag(s) are not read for semantic segmentation."})
    return SampleSet(samples, names, task="segmentation", format=label_file.format, source=source,
                     findings=findings)


_PROJECTIONS = {"classification": to_classification, "detection": to_detection, "segmentation": to_segmentation}


def read_labels(path: Path, task: str, *, format: str = "auto", image_root: Path | None = None,
                classes: list[str] | None = None, default_class: str | None = None) -> SampleSet:
    """Read a Label Studio, CVAT, labelme or VIA file as a :class:`SampleSet` of ``task`` (``classification``,
    ``detection`` or ``segmentation``); see :func:`read_tool` for the options and the projections above for
    what each task reads."""
    if task not in _PROJECTIONS:
        raise ConfigError(f"task {task!r} is unknown; expected one of {', '.join(_PROJECTIONS)}.")
    label_file = read_tool(path, format=format, image_root=image_root, default_class=default_class)
    return _PROJECTIONS[task](label_file, classes)


def prelabels(path: Path, task: str, classes: list[str], *, image_root: Path | None = None,
              default_class: str | None = None) -> list[tuple[Path, Any]]:
    """Read the labels people already have (a Label Studio, CVAT, labelme or VIA file) as ``(image path, target)``
    pairs for a labeling job of ``task`` whose label categories are ``classes``: targets in the sample
    vocabulary (:mod:`oculi.types`) with class indices into ``classes`` — a class index (or tuple, multi-label),
    a :class:`BoxTarget` (``xyxy`` pixels) or a :class:`MaskTarget` (load with
    :func:`oculi.data.formats.masks.load_mask`; for segmentation ``classes`` includes ``background`` at 0).
    Labels of other classes are left out; images without any annotation are not returned."""
    sample_set = read_labels(path, task, image_root=image_root, classes=list(classes), default_class=default_class)
    return [(sample.image, sample.target) for sample in sample_set.samples]


def tool_output(to: str, out: Path) -> Path:
    """The file a conversion to the tool format ``to`` writes under ``out``: ``out`` itself when it has the
    format's suffix (``.json`` for ``labelstudio``, ``.xml`` for ``cvat``), else ``out/labelstudio.json`` or
    ``out/annotations.xml`` (the name CVAT's export gives it)."""
    out = Path(out)
    suffix, name = (".json", "labelstudio.json") if to == "labelstudio" else (".xml", "annotations.xml")
    return out if out.suffix.lower() == suffix else out / name


def write_tool(sample_set: SampleSet, to: str, path: Path) -> list[Finding]:
    """Write ``sample_set`` (any task) as the tool format ``to`` (one of :data:`WRITTEN_TOOL_FORMATS`) at
    ``path``; returns the writer's findings."""
    from oculi.data.formats.cvat import write_cvat
    from oculi.data.formats.labelstudio import write_labelstudio

    if to not in WRITTEN_TOOL_FORMATS:
        raise ConfigError(f"oculi writes {' and '.join(WRITTEN_TOOL_FORMATS)} files, not {to!r}.")
    findings = (write_labelstudio if to == "labelstudio" else write_cvat)(sample_set, path)
    if sample_set.task == "detection":
        findings += difficult_dropped(sample_set, "Label Studio" if to == "labelstudio" else "CVAT", str(path))
    return findings


def difficult_dropped(sample_set: SampleSet, fmt: str, where: str) -> list[Finding]:
    """One warning per ``difficult`` box of a detection ``sample_set`` written to ``fmt``, which has no such flag
    (the box is written as an ordinary one)."""
    findings = []
    for sample in sample_set.samples:
        target = sample.target
        for box, label, hard in zip(target.boxes, target.labels, target.difficult or (), strict=False):
            if hard:
                findings.append(Finding("warning", "difficult_not_representable", f"the "
                                        f"{sample_set.classes[label]!r} box at {[round(v, 2) for v in box]} is marked "
                                        f"difficult; {fmt} has no such flag, so it is written as an ordinary box.",
                                        sample.where() or where))
    return findings


def relative_name(image: Path, folder: Path) -> str:
    """How a written tool file names ``image``: relative to the file's ``folder`` when below it, else absolute."""
    image = Path(image).resolve()
    try:
        return image.relative_to(Path(folder).resolve()).as_posix()
    except ValueError:
        return os.fspath(image)
