"""SageMaker augmented manifests for image classification (JSON lines, e.g. Ground Truth output).

Each line is a JSON object with the image in ``source-ref`` (or ``image-ref``) and the label in one attribute
(``"class"`` below; found automatically as the one attribute besides the image reference that does not end in
``-metadata``, or named with ``label_attribute``)::

    {"source-ref": "s3://bucket/images/a.jpg", "class": "0"}                          single-label (int or "0")
    {"source-ref": "s3://bucket/images/a.jpg", "class": "[1, 0, 1]"}                  multi-hot (list or string)
    {"source-ref": "s3://bucket/images/a.jpg", "class": [0, 2],
     "class-metadata": {"class-map": {"0": "cat", "2": "dog"},
                        "type": "groundtruth/image-classification-multilabel"}}       class ids

Class names come from ``<label>-metadata``: its ``class-map`` (``{"0": "cat"}``, merged over all lines, since
Ground Truth writes on each line only the classes of that image) and, for single-label lines, its ``class-name``.
Ids without a name are named ``"0"``, ``"1"``, ….

List labels are multi-hot or class ids (``label_format``). ``"auto"`` decides, in this order:

1. class ids when the metadata type is ``groundtruth/image-classification-multilabel`` (Ground Truth writes ids);
2. multi-hot when every list holds only 0/1 and its length equals the number of classes — ``len(classes)`` when
   given, else the class-map's highest id + 1;
3. without any class-map or ``classes``: multi-hot when every list holds only 0/1 and all lists have the same
   length ≥ 2 (SageMaker's default ``label-format`` is multi-hot; a class-id list cannot repeat an id);
4. class ids otherwise.

The decision is reported as an info finding (``label_format``). Image references may be absolute local paths,
paths relative to the manifest's folder, ``file://`` URIs or ``s3://`` URIs. An ``s3://`` URI is mapped through
``image_roots`` (the longest matching S3 prefix → local folder); without a match the file is looked for by name
in the manifest's folder and in its ``images/`` sub-folder.

Object detection manifests (Ground Truth bounding-box output) are read by :func:`read_detection_manifest`::

    {"source-ref": "s3://bucket/a.jpg",
     "bounding-box": {"image_size": [{"width": 500, "height": 400, "depth": 3}],
                      "annotations": [{"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128}]},
     "bounding-box-metadata": {"class-map": {"0": "dog"}, "type": "groundtruth/object-detection"}}

Boxes are ``left, top, width, height`` pixels and become ``xyxy`` pixels."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import unquote, urlparse

from oculi.data.formats.boxes import (
    beyond_num_classes,
    class_table,
    clean_box,
    image_size,
    number,
    output_ids,
    target_size,
    unknown_class,
)
from oculi.data.formats.lst import MAX_CLASSES, gap_finding, too_large_message
from oculi.errors import ConfigError, DataError
from oculi.types import BoxTarget, Finding, Sample, SampleSet

LabelFormat = Literal["auto", "multi-hot", "class-id"]
IMAGE_ATTRIBUTES = ("source-ref", "image-ref")
_MULTILABEL_TYPE = "groundtruth/image-classification-multilabel"
_SINGLE_TYPE = "groundtruth/image-classification"
_DETECTION_TYPE = "groundtruth/object-detection"


def is_manifest(path: Path) -> bool:
    """True when ``path`` is a file whose first non-empty line is a JSON object — whatever its extension."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    return isinstance(json.loads(line), dict)
    except (UnicodeDecodeError, OSError, ValueError, RecursionError):
        return False
    return False


@dataclass
class _Line:
    lineno: int
    image: Path
    label: int | list[int]


