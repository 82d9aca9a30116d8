"""Annotation formats oculi does not read (yet), recognised by content so the error says what the file is.

Label Studio JSON exports, CVAT for images XML and VIA 1.x/2 files are read (:mod:`oculi.data.formats.tools`) and
recognised before these checks run; what is left for them is the variants those readers refuse (CVAT for video,
Label Studio's JSON-MIN, a labeling configuration, VIA 3).

Recognised: CVAT XML (``<annotations><version>1.1</version>…<image name=…><box label=… xtl=…/>``; CVAT for images
and CVAT for video), Label Studio's labeling configuration (an XML ``<View>`` with ``<Image>`` and a labels tag),
Label Studio JSON exports (a list of tasks with ``data`` and ``annotations``/``completions``/``predictions``),
and VGG Image Annotator (VIA) JSON (an export keyed ``<filename><size>`` with ``filename``/``regions``, or a
VIA project with ``_via_img_metadata``). Each recogniser reads only the file's start (XML root) or parses JSON
files up to :data:`MAX_JSON_BYTES`, so probing a dataset stays cheap."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from oculi.errors import DataError

MAX_JSON_BYTES = 64 * 1024 * 1024
_PROBED_FILES = 20

SUPPORTED = ("Supported annotation formats: object detection — SageMaker per-image JSON (train + train_annotation), "
             "augmented manifests, COCO JSON, Pascal VOC XML (one <annotation> per image), YOLO; classification — "
             "class folders, .lst, augmented manifests; segmentation — SageMaker PNG masks, -ref manifests, VOC "
             "SegmentationClass, COCO; any task — Label Studio JSON exports, CVAT for images 1.1 XML, labelme JSON, "
             "VIA 1.x/2 JSON.")

_HINTS = {
    "cvat": "Export the task from CVAT as \"COCO 1.0\", \"Pascal VOC 1.1\" or \"YOLO 1.1\" instead.",
    "label-studio-config": "It is a labeling configuration, not annotations: export the project's annotations "
                           "from Label Studio as COCO, Pascal VOC XML or YOLO.",
    "label-studio-json": "Export the project from Label Studio as COCO, Pascal VOC XML or YOLO instead.",
    "via": "Export the annotations from VIA as COCO (Annotation → Export Annotations (COCO format)).",
}


def xml_root(path: Path) -> str | None:
    """The tag of the root element of the XML file ``path`` (namespace dropped), read without parsing the rest;
    None when the file is not XML or cannot be read."""
    try:
        for _, element in ET.iterparse(path, events=("start",)):
            return element.tag.rsplit("}", 1)[-1]
    except (ET.ParseError, OSError, UnicodeDecodeError, ValueError):
        return None
    return None


def is_voc_xml(path: Path) -> bool:
    """True when ``path`` is a Pascal VOC annotation: XML whose root element is ``<annotation>``."""
    return xml_root(Path(path)) == "annotation"


def _describe_xml(path: Path) -> tuple[str, str] | None:
    """CVAT or Label Studio XML, read as a stream up to the first ``<image>``/``<track>`` (CVAT exports of
    large tasks are hundreds of MB)."""
    root = xml_root(path)
    if root == "View":
        return "label-studio-config", "a Label Studio labeling configuration (root <View>)"
    if root != "annotations":
        return None
    version, kind, depth = None, "images", 0
    try:
        for event, element in ET.iterparse(path, events=("start", "end")):
            depth += 1 if event == "start" else -1
            if event == "start" and depth == 2 and element.tag in ("image", "track"):
                kind = "video" if element.tag == "track" else "images"
                break
            if event == "end" and depth == 1:
                if element.tag == "version" and element.text:
                    version = element.text.strip()
                element.clear()
    except (ET.ParseError, OSError, UnicodeDecodeError, ValueError):
        pass
    return "cvat", f"a CVAT for {kind} XML export (root <annotations>{f', version {version}' if version else ''})"


def _describe_json_value(data: Any) -> tuple[str, str] | None:
    if isinstance(data, dict):
        if "_via_img_metadata" in data or "_via_settings" in data:
            return "via", "a VGG Image Annotator (VIA) project (\"_via_img_metadata\")"
        values = list(data.values())
        if values and all(isinstance(v, dict) and "filename" in v and ("regions" in v or "size" in v)
                          for v in values[:50]):
            return "via", (f"a VGG Image Annotator (VIA) JSON export ({len(values)} entries keyed like "
                           f"{next(iter(data))!r} with \"filename\" and \"regions\")")
        return None
    if isinstance(data, list) and data and all(isinstance(v, dict) for v in data[:50]):
        first = data[0]
        if "data" in first and any(k in first for k in ("annotations", "completions", "predictions")):
            return "label-studio-json", f"a Label Studio JSON export ({len(data)} tasks with \"data\" and " \
                                        "\"annotations\")"
        if "image" in first and any(k in first for k in ("annotation_id", "annotator", "label", "lead_time")):
            return "label-studio-json", f"a Label Studio JSON-MIN export ({len(data)} tasks with \"image\" and " \
                                        "\"label\")"
    return None


_JSON_MARKERS = ('"_via_', '"filename"', '"data"', '"image"')


def _describe_json(path: Path) -> tuple[str, str] | None:
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return None
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            head = f.read(1 << 16)
        if not any(marker in head for marker in _JSON_MARKERS):  # COCO, manifests…: no full parse
            return None
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return _describe_json_value(json.loads(text))
    except (ValueError, RecursionError):
        pass
    lines = [line for line in text.splitlines() if line.strip()]  # a one-record-per-line VIA/LS file
    try:
        return _describe_json_value(json.loads(lines[0])) if len(lines) == 1 else None
    except (ValueError, RecursionError, IndexError):
        return None


def describe_foreign(path: Path) -> str | None:
    """When the file ``path`` is an annotation format oculi recognises but does not read, the sentence saying
    what it looks like, that oculi does not read it, what is supported and how to export a supported format;
    else None (also for folders and unreadable files)."""
    path = Path(path)
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    found = _describe_xml(path) if suffix == ".xml" else _describe_json(path) if suffix in (".json", ".jsonl",
                                                                                            ".manifest") else None
    if found is None and suffix not in (".xml", ".json", ".jsonl", ".manifest"):
        try:
            with path.open("rb") as f:
                start = f.read(64).lstrip()[:1]
        except OSError:
            return None
        found = _describe_xml(path) if start == b"<" else _describe_json(path) if start in (b"{", b"[") else None
    if found is None:
        return None
    key, what = found
    return f"{path}: this looks like {what}; oculi does not read this format (yet). {_HINTS[key]} {SUPPORTED}"


def find_foreign(folder: Path) -> str | None:
    """:func:`describe_foreign` for the first top-level ``.xml``/``.json`` file of ``folder`` (and of its
    ``annotations``/``Annotations`` sub-folder) that is an unsupported annotation format; None when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    candidates: list[Path] = []
    for where in (folder, folder / "annotations", folder / "Annotations"):
        if where.is_dir():
            candidates += sorted(p for p in where.iterdir() if p.is_file() and p.suffix.lower() in (".xml", ".json"))
    for candidate in candidates[:_PROBED_FILES]:
        message = describe_foreign(candidate)
        if message:
            return message
    return None


def raise_if_foreign(path: Path) -> None:
    """Raise :class:`DataError` with :func:`describe_foreign`'s sentence (for a file) or :func:`find_foreign`'s
    (for a folder) when ``path`` is an annotation format oculi does not read."""
    path = Path(path)
    message = describe_foreign(path) if path.is_file() else find_foreign(path)
    if message:
        raise DataError(message)
