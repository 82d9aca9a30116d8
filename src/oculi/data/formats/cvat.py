"""CVAT for images 1.1 XML (CVAT's "CVAT for images" export, ``annotations.xml``)::

    <annotations><version>1.1</version>
      <meta><task><labels><label><name>bee</name></label>…</labels></task></meta>   (or <project>)
      <image id="0" name="a.jpg" width="640" height="480">
        <tag label="bee"/>
        <box label="bee" xtl="10.0" ytl="20.0" xbr="50.0" ybr="60.0" rotation="0" z_order="0"/>
        <polygon label="bee" points="10.0,20.0;50.0,20.0;30.0,60.0" z_order="0"/>
        <mask label="bee" rle="3, 2, …" left="10" top="20" width="5" height="4" z_order="0"/>
      </image>
    </annotations>

Coordinates are pixels. ``rotation`` turns a box by degrees clockwise about its centre (read as the rotated
corners' bounding box); shapes are read in ``z_order`` (later paints over earlier in a mask). A ``<mask>``'s
``rle`` counts alternate runs of 0s and 1s (starting with 0s) over its ``width × height`` rectangle, row by row,
placed at ``left``/``top``. Tracks (CVAT for video) are not read."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from oculi.data.formats.foreign import xml_root
from oculi.data.formats.tools import Item, LabelFile, Shape, as_number, find_image, image_roots, mask_rle, relative_name
from oculi.errors import DataError
from oculi.types import Finding, SampleSet

FORMAT = "cvat"
_SHAPES = ("tag", "box", "polygon", "mask")


def is_cvat(path: Path) -> bool:
    """True when ``path`` is a CVAT for images XML: root ``<annotations>`` whose first item is an ``<image>``
    (or that holds no ``<track>``)."""
    path = Path(path)
    if not path.is_file() or xml_root(path) != "annotations":
        return False
    depth = 0
    try:
        for event, element in ET.iterparse(path, events=("start", "end")):
            depth += 1 if event == "start" else -1
            if event == "start" and depth == 2 and element.tag in ("image", "track"):
                return element.tag == "image"
    except (ET.ParseError, OSError, ValueError):
        return False
    return True


def _declared(root: ET.Element) -> list[str]:
    names = []
    for label in root.iterfind("./meta/*/labels/label"):
        name = label.findtext("name")
        if name and name not in names:
            names.append(name)
    return names


def _points(text: str | None, path: Path, where: str) -> tuple[tuple[float, float], ...]:
    pairs = [p for p in (text or "").split(";") if p.strip()]
    points = []
    for pair in pairs:
        parts = pair.split(",")
        if len(parts) != 2:
            raise DataError(f"{path}: {where}: points {text!r} are not `x,y;x,y;…` pixel pairs.")
        points.append((as_number(parts[0], path, where, "x"), as_number(parts[1], path, where, "y")))
    if len(points) < 3:
        raise DataError(f"{path}: {where}: a polygon needs at least 3 points; got {text!r}.")
    return tuple(points)


def _box(element: ET.Element, path: Path, where: str) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (as_number(element.get(k), path, where, k) for k in ("xtl", "ytl", "xbr", "ybr"))
    angle = math.radians(as_number(element.get("rotation", "0"), path, where, "rotation"))
    if not angle:
        return x0, y0, x1, y1
    cx, cy, cos, sin = (x0 + x1) / 2, (y0 + y1) / 2, math.cos(angle), math.sin(angle)
    corners = [(cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos)
               for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    return min(c[0] for c in corners), min(c[1] for c in corners), max(c[0] for c in corners), \
        max(c[1] for c in corners)


def _mask(element: ET.Element, width: int, height: int, path: Path, where: str) -> np.ndarray:
    left, top, w, h = (int(as_number(element.get(k), path, where, k)) for k in ("left", "top", "width", "height"))
    try:
        counts = [int(v) for v in (element.get("rle") or "").split(",") if v.strip()]
    except ValueError:
        raise DataError(f"{path}: {where}: rle {element.get('rle')!r} is not comma-separated run lengths.") from None
    if sum(counts) != w * h or any(c < 0 for c in counts) or left < 0 or top < 0 or left + w > width or \
            top + h > height:
        raise DataError(f"{path}: {where}: the mask's run lengths add up to {sum(counts)}, not its {w}×{h} "
                        f"rectangle at ({left}, {top}) inside the {width}×{height} image; re-export from CVAT.")
    flat = np.repeat(np.arange(len(counts)) % 2 == 1, counts)
    mask = np.zeros((height, width), dtype=bool)
    mask[top:top + h, left:left + w] = flat.reshape(h, w)
    return mask


def read_cvat(path: Path, image_root: Path | None = None) -> LabelFile:
    """Read a CVAT for images 1.1 XML into a :class:`~oculi.data.formats.tools.LabelFile` (pixels). Other
    elements (``points``, ``polyline``, ``ellipse``, ``skeleton``) are findings; a malformed entry is a
    :class:`DataError` naming the file, image and element."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DataError(f"{path}: not valid XML ({e}); re-export the task from CVAT as \"CVAT for images "
                        "1.1\".") from None
    roots = image_roots(path, image_root)
    findings: list[Finding] = []
    skipped: dict[str, int] = {}
    items = []
    for number_, image in enumerate(root.iterfind("image"), start=1):
        name = image.get("name")
        where = f"{path} (image {image.get('id', number_)}: {name})"
        if not name:
            raise DataError(f"{path}: <image> number {number_} has no name attribute.")
        width = int(as_number(image.get("width"), path, where, "width"))
        height = int(as_number(image.get("height"), path, where, "height"))
        item = Item(name, find_image(name, roots), width, height, where=where)
        elements = sorted(enumerate(image), key=lambda e: (int(e[1].get("z_order", "0") or 0), e[0]))
        for position, element in elements:
            entry = f"{where} <{element.tag}> {position + 1}"
            if element.tag not in _SHAPES:
                skipped[element.tag] = skipped.get(element.tag, 0) + 1
                continue
            label = element.get("label")
            if not label:
                raise DataError(f"{path}: {entry}: no label attribute.")
            if element.tag == "tag":
                item.shapes.append(Shape("tag", label, where=entry))
            elif element.tag == "box":
                item.shapes.append(Shape("box", label, box=_box(element, path, entry), where=entry))
            elif element.tag == "polygon":
                item.shapes.append(Shape("polygon", label, points=_points(element.get("points"), path, entry),
                                         where=entry))
            else:
                item.shapes.append(Shape("mask", label, rle=mask_rle(_mask(element, width, height, path, entry)),
                                         where=entry))
        items.append(item)
    for tag, count in skipped.items():
        findings.append(Finding("warning", "unsupported_shape", f"{count} <{tag}> element(s) are not read (oculi "
                                "reads tags, boxes, polygons and masks).", str(path)))
    if root.find("track") is not None:
        findings.append(Finding("warning", "tracks_not_read", "<track> elements (CVAT for video) are not read; "
                                "export the task as \"CVAT for images 1.1\".", str(path)))
    return LabelFile(FORMAT, path, items, classes=_declared(root), findings=findings)