def _whole(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return _whole(float(value.strip())) if "." in value else int(value.strip())
        except ValueError:
            return None
    return None


def _parse_label(value: Any) -> int | list[int] | None:
    """``0``, ``"0"`` → 0; ``[1, 0, 1]``, ``"[1, 0, 1]"`` → [1, 0, 1]; anything else → None."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return None
    if isinstance(value, list):
        items = [_whole(v) for v in value]
        return [i for i in items if i is not None] if None not in items else None
    return _whole(value)


def _s3_prefixes(image_roots: dict[str, Path] | None) -> dict[str, Path]:
    prefixes = {}
    for prefix, folder in (image_roots or {}).items():
        if not prefix.startswith("s3://"):
            raise ConfigError(
                f"image root {prefix!r} is not an S3 prefix; expected s3://bucket/prefix=DIR, "
                "e.g. `--image-root s3://my-bucket/images=./images`."
            )
        prefixes[prefix.rstrip("/")] = Path(folder)
    return prefixes


def _resolve(ref: str, folder: Path, prefixes: dict[str, Path]) -> tuple[Path | None, str]:
    """The local file for image reference ``ref`` (None when not found) and, when not found, the fix to print."""
    if ref.startswith("s3://"):
        matches = [p for p in prefixes if ref == p or ref.startswith(p + "/")]
        name = ref.rsplit("/", 1)[-1]
        if matches:
            prefix = max(matches, key=len)
            candidate = prefixes[prefix] / ref[len(prefix) :].lstrip("/")
            if candidate.is_file():
                return candidate, ""
            return None, f"looked for {candidate} (from the image root {prefix}={prefixes[prefix]})"
        tried = [folder / name, folder / "images" / name]
        for candidate in tried:
            if candidate.is_file():
                return candidate, ""
        return None, (
            f"looked for {tried[0]} and {tried[1]}. Download the images and pass "
            f"`--image-root {ref.rsplit('/', 1)[0]}=DIR` with the folder that holds {name}"
        )
    if ref.startswith("file://"):
        candidate = Path(unquote(urlparse(ref).path))
    elif "://" in ref:
        return None, "only local paths, file:// and s3:// references are supported; download the image first"
    else:
        candidate = Path(ref) if Path(ref).is_absolute() else folder / ref
    if candidate.is_file():
        return candidate, ""
    return None, f"looked for {candidate}; relative paths are relative to the manifest's folder ({folder})"


def _open_records(path: Path, findings: list[Finding]) -> list:
    """The manifest's records (see :func:`_read_records`); a missing or empty file is a :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{path}: manifest file not found.")
    records = _read_records(path, findings)
    if not records and not findings:
        raise DataError(f"{path}: the manifest has no lines; expected one JSON object per image.")
    return records


def _read_records(path: Path, findings: list[Finding]) -> list[tuple[int, dict[str, Any]]]:
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as e:
            findings.append(Finding("error", "bad_json", f"not valid JSON ({e}).", str(path), lineno))
            continue
        if not isinstance(record, dict):
            findings.append(
                Finding("error", "bad_json", "each line must be a JSON object {...}.", str(path), lineno)
            )
            continue
        records.append((lineno, record))
    return records


def _label_attribute(path: Path, records: list[tuple[int, dict[str, Any]]], explicit: str | None) -> str:
    """The label attribute: ``explicit`` (checked against the lines), else the only attribute besides the image
    reference and ``…-metadata``; raises :class:`DataError` naming the candidates and how to choose one."""
    candidates: list[str] = []
    for _, record in records:
        for key in record:
            if key not in IMAGE_ATTRIBUTES and not key.endswith("-metadata") and key not in candidates:
                candidates.append(key)
    if explicit is not None:
        if explicit in candidates or not records:
            return explicit
        raise DataError(
            f"{path}: no line has the label attribute {explicit!r} (from --label-attribute / label_attribute); "
            f"the label attributes in this manifest are: {', '.join(candidates) or 'none'}."
        )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError(
            f"{path}: no label attribute; each line needs the image in `source-ref` and a label such as "
            '"class": 0. Found only the keys: '
            f"{', '.join(sorted({k for _, r in records for k in r})) or 'none'}."
        )
    raise DataError(
        f"{path}: {len(candidates)} possible label attributes ({', '.join(candidates)}); name the one to use with "
        f"`--label-attribute {candidates[0]}` (Python: label_attribute={candidates[0]!r}; one of "
        f"{', '.join(candidates)})."
    )


def _reject_other_tasks(path: Path, attribute: str, records: list[tuple[int, dict[str, Any]]]) -> None:
    for _, record in records:
        metadata = record.get(f"{attribute}-metadata")
        kind = metadata.get("type") if isinstance(metadata, dict) else None
        if isinstance(kind, str) and kind.startswith("groundtruth/") and "image-classification" not in kind:
            raise DataError(
                f"{path}: the {attribute!r} labels are of type {kind!r}; image classification needs "
                f"{_SINGLE_TYPE!r} or {_MULTILABEL_TYPE!r} labels (a class id or a list of them per image). "
                f"Read bounding boxes with read_detection_manifest or convert them with `oculi data convert {path}`."
            )
        if isinstance(record.get(attribute), dict):
            raise DataError(
                f"{path}: the {attribute!r} labels are JSON objects (bounding boxes?); image classification needs "
                'a class id ("class": 0) or a list of them per image.'
            )


def _choose_format(
    label_format: LabelFormat, lists: list[list[int]], num_classes: int | None, types: set[str]
) -> tuple[str, str]:
    """Resolve ``label_format`` for list labels; returns the format and the reason (see the module docstring)."""
    if label_format != "auto":
        return label_format, f"label_format={label_format!r} was given"
    binary = all(v in (0, 1) for values in lists for v in values)
    lengths = {len(values) for values in lists}
    if _MULTILABEL_TYPE in types:
        return "class-id", f"the metadata type is {_MULTILABEL_TYPE!r} (Ground Truth writes class ids)"
    if num_classes is not None:
        if binary and lengths == {num_classes}:
            return "multi-hot", f"every list holds only 0/1 and has one entry per class ({num_classes})"
        return "class-id", f"the lists are not 0/1 vectors of one entry per class ({num_classes})"
    if binary and len(lengths) == 1 and min(lengths) >= 2:
        return "multi-hot", f"every list holds only 0/1 and has the same length ({min(lengths)})"
    return "class-id", "the lists are not 0/1 vectors of one common length"


def read_manifest(
    path: Path,
    image_roots: dict[str, Path] | None = None,
    label_attribute: str | None = None,
    label_format: LabelFormat = "auto",
    classes: list[str] | None = None,
    num_classes: int | None = None,
) -> SampleSet:
    """Read an augmented manifest into a :class:`SampleSet` (targets: ``int`` class index, or a sorted tuple of
    class indices for list labels). See the module docstring for label forms, class names and image references.

    ``image_roots``: ``{"s3://bucket/prefix": local_folder}``. ``classes``: the class names to read against (a
    validation manifest read against the training classes); named ids are mapped by name, unnamed ids index into
    ``classes``. ``num_classes``: how many classes there are (SageMaker's hyperparameter): an id at or above it is a
    ``label_out_of_range`` error naming the line. Without a class-map, ``classes`` or ``num_classes``, unused ids below
    the highest one are a ``class_id_gap`` warning naming the line. Bad lines are error findings naming the manifest and
    line (``bad_json``, ``missing_attribute``, ``bad_label``, ``label_out_of_range``, ``unknown_class``,
    ``class_name_conflict``, ``missing_image``) and are left out. Raises :class:`DataError` when the file is missing or
    the label attribute cannot be decided."""
    path = Path(path)
    if label_format not in get_args(LabelFormat):
        raise ConfigError(
            f"`label_format` got {label_format!r}; expected one of {', '.join(get_args(LabelFormat))}. "
            'Pass label_format="class-id" for lists of class ids.'
        )
    prefixes = _s3_prefixes(image_roots)
    findings: list[Finding] = []
    records = _open_records(path, findings)
    attribute = _label_attribute(path, records, label_attribute)
    _reject_other_tasks(path, attribute, records)

    def error(code: str, lineno: int, message: str) -> None:
        findings.append(Finding("error", code, message, str(path), lineno))

    names: dict[int, str] = {}
    name_lines: dict[int, int] = {}
    has_class_map = False
    types: set[str] = set()
    lines: list[_Line] = []
    for lineno, record in records:
        ref = next((record[k] for k in IMAGE_ATTRIBUTES if k in record), None)
        if not isinstance(ref, str):
            error(
                "missing_attribute", lineno, 'no image reference; expected "source-ref": "<path or s3 URI>".'
            )
            continue
        if attribute not in record:
            error("missing_attribute", lineno, f"no {attribute!r} label attribute.")
            continue
        label = _parse_label(record[attribute])
        if label is None:
            error(
                "bad_label",
                lineno,
                f'label {record[attribute]!r} is not a class id (0, "0") or a list of '
                'them ([1, 0, 1], "[0, 2]").',
            )
            continue
        if isinstance(label, int) and label >= MAX_CLASSES:
            error("label_out_of_range", lineno, too_large_message(label))
            continue
        metadata = record.get(f"{attribute}-metadata")
        if isinstance(metadata, dict):
            if isinstance(metadata.get("type"), str):
                types.add(metadata["type"])
            class_map = metadata.get("class-map")
            entries = dict(class_map) if isinstance(class_map, dict) else {}
            has_class_map = has_class_map or bool(entries)
            if isinstance(label, int) and isinstance(metadata.get("class-name"), str):
                entries[label] = metadata["class-name"]
            for key, name in entries.items():
                class_id = _whole(key)
                if class_id is None or not isinstance(name, str):
                    error("bad_label", lineno, f"class-map entry {key!r}: {name!r} is not id: name.")
                elif isinstance(class_id, int) and class_id >= MAX_CLASSES:
                    error("label_out_of_range", lineno, f"class-map entry {key!r}: " + too_large_message(class_id))
                elif names.setdefault(class_id, name) != name:
                    error(
                        "class_name_conflict",
                        lineno,
                        f"class id {class_id} is named {name!r} here but "
                        f"{names[class_id]!r} on line {name_lines[class_id]}.",
                    )
                else:
                    name_lines.setdefault(class_id, lineno)
        image, fix = _resolve(ref, path.parent, prefixes)
        if image is None:
            error("missing_image", lineno, f"image {ref} not found: {fix}.")
            continue
        lines.append(_Line(lineno, image, label))

    lists = [line.label for line in lines if isinstance(line.label, list)]
    multi_label = bool(lists)
    num_known = len(classes) if classes is not None else (
        num_classes if num_classes is not None else (max(names) + 1 if has_class_map else None))
    fmt = "single"
    if multi_label:
        fmt, reason = _choose_format(label_format, lists, num_known, types)
        findings.append(
            Finding(
                "info",
                "label_format",
                f"list labels read as {fmt} because {reason}. "
                f'Pass label_format="{"class-id" if fmt == "multi-hot" else "multi-hot"}" '
                "if that is wrong.",
                str(path),
            )
        )
    width = num_known if num_known is not None else max((len(v) for v in lists), default=0)
    class_index = {name: i for i, name in enumerate(classes)} if classes is not None else {}

    def to_index(class_id: int, lineno: int) -> int | None:
        name = names.get(class_id)
        if class_id < 0:
            error("label_out_of_range", lineno, f"class id {class_id} is negative; class ids are 0, 1, 2, ….")
        elif class_id >= MAX_CLASSES:
            error("label_out_of_range", lineno, too_large_message(class_id))
        elif classes is not None and name is not None:
            if name in class_index:
                return class_index[name]
            error(
                "unknown_class",
                lineno,
                f"class {name!r} (id {class_id}) is not one of the training classes ({', '.join(classes)}).",
            )
        elif classes is not None and class_id >= len(classes):
            error(
                "label_out_of_range",
                lineno,
                f"class id {class_id} is outside the training classes (ids 0–{len(classes) - 1}).",
            )
        elif classes is None and num_classes is not None and class_id >= num_classes:
            error(
                "label_out_of_range",
                lineno,
                f"class id {class_id} is outside the class ids (0–{num_classes - 1}, from num_classes={num_classes}); "
                f"the line is left out. Fix the label, or pass -p num_classes={class_id + 1} if there are that "
                "many classes.",
            )
        elif classes is None and has_class_map and name is None:
            error(
                "label_out_of_range",
                lineno,
                f"class id {class_id} is not in the class-map "
                f"(ids {', '.join(str(i) for i in sorted(names))}).",
            )
        else:
            return class_id
        return None

    samples: list[Sample] = []
    for line in lines:
        if fmt == "multi-hot":
            values = line.label if isinstance(line.label, list) else []
            if len(values) != width or any(v not in (0, 1) for v in values):
                error(
                    "bad_label",
                    line.lineno,
                    f"expected a multi-hot list of {width} 0/1 values (one per class); got {line.label!r}.",
                )
                continue
            ids = [i for i, v in enumerate(values) if v == 1]
        else:
            ids = sorted(set(line.label if isinstance(line.label, list) else [line.label]))
        indices = [to_index(class_id, line.lineno) for class_id in ids]
        valid = [i for i in indices if i is not None]
        if len(valid) < len(indices):
            continue
        target = tuple(sorted(valid)) if multi_label else valid[0]
        samples.append(Sample(image=line.image, target=target, origin=f"{path}:{line.lineno}"))

    if classes is not None:
        class_list = list(classes)
    elif num_classes is not None:
        class_list = [names.get(i, str(i)) for i in range(num_classes)]
    else:
        used = [i for s in samples for i in (s.target if multi_label else (s.target,))]
        count = max([*used, *names, width - 1 if fmt == "multi-hot" else -1], default=-1) + 1
        class_list = [names.get(i, str(i)) for i in range(count)]
        if not has_class_map and fmt != "multi-hot":
            first_use: dict[int, tuple[str, int]] = {}
            for sample in samples:
                for i in sample.target if multi_label else (sample.target,):
                    first_use.setdefault(i, (str(path), int(sample.origin.rsplit(":", 1)[1])))
            gap = gap_finding(first_use)
            if gap is not None:
                findings.append(gap)
    return SampleSet(
        samples, class_list, multi_label=multi_label, format="manifest", source=str(path), findings=findings
    )


def write_manifest(sample_set: SampleSet, path: Path, label_attribute: str = "class") -> Path:
    """Write ``sample_set`` as a Ground-Truth-style augmented manifest with absolute ``source-ref`` paths.

    Single-label lines: ``"class": <int>`` plus ``class-name``, the full ``class-map`` and type
    ``groundtruth/image-classification``; multi-label lines: ``"class": [<ids>]`` plus the ``class-map`` and type
    ``groundtruth/image-classification-multilabel``. Reading the file back gives the same samples and classes.
    Returns ``path``."""
    path = Path(path)
    class_map = {str(i): name for i, name in enumerate(sample_set.classes)}
    multi = sample_set.multi_label or any(isinstance(s.target, tuple) for s in sample_set.samples)
    rows = []
    for sample in sample_set.samples:
        record: dict[str, Any] = {"source-ref": str(sample.image.resolve())}
        if multi:
            record[label_attribute] = (
                list(sample.target) if isinstance(sample.target, tuple) else [sample.target]
            )
            record[f"{label_attribute}-metadata"] = {"class-map": class_map, "type": _MULTILABEL_TYPE}
        else:
            record[label_attribute] = int(sample.target)
            record[f"{label_attribute}-metadata"] = {
                "class-name": sample_set.classes[sample.target],
                "class-map": class_map,
                "type": _SINGLE_TYPE,
            }
        rows.append(json.dumps(record) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rows), encoding="utf-8")
    return path


