"""Label Studio JSON exports: a list of tasks ``{"id", "data": {"image": …}, "annotations": [{"result": […]}]}``
(older versions: ``completions``).

Each result has ``type``, ``from_name``/``to_name``, ``original_width``/``original_height`` and a ``value``:
``choices`` (image classification), ``rectanglelabels`` with ``x``, ``y``, ``width``, ``height`` (and
``rotation``, degrees clockwise about the top-left corner), ``polygonlabels`` with ``points`` ``[[x, y], …]`` —
all in **percent** of the image size — or ``brushlabels`` with ``format: "rle"`` and ``rle``, Label Studio's
run-length code of the image's RGBA bytes (see :func:`decode_rle`). The first annotation of a task that was not
cancelled is read; tasks without one are unlabeled. :func:`write_labelstudio` writes the same shapes back."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from oculi.data.formats.tools import (
    Item,
    LabelFile,
    Shape,
    as_number,
    find_image,
    image_roots,
    load_json,
    mask_rle,
    relative_name,
)
from oculi.errors import DataError
from oculi.types import Finding, SampleSet

FORMAT = "labelstudio"
_LABEL_KEYS = ("rectanglelabels", "polygonlabels", "brushlabels", "labels", "choices")


# --- Label Studio's brush RLE --------------------------------------------------------------------------------

class _Bits:
    """Reads big-endian unsigned integers of any width from a byte string, bit after bit."""

    def __init__(self, data: bytes) -> None:
        self.value = int.from_bytes(data, "big")
        self.length = len(data) * 8
        self.position = 0

    def read(self, width: int) -> int:
        if self.position + width > self.length:
            raise ValueError(f"the code ends early (bit {self.position} of {self.length})")
        self.position += width
        return (self.value >> (self.length - self.position)) & ((1 << width) - 1)


def decode_rle(rle: list[int] | bytes) -> np.ndarray:
    """Decode Label Studio's brush RLE (the thi.ng ``rle-pack`` code) into its flat ``uint8`` array.

    Layout, most significant bit first: the value count (32 bits), the word size minus one (5 bits), four run
    size widths minus one (4 bits each); then blocks of: a repeat flag (1 bit), a size index (2 bits), the run
    length minus one (in that many bits), then one word repeated (flag 1) or that many literal words (flag 0).
    Raises ValueError for a code that ends early or holds an impossible header."""
    bits = _Bits(bytes(rle))
    count = bits.read(32)
    word = bits.read(5) + 1
    sizes = [bits.read(4) + 1 for _ in range(4)]
    if count > bits.length << 16:  # a repeat block of under 32 bits codes at most 65,536 values
        raise ValueError(f"the header claims {count} values, more than the code can hold")
    out = np.zeros(count, dtype=np.uint8 if word <= 8 else np.uint32)
    i = 0
    while i < count:
        repeat = bits.read(1)
        j = min(count, i + 1 + bits.read(sizes[bits.read(2)]))
        if repeat:
            out[i:j] = bits.read(word)
        else:
            for k in range(i, j):
                out[k] = bits.read(word)
        i = j
    return out


def encode_rle(values: np.ndarray) -> list[int]:
    """Encode a flat ``uint8`` array as Label Studio's brush RLE (word size 8, run size widths 3, 4, 8, 16) —
    the code label-studio-converter's ``brush.encode_rle`` writes: a run of one value is a literal block, longer
    runs are repeat blocks in the narrowest width that holds them (runs over 65,536 split)."""
    values = np.asarray(values, dtype=np.uint8).ravel()
    out = [f"{len(values):032b}", f"{8 - 1:05b}", "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16))]
    if len(values):
        change = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [len(values)]]))
        for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
            value = f"{int(values[start]):08b}"
            if length == 1:
                out.append("000000" + value)
                continue
            while length > 0:
                run = min(length, 1 << 16)
                length -= run
                if run <= 8:
                    out.append(f"100{run - 1:03b}{value}")
                elif run <= 16:
                    out.append(f"101{run - 1:04b}{value}")
                elif run <= 256:
                    out.append(f"110{run - 1:08b}{value}")
                else:
                    out.append(f"111{run - 1:016b}{value}")
    bits = "".join(out)
    bits += "0" * (8 - len(bits) % 8)  # as brush.py does: always pads, a whole zero byte when already aligned
    return list(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def brush_mask(rle: list[int], width: int, height: int) -> np.ndarray:
    """A brush result's boolean ``[height, width]`` mask: the RGBA image's alpha channel above 0."""
    flat = decode_rle(rle)
    if flat.size != width * height * 4:
        raise ValueError(f"it decodes to {flat.size} values, not {width}×{height}×4 (RGBA) = {width * height * 4}")
    return flat.reshape(height, width, 4)[:, :, 3] > 0


def mask_brush(mask: np.ndarray) -> list[int]:
    """A boolean ``[H, W]`` mask as brush RLE: every RGBA byte 255 inside, 0 outside (label-studio-converter's
    ``mask2rle`` repeats each mask value four times the same way)."""
    return encode_rle(np.repeat(np.asarray(mask, dtype=bool).ravel().astype(np.uint8) * 255, 4))


# --- reading ---------------------------------------------------------------------------------------------------

def is_labelstudio(path: Path) -> bool:
    """True when ``path`` is a Label Studio JSON export: a JSON list of task objects with ``data`` and
    ``annotations`` (or ``completions``) — or a file that starts like one but is not valid JSON (a truncated
    export), so that reading it says where it breaks."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".json":
        return False
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            head = f.read(4096).lstrip()
        if not head.startswith("["):
            return False
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError:
        return '"data"' in head and ('"annotations"' in head or '"completions"' in head)
    except (OSError, RecursionError, UnicodeDecodeError):
        return False
    return isinstance(data, list) and bool(data) and all(
        isinstance(t, dict) and isinstance(t.get("data"), dict) and ("annotations" in t or "completions" in t)
        for t in data[:50])