def _run_lengths(mask: np.ndarray) -> list[int]:
    """CVAT's mask RLE: alternating run lengths of 0s and 1s, row by row, starting with 0s."""
    flat = mask.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    return [0, *counts] if flat.size and flat[0] else counts


def write_cvat(sample_set: SampleSet, xml_path: Path) -> list[Finding]:
    """Write ``sample_set`` as CVAT for images 1.1 XML at ``xml_path``: classification → ``<tag>``, detection →
    ``<box>``, segmentation → one ``<mask>`` per class present (class 0, the background, unpainted; ignored
    pixels not written: info ``ignore_not_written``). Images are named relative to the file's folder when below
    it, else by absolute path."""
    from oculi.data.formats.boxes import number, target_size
    from oculi.data.formats.masks import load_mask
    from oculi.types import IGNORE_INDEX

    xml_path = Path(xml_path)
    findings: list[Finding] = []
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    labels = ET.SubElement(ET.SubElement(ET.SubElement(root, "meta"), "task"), "labels")
    skip_background = sample_set.task == "segmentation"
    for i, name in enumerate(sample_set.classes):
        if skip_background and i == 0:
            continue
        label = ET.SubElement(labels, "label")
        ET.SubElement(label, "name").text = name
        ET.SubElement(label, "type").text = "any"
        ET.SubElement(label, "attributes")
    ignored = 0
    for image_id, sample in enumerate(sample_set.samples):
        if sample_set.task == "segmentation":
            mask = load_mask(sample.target)
            height, width = mask.shape
        else:
            size = target_size(sample)
            if size is None:
                findings.append(Finding("error", "unreadable_image", "the image size is unknown (the image cannot "
                                        "be opened); it is left out.", str(sample.image)))
                continue
            width, height = size
        image = ET.SubElement(root, "image", id=str(image_id), name=relative_name(sample.image, xml_path.parent),
                              width=str(width), height=str(height))
        if sample_set.task == "classification":
            target = sample.target if isinstance(sample.target, tuple) else (sample.target,)
            for index in target:
                ET.SubElement(image, "tag", label=sample_set.classes[index], source="manual")
        elif sample_set.task == "detection":
            for (x0, y0, x1, y1), index in zip(sample.target.boxes, sample.target.labels, strict=True):
                ET.SubElement(image, "box", label=sample_set.classes[index], source="manual", occluded="0",
                              xtl=str(number(x0)), ytl=str(number(y0)), xbr=str(number(x1)), ybr=str(number(y1)),
                              z_order="0")
        else:
            ignored += int((mask == IGNORE_INDEX).sum())
            for value in np.unique(mask):
                if value in (0, IGNORE_INDEX):
                    continue
                ys, xs = np.nonzero(mask == value)
                top, left, bottom, right = ys.min(), xs.min(), ys.max() + 1, xs.max() + 1
                runs = _run_lengths(mask[top:bottom, left:right] == value)
                ET.SubElement(image, "mask", label=sample_set.classes[int(value)], source="manual", occluded="0",
                              rle=", ".join(map(str, runs)), left=str(left), top=str(top),
                              width=str(right - left), height=str(bottom - top), z_order="0")
    if ignored:
        findings.append(Finding("info", "ignore_not_written", f"{ignored} ignored pixel(s) (value 255) are not "
                                "written: a CVAT mask has no 'ignore'; they read back as background.", str(xml_path)))
    if skip_background and sample_set.classes and sample_set.classes[0] != "background":
        findings.append(Finding("info", "background_class", f"class 0 ({sample_set.classes[0]!r}) is left unpainted "
                                "and reads back as 'background'.", str(xml_path)))
    ET.indent(root)
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = xml_path.with_name(f".{xml_path.name}.tmp")
    ET.ElementTree(root).write(temporary, encoding="utf-8", xml_declaration=True)
    temporary.replace(xml_path)
    return findings
