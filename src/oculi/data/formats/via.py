"""VGG Image Annotator (VIA) JSON, versions 1 and 2, pixels.

- VIA 1.x region files (the Mask R-CNN balloon tutorial's ``via_region_data.json``): an object keyed
  ``<filename><size>`` of ``{"filename", "size", "regions": {"0": {"shape_attributes", "region_attributes"}}}``;
- VIA 2 exports: the same with ``regions`` as a list; VIA 2 projects: that object under ``_via_img_metadata``,
  with ``_via_attributes`` and ``_via_settings`` (``core.default_filepath``, where the images are).

``shape_attributes``: ``{"name": "rect", "x", "y", "width", "height"}`` or ``{"name": "polygon", "all_points_x",
"all_points_y"}``; other shapes (circle, ellipse, point, polyline) are findings. The class is a region attribute:
the one named ``class_attribute``, else the first of ``class``, ``label``, ``name``, ``category``, ``type``,
``object`` present, else the only one. A text value is the class; a checkbox / dropdown value (``{"bee": true}``)
is its chosen option. A region without a class (the balloon tutorial's regions have no attributes at all) gets
``default_class`` — and the findings say how many did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oculi.data.formats.tools import Item, LabelFile, Shape, as_number, find_image, image_roots, load_json
from oculi.errors import DataError
from oculi.types import Finding

FORMAT = "via"
CLASS_ATTRIBUTES = ("class", "label", "name", "category", "type", "object")


def _entries(data: Any) -> dict[str, Any] | None:
    """The per-image entries of VIA JSON ``data`` (a project's ``_via_img_metadata``), None when not VIA."""
    if isinstance(data, dict) and isinstance(data.get("_via_img_metadata"), dict):
        return data["_via_img_metadata"]
    if isinstance(data, dict) and data and all(isinstance(v, dict) and "filename" in v and "regions" in v
                                               for v in list(data.values())[:50]):
        return data
    return None


def is_via(path: Path) -> bool:
    """True when ``path`` is a VIA 1.x or 2 JSON export or project."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            head = f.read(1 << 16)
        if '"_via_' not in head and '"regions"' not in head and '"filename"' not in head:
            return False
        return _entries(json.loads(path.read_text(encoding="utf-8-sig"))) is not None
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return False


def _pick_attribute(attributes: dict[str, Any], class_attribute: str | None) -> str | None:
    if class_attribute is not None:
        return class_attribute
    for name in CLASS_ATTRIBUTES:
        if name in attributes:
            return name
    return next(iter(attributes)) if len(attributes) == 1 else None


def _class(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):  # checkbox: {"option": true}
        chosen = [k for k, v in value.items() if v]
        return chosen[0] if chosen else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _shape(region: Any, label: str, path: Path, where: str) -> Shape | None:
    shape = region.get("shape_attributes") if isinstance(region, dict) else None
    if not isinstance(shape, dict):
        raise DataError(f"{path}: {where}: a region needs \"shape_attributes\"; got {region!r}.")
    name = shape.get("name")
    if name == "rect":
        x, y, w, h = (as_number(shape.get(k), path, where, k) for k in ("x", "y", "width", "height"))
        return Shape("box", label, box=(x, y, x + w, y + h), where=where)
    if name == "polygon":
        xs, ys = shape.get("all_points_x"), shape.get("all_points_y")
        if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys) or len(xs) < 3:
            raise DataError(f"{path}: {where}: a polygon needs all_points_x and all_points_y of the same length, "
                            f"at least 3; got {xs!r} and {ys!r}.")
        points = tuple((as_number(x, path, where, "x"), as_number(y, path, where, "y")) for x, y in zip(xs, ys,
                                                                                                 strict=True))
        return Shape("polygon", label, points=points, where=where)
    return None


def read_via(path: Path, image_root: Path | None = None, default_class: str = "object",
             class_attribute: str | None = None) -> LabelFile:
    """Read a VIA 1.x / 2 JSON file into a :class:`~oculi.data.formats.tools.LabelFile` (pixels); see the module
    docstring for the class of each region. A malformed entry is a :class:`DataError` naming the file and image."""
    path = Path(path)
    data = load_json(path, "VIA")
    entries = _entries(data)
    if entries is None:
        raise DataError(f"{path}: not a VIA file (expected entries with \"filename\" and \"regions\", or a VIA 2 "
                        "project with \"_via_img_metadata\").")
    roots = image_roots(path, image_root)
    default_path = (((data.get("_via_settings") or {}).get("core") or {}).get("default_filepath") or "") \
        if isinstance(data, dict) else ""
    if default_path and image_root is None and "://" not in default_path:
        folder = Path(default_path)
        roots.append(folder if folder.is_absolute() else path.parent / folder)
    findings: list[Finding] = []
    defaulted, skipped, used = 0, {}, set()
    items = []
    for key, entry in entries.items():
        where = f"{path} (entry {key!r})"
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            raise DataError(f"{where}: an entry needs a \"filename\".")
        regions = entry.get("regions") or []
        if isinstance(regions, dict):  # VIA 1.x: {"0": region, "1": region}
            regions = [regions[k] for k in sorted(regions, key=lambda k: int(k) if str(k).isdigit() else 0)]
        if not isinstance(regions, list):
            raise DataError(f"{where}: \"regions\" is {type(regions).__name__}; expected a list or an object.")
        item = Item(entry["filename"], find_image(entry["filename"], roots), where=where)
        for n, region in enumerate(regions, start=1):
            entry_where = f"{where} region {n}"
            attributes = region.get("region_attributes") if isinstance(region, dict) else None
            attributes = attributes if isinstance(attributes, dict) else {}
            attribute = _pick_attribute(attributes, class_attribute)
            label = _class(attributes.get(attribute)) if attribute else None
            shape = _shape(region, label or default_class, path, entry_where)
            if shape is None:
                kind = str((region.get("shape_attributes") or {}).get("name"))
                skipped[kind] = skipped.get(kind, 0) + 1
                continue
            if label is None:
                defaulted += 1
            else:
                used.add(attribute)
            item.shapes.append(shape)
        items.append(item)
    if used:
        findings.append(Finding("info", "class_attribute", f"the class of each region is its "
                                f"{' / '.join(sorted(used))!r} region attribute.", str(path)))
    if defaulted:
        findings.append(Finding("info", "default_class", f"{defaulted} region(s) have no class attribute; they are "
                                f"read as class {default_class!r} (name it with `oculi data convert … "
                                "--default-class NAME`; Python: default_class=).", str(path)))
    for kind, count in skipped.items():
        findings.append(Finding("warning", "unsupported_shape", f"{count} {kind} region(s) are not read (oculi reads "
                                "VIA rect and polygon regions).", str(path)))
    return LabelFile(FORMAT, path, items, findings=findings)