def _annotation(task: dict[str, Any]) -> tuple[list[Any] | None, int]:
    """The result list of the task's first annotation that was not cancelled (None: none) and how many others."""
    annotations = task.get("annotations", task.get("completions")) or []
    usable = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not usable:
        return None, 0
    return usable[0].get("result") or [], len(usable) - 1


def _percent_points(value: dict[str, Any], width: float, height: float, path: Path,
                    where: str) -> tuple[tuple[float, float], ...]:
    points = value.get("points")
    if not isinstance(points, list) or len(points) < 3 or not all(isinstance(p, list) and len(p) == 2
                                                                  for p in points):
        raise DataError(f"{path}: {where}: a polygon needs \"points\" [[x, y], …] with at least 3 points; got "
                        f"{points!r}.")
    return tuple((as_number(x, path, where, "x") * width / 100, as_number(y, path, where, "y") * height / 100)
                 for x, y in points)


def _rectangle(value: dict[str, Any], width: float, height: float, path: Path,
               where: str) -> tuple[float, float, float, float]:
    x, y, w, h = (as_number(value.get(k), path, where, k) for k in ("x", "y", "width", "height"))
    x0, y0, bw, bh = x * width / 100, y * height / 100, w * width / 100, h * height / 100
    angle = math.radians(as_number(value.get("rotation", 0) or 0, path, where, "rotation"))
    if not angle:
        return x0, y0, x0 + bw, y0 + bh
    cos, sin = math.cos(angle), math.sin(angle)  # rotated about (x0, y0): the box is the corners' bounding box
    corners = [(x0 + dx * cos - dy * sin, y0 + dx * sin + dy * cos) for dx, dy in ((0, 0), (bw, 0), (bw, bh),
                                                                                    (0, bh))]
    return min(c[0] for c in corners), min(c[1] for c in corners), max(c[0] for c in corners), \
        max(c[1] for c in corners)


