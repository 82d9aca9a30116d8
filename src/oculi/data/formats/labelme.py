"""labelme JSON: one file per image, ``{"version", "shapes": [{"label", "points": [[x, y], …], "shape_type"}],
"imagePath", "imageWidth", "imageHeight", "imageData"}``, pixels. ``shape_type`` ``rectangle`` holds two opposite
corners, ``polygon`` three or more points; other shapes (circle, line, point, linestrip, mask) are findings.
``imagePath`` is relative to the JSON file. A folder of such files is one dataset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from oculi.data.formats.tools import Item, LabelFile, Shape, as_number, find_image, load_json, polygon_box
from oculi.errors import DataError
from oculi.types import Finding

FORMAT = "labelme"


def _is_labelme_value(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("shapes"), list) and "imagePath" in data


def _is_labelme_file(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            head = f.read(1 << 16)
        if '"shapes"' not in head and '"imagePath"' not in head:
            return False
        return _is_labelme_value(json.loads(path.read_text(encoding="utf-8-sig")))
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return False


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".json"
                  and not p.name.startswith("."))


def is_labelme(path: Path) -> bool:
    """True when ``path`` is a labelme JSON file, or a folder whose first JSON file is one."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower() == ".json" and _is_labelme_file(path)
    if path.is_dir():
        files = _files(path)
        return bool(files) and _is_labelme_file(files[0])
    return False


def _shape(shape: Any, path: Path, where: str, skipped: dict[str, int]) -> Shape | None:
    if not isinstance(shape, dict) or not isinstance(shape.get("label"), str) or not shape["label"]:
        raise DataError(f"{path}: {where}: a shape needs a \"label\" and \"points\"; got {shape!r}.")
    kind = shape.get("shape_type") or "polygon"
    if kind not in ("rectangle", "polygon"):
        skipped[kind] = skipped.get(kind, 0) + 1
        return None
    raw = shape.get("points")
    if not isinstance(raw, list) or not all(isinstance(p, list) and len(p) == 2 for p in raw):
        raise DataError(f"{path}: {where}: \"points\" is {raw!r}; expected [[x, y], …].")
    points = tuple((as_number(x, path, where, "x"), as_number(y, path, where, "y")) for x, y in raw)
    if kind == "rectangle":
        if len(points) != 2:
            raise DataError(f"{path}: {where}: a rectangle holds 2 corner points; got {len(points)}.")
        return Shape("box", shape["label"], box=polygon_box(points), where=where)
    if len(points) < 3:
        raise DataError(f"{path}: {where}: a polygon needs at least 3 points; got {len(points)}.")
    return Shape("polygon", shape["label"], points=points, where=where)


def read_labelme(path: Path, image_root: Path | None = None) -> LabelFile:
    """Read a labelme JSON file, or a folder of them, into a :class:`~oculi.data.formats.tools.LabelFile`
    (pixels). ``image_root``: where the images are when not where ``imagePath`` says. A malformed file or shape
    is a :class:`DataError` naming the file and shape."""
    path = Path(path)
    files = _files(path) if path.is_dir() else [path]
    findings: list[Finding] = []
    skipped: dict[str, int] = {}
    items = []
    for file in files:
        data = load_json(file, "labelme")
        if not _is_labelme_value(data):
            findings.append(Finding("warning", "not_labelme", "not a labelme file (no \"shapes\" and "
                                    "\"imagePath\"); it is skipped.", str(file)))
            continue
        name = str(data["imagePath"])
        roots = [file.parent] if image_root is None else [Path(image_root), file.parent]
        image = find_image(name, roots)
        width, height = data.get("imageWidth"), data.get("imageHeight")
        item = Item(name, image, int(width) if isinstance(width, int) else None,
                    int(height) if isinstance(height, int) else None, where=str(file))
        for n, shape in enumerate(data["shapes"], start=1):
            read = _shape(shape, file, f"shape {n}", skipped)
            if read is not None:
                item.shapes.append(Shape(read.kind, read.label, read.box, read.points, where=f"{file} (shape {n})"))
        items.append(item)
    for kind, count in skipped.items():
        findings.append(Finding("warning", "unsupported_shape", f"{count} {kind} shape(s) are not read (oculi reads "
                                "labelme rectangles and polygons).", str(path)))
    return LabelFile(FORMAT, path, items, findings=findings)