@dataclass(frozen=True)
class ImageReference:
    """One manifest line's image, for reading images without labels (batch transform).

    ``image``: the local file, or None with ``problem`` saying why (bad line, image not found). ``name``: a relative
    POSIX path naming the image in outputs — an ``s3://`` URI's key after its image root (or after the bucket), a
    relative reference as written, else the file name; never absolute and never with ``..``."""

    lineno: int
    reference: str
    name: str
    image: Path | None
    problem: str = ""


def _output_name(ref: str, prefixes: dict[str, Path]) -> str:
    if ref.startswith("s3://"):
        matches = [p for p in prefixes if ref.startswith(p + "/")]
        key = ref[len(max(matches, key=len)) + 1:] if matches else ref[len("s3://"):].partition("/")[2]
    elif ref.startswith("file://"):
        key = Path(unquote(urlparse(ref).path)).name
    else:
        key = ref
    parts = [p for p in key.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or Path(key).is_absolute():
        return Path(key).name or "image"
    return "/".join(parts)


def read_image_references(path: Path, image_roots: dict[str, Path] | None = None) -> list[ImageReference]:
    """Every line of an augmented manifest as an :class:`ImageReference` (``source-ref`` or ``image-ref``; other
    attributes are ignored), in file order. A bad line or a missing image is a reference with ``image=None`` and
    the problem naming the manifest line (and an empty ``name`` when the line names no image); ``image_roots``
    maps ``s3://`` prefixes to local folders as in :func:`read_manifest`. Raises :class:`DataError` when the
    file is missing or has no lines."""
    path = Path(path)
    prefixes = _s3_prefixes(image_roots)
    findings: list[Finding] = []
    records = _open_records(path, findings)
    references = [ImageReference(f.line or 0, "", "", None, f"{path}:{f.line}: {f.message}")
                  for f in findings]
    for lineno, record in records:
        ref = next((record[k] for k in IMAGE_ATTRIBUTES if k in record), None)
        if not isinstance(ref, str) or not ref:
            references.append(ImageReference(lineno, "", "", None, f"{path}:{lineno}: no image "
                                             'reference; expected "source-ref": "<path or s3 URI>".'))
            continue
        image, fix = _resolve(ref, path.parent, prefixes)
        problem = "" if image else f"{path}:{lineno}: image {ref} not found: {fix}."
        references.append(ImageReference(lineno, ref, _output_name(ref, prefixes), image, problem))
    return sorted(references, key=lambda r: r.lineno)


def read_detection_manifest(
    path: Path,
    image_roots: dict[str, Path] | None = None,
    label_attribute: str | None = None,
    classes: list[str] | None = None,
    num_classes: int | None = None,
) -> SampleSet:
    """Read a bounding-box augmented manifest into a detection :class:`SampleSet` (targets: :class:`BoxTarget`,
    ``xyxy`` absolute pixels; see the module docstring for the line shape and image references).

    Class names come from the ``class-map`` of every line's ``<label>-metadata``: with a class-map, a box whose
    ``class_id`` it does not name is an ``unknown_class`` error naming the line (the box is left out); without any,
    classes are named ``str(id)`` (ids ``0…num_classes-1`` when ``num_classes`` is given; a box with an id at or above
    it is a ``label_out_of_range`` error naming the line). Sparse ids become contiguous indices and
    ``SampleSet.class_ids`` keeps the originals. The image size is the label's ``image_size``, else read from the image
    header. Bad lines are error findings naming the manifest and line (``bad_json``, ``missing_attribute``,
    ``bad_label``, ``bad_box``, ``missing_image``, ``unknown_class``) and are left out. Raises :class:`DataError` when
    the file is missing or empty."""
    path = Path(path)
    prefixes = _s3_prefixes(image_roots)
    findings: list[Finding] = []
    records = _open_records(path, findings)
    attribute = _label_attribute(path, records, label_attribute)

    def error(code: str, lineno: int, message: str) -> None:
        findings.append(Finding("error", code, message, str(path), lineno))

    names: dict[int, str] = {}
    used: set[int] = set()
    lines: list[tuple[int, Path, dict[str, Any]]] = []
    for lineno, record in records:
        ref = next((record[k] for k in IMAGE_ATTRIBUTES if k in record), None)
        label = record.get(attribute)
        if not isinstance(ref, str):
            error("missing_attribute", lineno, 'no image reference; expected "source-ref": "<path or s3 URI>".')
            continue
        if not isinstance(label, dict) or not isinstance(label.get("annotations", []), list):
            error("bad_label", lineno, f"{attribute!r} must be an object with an \"annotations\" list of boxes "
                  '({"class_id", "left", "top", "width", "height"}); got ' f"{label!r:.80}.")
            continue
        metadata = record.get(f"{attribute}-metadata")
        class_map = metadata.get("class-map") if isinstance(metadata, dict) else None
        for key, name in (class_map or {}).items():
            class_id = _whole(key)
            if class_id is not None and isinstance(name, str):
                names.setdefault(class_id, name)
        for ann in label.get("annotations", []):
            class_id = _whole(ann.get("class_id")) if isinstance(ann, dict) else None
            if class_id is not None:
                used.add(class_id)
        image, fix = _resolve(ref, path.parent, prefixes)
        if image is None:
            error("missing_image", lineno, f"image {ref} not found: {fix}.")
            continue
        lines.append((lineno, image, label))
    # With a class-map, it is the list of classes: an id it does not name is a mistake, not a new class. Without
    # one, num_classes (when given) says which ids are classes.
    unnamed = set() if names else (set(range(num_classes)) if num_classes is not None else used)
    class_list, mapping, class_ids = class_table({**{i: str(i) for i in unnamed}, **names}, unnamed, classes)

    samples: list[Sample] = []
    for lineno, image, label in lines:
        sizes = label.get("image_size")
        size_entry = sizes[0] if isinstance(sizes, list) and sizes else sizes
        try:
            size = (int(size_entry["width"]), int(size_entry["height"]))
        except (KeyError, TypeError, ValueError):
            size = image_size(image)
        boxes, labels = [], []
        for ann in label.get("annotations", []):
            try:
                left, top = float(ann["left"]), float(ann["top"])
                box = (left, top, left + float(ann["width"]), top + float(ann["height"]))
                class_id = _whole(ann["class_id"])
            except (KeyError, TypeError, ValueError):
                class_id = None
            if class_id is None:
                error("bad_box", lineno, f"box {ann!r} needs numeric class_id, left, top, width and height; "
                      "it is left out.")
                continue
            if names and class_id not in names:
                findings.append(Finding(
                    "error", "unknown_class",
                    f"class_id {class_id} is not in the {attribute}-metadata class-map (ids "
                    f"{', '.join(f'{i}: {n}' for i, n in sorted(names.items()))}); the box is left out. Fix the "
                    "class_id, or add the class to the class-map.", str(path), lineno))
                continue
            if not names and num_classes is not None and classes is None and not 0 <= class_id < num_classes:
                findings.append(beyond_num_classes(class_id, num_classes, str(path), lineno))
                continue
            if class_id not in mapping:
                findings.append(unknown_class(class_id, class_list, str(path), lineno))
                continue
            cleaned = clean_box(box, size, str(path), lineno, findings)
            if cleaned is not None:
                boxes.append(cleaned)
                labels.append(mapping[class_id])
        width, height = size if size else (None, None)
        target = BoxTarget(tuple(boxes), tuple(labels), (False,) * len(labels), width, height)
        samples.append(Sample(image=image, target=target, origin=f"{path}:{lineno}"))
    return SampleSet(samples, class_list, task="detection", format="manifest", source=str(path),
                     findings=findings, class_ids=class_ids)


def write_detection_manifest(
    sample_set: SampleSet, path: Path, label_attribute: str = "bounding-box"
) -> list[Finding]:
    """Write a detection ``sample_set`` (``xyxy`` pixel boxes) as a Ground-Truth-style bounding-box manifest:
    ``source-ref`` the absolute image path, ``<label_attribute>`` with ``image_size`` and ``left, top, width,
    height`` pixel boxes, ``<label_attribute>-metadata`` with the full ``class-map`` and type
    ``groundtruth/object-detection``. Class ids are the original ids when the set was read from a manifest, else
    the class indices. Returns the findings about what changed (renumbered ids)."""
    path = Path(path)
    findings: list[Finding] = []
    ids = output_ids(sample_set, "manifest", 0, findings, str(path))
    class_map = {str(ids[i]): name for i, name in enumerate(sample_set.classes)}
    rows = []
    for sample in sample_set.samples:
        target: BoxTarget = sample.target
        label: dict[str, Any] = {}
        size = target_size(sample)
        if size is not None:
            label["image_size"] = [{"width": size[0], "height": size[1], "depth": 3}]
        label["annotations"] = [
            {"class_id": ids[c], "left": number(x0), "top": number(y0),
             "width": number(x1 - x0), "height": number(y1 - y0)}
            for (x0, y0, x1, y1), c in zip(target.boxes, target.labels, strict=True)
        ]
        record = {"source-ref": str(sample.image.resolve()), label_attribute: label,
                  f"{label_attribute}-metadata": {"class-map": class_map, "type": _DETECTION_TYPE}}
        rows.append(json.dumps(record) + "\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rows), encoding="utf-8")
    return findings