def _shapes(result: dict[str, Any], path: Path, where: str, findings: list[Finding],
            sizes: list[tuple[int, int]]) -> list[Shape]:
    value = result.get("value")
    if not isinstance(value, dict):
        raise DataError(f"{path}: {where}: the result has no \"value\" object; re-export the project from Label "
                        "Studio or delete this result.")
    key = next((k for k in _LABEL_KEYS if k in value), None)
    if key is None:
        findings.append(Finding("warning", "unsupported_shape", f"a {result.get('type', '?')} result is not read "
                                "(oculi reads Choices, RectangleLabels, PolygonLabels and BrushLabels).", where))
        return []
    labels = value[key]
    if not isinstance(labels, list) or not all(isinstance(v, str) for v in labels) or not labels:
        raise DataError(f"{path}: {where}: \"{key}\" is {labels!r}; expected a list of label names.")
    if key == "choices":
        return [Shape("tag", label, where=where) for label in labels]
    width = result.get("original_width")
    height = result.get("original_height")
    if width is None or height is None:
        raise DataError(f"{path}: {where}: the result has no original_width/original_height, so its percent "
                        "coordinates cannot be placed; re-export the project from Label Studio.")
    width = as_number(width, path, where, "original_width")
    height = as_number(height, path, where, "original_height")
    sizes.append((int(width), int(height)))
    if key == "brushlabels" or value.get("format") == "rle":
        rle = value.get("rle")
        if value.get("format") != "rle" or not isinstance(rle, list):
            raise DataError(f"{path}: {where}: a brush result needs \"format\": \"rle\" and an \"rle\" list of "
                            "bytes.")
        try:
            mask = brush_mask(rle, int(width), int(height))
        except (ValueError, TypeError, OverflowError) as e:
            raise DataError(f"{path}: {where}: the brush RLE cannot be decoded ({e}); re-export the project from "
                            "Label Studio or delete this result.") from None
        return [Shape("mask", label, rle=mask_rle(mask), where=where) for label in labels]
    if "points" in value:
        points = _percent_points(value, width, height, path, where)
        return [Shape("polygon", label, points=points, where=where) for label in labels]
    box = _rectangle(value, width, height, path, where)
    return [Shape("box", label, box=box, where=where) for label in labels]


def read_labelstudio(path: Path, image_root: Path | None = None) -> LabelFile:
    """Read a Label Studio JSON export into a :class:`~oculi.data.formats.tools.LabelFile` (pixels). Raises
    :class:`DataError` naming the file, task and result for an entry that cannot be read."""
    path = Path(path)
    data = load_json(path, "Label Studio export")
    if not isinstance(data, list):
        raise DataError(f"{path}: a Label Studio JSON export is a list of tasks; this file holds a "
                        f"{type(data).__name__}.")
    roots = image_roots(path, image_root)
    findings: list[Finding] = []
    items = []
    extra = 0
    for number_, task in enumerate(data, start=1):
        where = f"{path} (task {task.get('id', number_) if isinstance(task, dict) else number_})"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise DataError(f"{where}: a task needs a \"data\" object naming its image.")
        name = next((v for k, v in task["data"].items() if k in ("image", "img", "url")), None) or \
            next((v for v in task["data"].values() if isinstance(v, str)), None)
        if not isinstance(name, str):
            raise DataError(f"{where}: \"data\" names no image (expected \"image\": \"…\").")
        results, others = _annotation(task)
        extra += others
        item = Item(name, find_image(name, roots), labeled=results is not None, where=where)
        sizes: list[tuple[int, int]] = []
        for r, result in enumerate(results or []):
            if not isinstance(result, dict):
                raise DataError(f"{where} result {r + 1}: expected an object, got {result!r}.")
            if result.get("type") == "relation" or "value" not in result and "from_id" in result:
                continue
            item.shapes += _shapes(result, path, f"{where} result {r + 1}", findings, sizes)
        if sizes:
            item.width, item.height = sizes[0]
        items.append(item)
    if extra:
        findings.append(Finding("info", "several_annotations", f"{extra} further annotation(s) of tasks annotated "
                                "more than once are not read (the first one of each task is).", str(path)))
    return LabelFile(FORMAT, path, items, findings=findings)


# --- writing -------------------------------------------------------------------------------------------------

def _result(kind: str, value: dict[str, Any], size: tuple[int, int] | None, number_: int) -> dict:
    result = {"id": f"r{number_}", "type": kind, "from_name": "label" if kind != "choices" else "choice",
              "to_name": "image", "value": value}
    if size is not None:
        result.update(original_width=size[0], original_height=size[1], image_rotation=0)
    return result


def write_labelstudio(sample_set: SampleSet, json_path: Path) -> list[Finding]:
    """Write ``sample_set`` as a Label Studio JSON export at ``json_path``: classification → ``choices``,
    detection → ``rectanglelabels``, segmentation → one ``brushlabels`` result per class present (class 0, the
    background, is left unpainted; ignored pixels are not written: info ``ignore_not_written``). Images are named
    relative to the file's folder when below it, else by absolute path. Coordinates are percent."""
    from oculi.data.formats.boxes import target_size
    from oculi.data.formats.masks import load_mask
    from oculi.types import IGNORE_INDEX

    json_path = Path(json_path)
    findings: list[Finding] = []
    tasks, counter, ignored = [], 0, 0
    for task_id, sample in enumerate(sample_set.samples, start=1):
        results = []
        if sample_set.task == "classification":
            target = sample.target if isinstance(sample.target, tuple) else (sample.target,)
            counter += 1
            results.append(_result("choices", {"choices": [sample_set.classes[i] for i in target]}, None, counter))
        elif sample_set.task == "detection":
            size = target_size(sample)
            if size is None:
                findings.append(Finding("error", "unreadable_image", "the image size is unknown (the image cannot "
                                        "be opened), so its boxes cannot be written in percent; it is left out.",
                                        str(sample.image)))
                continue
            width, height = size
            for box, label in zip(sample.target.boxes, sample.target.labels, strict=True):
                x0, y0, x1, y1 = box
                counter += 1
                value = {"x": 100 * x0 / width, "y": 100 * y0 / height, "width": 100 * (x1 - x0) / width,
                         "height": 100 * (y1 - y0) / height, "rotation": 0,
                         "rectanglelabels": [sample_set.classes[label]]}
                results.append(_result("rectanglelabels", value, (width, height), counter))
        else:
            mask = load_mask(sample.target)
            height, width = mask.shape
            ignored += int((mask == IGNORE_INDEX).sum())
            for value in np.unique(mask):
                if value in (0, IGNORE_INDEX):
                    continue
                counter += 1
                brush = {"format": "rle", "rle": mask_brush(mask == value),
                         "brushlabels": [sample_set.classes[int(value)]]}
                results.append(_result("brushlabels", brush, (width, height), counter))
        tasks.append({"id": task_id, "data": {"image": relative_name(sample.image, json_path.parent)},
                      "annotations": [{"id": task_id, "result": results, "was_cancelled": False}],
                      "predictions": []})
    if ignored:
        findings.append(Finding("info", "ignore_not_written", f"{ignored} ignored pixel(s) (value 255) are not "
                                "written: a brush mask has no 'ignore'; they read back as background.",
                                str(json_path)))
    if sample_set.task == "segmentation" and sample_set.classes and sample_set.classes[0] != "background":
        findings.append(Finding("info", "background_class", f"class 0 ({sample_set.classes[0]!r}) is left unpainted "
                                "and reads back as 'background'.", str(json_path)))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = json_path.with_name(f".{json_path.name}.tmp")
    temporary.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    temporary.replace(json_path)
    return findings

