"""Fuzz oculi's inputs: mutated images and annotation files through ``oculi data check``, ``oculi predict``, the
server (``oculi serve``, HTTP ``POST /invocations`` on loopback) and ``oculi transform``.

Every case is generated from a fixed seed (``--seed``), so two runs see the same bytes. Images: truncated,
bit-flipped, overwritten, a magic number followed by garbage, one format under another's extension, headers that
claim huge dimensions (a PNG IHDR of 50000×50000, JPEG / GIF / BMP equivalents), empty files, text files named
``.jpg``, and valid but unusual images (1×1, 16-bit, CMYK, palette, animated, EXIF-rotated). Annotations: COCO
JSON, augmented manifests (classification and detection), ``.lst``, YOLO ``labels/*.txt`` + ``data.yaml`` and Pascal
VOC XML, each with broken values (wrong types, NaN, negative / out-of-range numbers, missing keys, truncated
files, an XML entity bomb). Annotations go through ``data check`` only (the other surfaces take images).

Counted per surface:
- traceback: "Traceback (most recent call last)" anywhere in the output (stdout, stderr, server log, job log),
  or an exception escaping the command;
- crash: an exit code outside the expected set (data check 0/1/2/3, predict 0/3, transform 0), a server answer
  of 5xx or no answer, a transform input with neither a result nor an ``errors.jsonl`` record;
- unnamed: a failure (non-zero exit, an error finding, an ``errors.jsonl`` record) that does not name the
  mutated file (the server's answers are exempt: a request body has no file name).

``data check`` and ``predict`` run in this process through the CLI's own entry point (``oculi.cli.main``, with
``sys.argv`` set), which is the same code path as the console script without a Python start-up per case; the
server and ``transform`` run as child processes. Nothing leaves the machine: the server binds 127.0.0.1.

Usage: .venv/bin/python bench/fuzz_inputs.py [--seed 0] [--only images|annotations] [--show 40]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

TRACEBACK = "Traceback (most recent call last)"
SIZE = 40  # the good images' side, pixels
CASE_SECONDS = 120  # a case that runs longer is stopped and counted as a crash (a hang)
MEMORY_HEADROOM = 3 << 30  # address space (bytes) a case may add before a MemoryError: a crash, not a swap storm


class CaseTimeout(BaseException):
    """Raised in the main thread when a case runs past CASE_SECONDS."""


def _on_alarm(signum: int, frame: object) -> None:
    raise CaseTimeout(f"still running after {CASE_SECONDS} s")


def _address_space() -> int:
    """This process's virtual memory size in bytes (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def limit_memory(headroom: int = MEMORY_HEADROOM) -> int:
    """Cap this process's address space at its current size + ``headroom``: a case that would allocate without
    bound (e.g. a class id of 10**12 turned into a list of class names) raises MemoryError instead of taking the
    shared machine's memory. Returns the cap (0 when it cannot be set)."""
    import resource

    cap = _address_space() + headroom
    try:
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        return 0
    return cap


def _child_limit() -> None:
    """preexec_fn of the server and transform processes: at most 8 GiB of address space (torch included)."""
    import resource

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, resource.RLIM_INFINITY))


@dataclass
class Case:
    """One mutated input: ``name`` (also its file name), the bytes, and what kind of mutation made it."""

    name: str
    kind: str
    data: bytes
    valid: bool = False  # a well-formed image that must simply work


@dataclass
class Outcome:
    """What one surface did with one case."""

    surface: str
    case: str
    kind: str
    traceback: bool = False
    crash: bool = False
    unnamed: bool = False
    refused: bool = False  # answered with an error (exit code, finding, 4xx, errors.jsonl) — the expected kind
    note: str = ""


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


# ---- images ---------------------------------------------------------------------------------------------------
def _picture(rng: np.random.Generator, size: int = SIZE) -> Image.Image:
    pixels = rng.integers(0, 255, (size, size, 3)).astype(np.uint8)
    pixels[size // 4: 3 * size // 4, size // 4: 3 * size // 4] = rng.integers(0, 255, 3)
    return Image.fromarray(pixels, "RGB")


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, colour_type: int = 2) -> bytes:
    """A PNG whose IHDR says ``width``×``height`` (valid CRCs) followed by a tiny IDAT: a decompression bomb's
    header without the bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _jpeg_claiming(jpeg: bytes, width: int, height: int) -> bytes:
    data = bytearray(jpeg)
    at = data.find(b"\xff\xc0")
    if at < 0:
        at = data.find(b"\xff\xc2")
    data[at + 5: at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_claiming(gif: bytes, width: int, height: int) -> bytes:
    data = bytearray(gif)
    data[6:10] = struct.pack("<HH", width, height)
    at = data.find(b"\x2c", 13)  # the image descriptor
    if at > 0:
        data[at + 5: at + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def _bmp_claiming(bmp: bytes, width: int, height: int) -> bytes:
    data = bytearray(bmp)
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def image_cases(seed: int) -> list[Case]:
    """About two hundred mutated or unusual images, the same for the same ``seed``."""
    rng = np.random.default_rng(seed)
    good = _picture(rng)
    png, jpeg = _encode(good, "PNG"), _encode(good, "JPEG", quality=90)
    others = {"gif": _encode(good, "GIF"), "bmp": _encode(good, "BMP"), "webp": _encode(good, "WEBP"),
              "tiff": _encode(good, "TIFF")}
    cases: list[Case] = []
    for ext, base in (("png", png), ("jpg", jpeg)):
        for frac in (0.0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98):
            cases.append(Case(f"trunc-{ext}-{int(frac * 100):02d}.{ext}", "truncated", base[: int(len(base) * frac)]))
        for keep in (1, 8, 16, len(base) - 1, len(base) - 12):
            cases.append(Case(f"trunc-{ext}-at{keep}.{ext}", "truncated", base[:keep]))
        for bits in (1, 2, 8, 32, 128):
            for n in range(6):
                data = bytearray(base)
                for pos in rng.integers(0, len(data) * 8, bits):
                    data[pos // 8] ^= 1 << (pos % 8)
                cases.append(Case(f"flip-{ext}-{bits}b-{n}.{ext}", "bit-flipped", bytes(data)))
        for n in range(10):
            data = bytearray(base)
            pos = int(rng.integers(0, 40))
            data[pos] ^= 1 << int(rng.integers(0, 8))
            cases.append(Case(f"hdrflip-{ext}-{n}.{ext}", "header bit-flipped", bytes(data)))
        for n in range(10):
            data = bytearray(base)
            start = int(rng.integers(0, len(data) - 64))
            data[start: start + 64] = rng.integers(0, 256, 64).astype(np.uint8).tobytes()
            cases.append(Case(f"overwrite-{ext}-{n}.{ext}", "overwritten", bytes(data)))
    # one format under another's extension: valid images, must work
    for fmt, ext in (("png", "jpg"), ("jpeg", "png"), ("gif", "jpg"), ("webp", "png"), ("bmp", "jpg"),
                     ("tiff", "jpg")):
        data = {"png": png, "jpeg": jpeg}.get(fmt) or others[fmt]
        cases.append(Case(f"wrongext-{fmt}.{ext}", "wrong extension", data, valid=True))
    for magic, ext in ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff\xe0", "jpg"), (b"GIF89a", "gif"),
                       (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"), (b"BM", "bmp")):
        for length in (0, 16, 2000):
            garbage = rng.integers(0, 256, length).astype(np.uint8).tobytes()
            cases.append(Case(f"magic-{ext}-{length}.{ext}", "magic + garbage", magic + garbage))
    for w, h in ((50000, 50000), (65535, 65535), (100000, 100000), (2**31 - 1, 1), (1, 2**31 - 1), (0, 0),
                 (30000, 30000)):
        cases.append(Case(f"huge-png-{w}x{h}.png", "huge header", png_claiming(w, h)))
    cases.append(Case("huge-png-gray-60000x60000.png", "huge header", png_claiming(60000, 60000, colour_type=0)))
    cases.append(Case("huge-jpg-65500x65500.jpg", "huge header", _jpeg_claiming(jpeg, 65500, 65500)))
    cases.append(Case("huge-jpg-0x0.jpg", "huge header", _jpeg_claiming(jpeg, 0, 0)))
    cases.append(Case("huge-gif-65535x65535.gif", "huge header", _gif_claiming(others["gif"], 65535, 65535)))
    cases.append(Case("huge-bmp-50000x50000.bmp", "huge header", _bmp_claiming(others["bmp"], 50000, 50000)))
    cases.append(Case("huge-bmp-negative.bmp", "huge header", _bmp_claiming(others["bmp"], -50000, -50000)))
    for name, data in (("empty.jpg", b""), ("one-byte.png", b"\x89"), ("spaces.jpg", b"   \n")):
        cases.append(Case(name, "empty", data))
    texts = {"text.jpg": b"hello, this is not an image\n", "html.jpg": b"<!doctype html><html><body>x</body></html>",
             "json.png": b'{"images": []}', "script.jpg": b"#!/bin/sh\necho hi\n",
             "utf16.jpg": "not an image".encode("utf-16"), "random-100.jpg": rng.bytes(100),
             "random-10k.png": rng.bytes(10_000), "svg.png": b'<svg xmlns="http://www.w3.org/2000/svg"/>'}
    for name, data in texts.items():
        cases.append(Case(name, "not an image", data))
    # valid but unusual: each must simply work
    unusual = {
        "tiny-1x1.png": _encode(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
        "gray.png": _encode(good.convert("L"), "PNG"), "gray-alpha.png": _encode(good.convert("LA"), "PNG"),
        "rgba.png": _encode(good.convert("RGBA"), "PNG"),
        "palette.png": _encode(good.convert("P"), "PNG"), "one-bit.png": _encode(good.convert("1"), "PNG"),
        "sixteen-bit.png": _encode(Image.fromarray(np.asarray(good.convert("L")).astype(np.uint16) * 257), "PNG"),
        "cmyk.jpg": _encode(good.convert("CMYK"), "JPEG"),
        "progressive.jpg": _encode(good, "JPEG", progressive=True),
        "strip-2000x1.png": _encode(Image.new("RGB", (2000, 1), (1, 2, 3)), "PNG"),
        "animated.gif": _gif_frames(good),
    }
    exif = Image.Exif()
    exif[0x0112] = 6
    unusual["exif-rotated.jpg"] = _encode(good, "JPEG", exif=exif.tobytes())
    bad_exif = Image.Exif()
    bad_exif[0x0112] = 77  # not an orientation
    unusual["exif-bad-orientation.jpg"] = _encode(good, "JPEG", exif=bad_exif.tobytes())
    for name, data in unusual.items():
        cases.append(Case(f"valid-{name}", "valid, unusual", data, valid=True))
    return cases


def _gif_frames(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    frames = [image, image.rotate(90), image.rotate(180)]
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    return buffer.getvalue()


# ---- annotations ----------------------------------------------------------------------------------------------
WEIRD = [None, -1, 0, 1e308, -1e308, float("nan"), float("inf"), "x", "", [], {}, True, 10**30, [1, 2], "../x"]


def _good_images(folder: Path, names: list[str], rng: np.random.Generator) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _picture(rng).save(folder / name)


def _dump(value: object) -> str:
    return json.dumps(value, allow_nan=True)


def _set_path(record: dict, path: tuple, value: object) -> dict:
    """A deep copy of ``record`` with the item at ``path`` (keys / indices) replaced by ``value`` (or removed
    when ``value`` is the sentinel ``_DELETE``)."""
    out = json.loads(json.dumps(record))
    target = out
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return out


_DELETE = object()


@dataclass
class AnnotationCase:
    """A dataset folder to build (``build(folder)`` returns the path to check) and the file it mutates."""

    name: str
    kind: str
    build: Callable[[Path], Path]
    mutated: str  # the mutated file's name, which a failure must name


def _coco_base() -> dict:
    return {
        "images": [{"id": i + 1, "file_name": f"img{i}.png", "width": SIZE, "height": SIZE} for i in range(3)],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
        "annotations": [{"id": k + 1, "image_id": k % 3 + 1, "category_id": k % 2 + 1, "bbox": [2, 3, 10, 12],
                         "area": 120, "iscrowd": 0} for k in range(4)],
    }


def annotation_cases(seed: int) -> list[AnnotationCase]:
    """About a hundred broken annotation files in COCO, manifest, .lst, YOLO and VOC form."""
    rng = np.random.default_rng(seed + 1)
    cases: list[AnnotationCase] = []

    # COCO
    coco = _coco_base()
    paths = [("images", 0, "id"), ("images", 1, "file_name"), ("images", 0, "width"), ("images", 2, "height"),
             ("annotations", 0, "bbox"), ("annotations", 1, "bbox", 2), ("annotations", 2, "category_id"),
             ("annotations", 3, "image_id"), ("annotations", 0, "area"), ("annotations", 1, "iscrowd"),
             ("categories", 0, "id"), ("categories", 1, "name"), ("annotations",), ("images",), ("categories",)]
    texts: dict[str, str] = {}
    for n in range(30):
        path = paths[n % len(paths)]
        value = WEIRD[int(rng.integers(0, len(WEIRD)))] if n < 27 else _DELETE
        texts[f"coco-value-{n:02d}"] = _dump(_set_path(coco, path, value))
    good = _dump(coco)
    for frac in (0.1, 0.5, 0.95):
        texts[f"coco-trunc-{int(frac * 100)}"] = good[: int(len(good) * frac)]
    for name, text in (("coco-empty", ""), ("coco-null", "null"), ("coco-list", "[]"), ("coco-bom", "\ufeff" + good),
                       ("coco-nested", "[" * 5000 + "]" * 5000)):
        texts[name] = text

    def coco_builder(text: str) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            _good_images(folder, [f"img{i}.png" for i in range(3)], np.random.default_rng(0))
            (folder / "annotations.json").write_text(text)
            return folder / "annotations.json"
        return build

    for name, text in texts.items():
        cases.append(AnnotationCase(name, "COCO JSON", coco_builder(text), "annotations.json"))

    # augmented manifests (classification and detection)
    def manifest_builder(lines: list[str], detection: bool) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            _good_images(folder / "images", [f"m{i}.png" for i in range(4)], np.random.default_rng(0))
            out = []
            for line in lines:
                out.append(line.replace("IMG", str(folder / "images")))
            (folder / "data.manifest").write_text("\n".join(out) + "\n")
            return folder / "data.manifest"
        return build

    def cls_line(i: int, label: object = None, **changes: object) -> str:
        record = {"source-ref": f"IMG/m{i}.png", "label": i % 2 if label is None else label,
                  "label-metadata": {"class-name": "ab"[i % 2], "type": "groundtruth/image-classification"}}
        for key, value in changes.items():
            if value is _DELETE:
                record.pop(key.replace("_", "-"), None)
            else:
                record[key.replace("_", "-")] = value
        return _dump(record)

    def det_line(i: int, box: object = None, class_id: object = 0) -> str:
        annotation = {"class_id": class_id, "left": 2, "top": 3, "width": 10, "height": 12}
        if box is not None:
            annotation["width"] = box
        return _dump({"source-ref": f"IMG/m{i}.png",
                      "boxes": {"image_size": [{"width": SIZE, "height": SIZE, "depth": 3}],
                                "annotations": [annotation]},
                      "boxes-metadata": {"class-map": {"0": "cat", "1": "dog"},
                                         "type": "groundtruth/object-detection"}})

    base_cls = [cls_line(i) for i in range(4)]
    manifests: dict[str, tuple[list[str], bool]] = {
        "manifest-bad-json": (base_cls[:2] + ['{"source-ref": "IMG/m2.png", "label": '] + base_cls[3:], False),
        "manifest-not-json": (base_cls[:3] + ["hello"], False),
        "manifest-list-line": (base_cls[:3] + ["[1, 2, 3]"], False),
        "manifest-no-source": (base_cls[:3] + [cls_line(3, source_ref=_DELETE)], False),
        "manifest-source-int": (base_cls[:3] + [cls_line(3, source_ref=5)], False),
        "manifest-label-text": (base_cls[:3] + [cls_line(3, label="x")], False),
        "manifest-label-negative": (base_cls[:3] + [cls_line(3, label=-1)], False),
        "manifest-label-huge": (base_cls[:3] + [cls_line(3, label=10**12)], False),
        "manifest-label-nan": (base_cls[:3] + [cls_line(3, label=float("nan"))], False),
        "manifest-label-float": (base_cls[:3] + [cls_line(3, label=0.5)], False),
        "manifest-missing-image": (base_cls[:3] + [cls_line(3).replace("m3.png", "nowhere.png")], False),
        "manifest-empty": ([], False),
        "manifest-blank-lines": (["", base_cls[0], "   ", base_cls[1]], False),
        "det-manifest-width-nan": ([det_line(0), det_line(1, box=float("nan"))], True),
        "det-manifest-width-negative": ([det_line(0), det_line(1, box=-40)], True),
        "det-manifest-width-text": ([det_line(0), det_line(1, box="wide")], True),
        "det-manifest-width-huge": ([det_line(0), det_line(1, box=1e308)], True),
        "det-manifest-class-missing": ([det_line(0), det_line(1, class_id=7)], True),
        "det-manifest-class-text": ([det_line(0), det_line(1, class_id="cat")], True),
        "det-manifest-class-none": ([det_line(0), det_line(1, class_id=None)], True),
        "det-manifest-annotations-dict": ([det_line(0), det_line(1).replace('"annotations": [', '"annotations": [[')
                                           .replace("}]}", "}]]}", 1)], True),
    }
    for name, (lines, detection) in manifests.items():
        kind = "detection manifest" if detection else "classification manifest"
        cases.append(AnnotationCase(name, kind, manifest_builder(lines, detection), "data.manifest"))

    # .lst
    def lst_builder(lines: list[str]) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            _good_images(folder, [f"l{i}.png" for i in range(4)], np.random.default_rng(0))
            (folder / "train.lst").write_text("\n".join(lines) + ("\n" if lines else ""))
            return folder / "train.lst"
        return build

    good_lst = [f"{i}\t{i % 2}\tl{i}.png" for i in range(4)]
    lsts = {
        "lst-two-columns": good_lst[:3] + ["3\tl3.png"], "lst-five-columns": good_lst[:3] + ["3\t1\t0\t2\tl3.png"],
        "lst-label-text": good_lst[:3] + ["3\tcat\tl3.png"], "lst-label-negative": good_lst[:3] + ["3\t-1\tl3.png"],
        "lst-label-huge": good_lst[:3] + ["3\t1e9\tl3.png"], "lst-label-nan": good_lst[:3] + ["3\tnan\tl3.png"],
        "lst-label-inf": good_lst[:3] + ["3\tinf\tl3.png"], "lst-missing-image": good_lst[:3] + ["3\t1\tnone.png"],
        "lst-spaces": [line.replace("\t", " ") for line in good_lst], "lst-empty": [],
        "lst-garbage": good_lst[:2] + [rng.bytes(40).decode("latin-1")], "lst-duplicate-index": good_lst + good_lst[:1],
        "lst-absolute-missing": good_lst[:3] + ["3\t1\t/nonexistent/x.png"], "lst-index-text": ["a\t0\tl0.png"]
        + good_lst[1:], "lst-tab-only": good_lst[:3] + ["\t\t"],
    }
    for name, lines in lsts.items():
        cases.append(AnnotationCase(name, ".lst", lst_builder(lines), "train.lst"))

    # YOLO
    def yolo_builder(label_text: str, yaml_text: str | None = None) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            _good_images(folder / "images", [f"y{i}.png" for i in range(3)], np.random.default_rng(0))
            (folder / "labels").mkdir()
            (folder / "labels" / "y0.txt").write_text("0 0.5 0.5 0.2 0.3\n")
            (folder / "labels" / "y1.txt").write_text("1 0.4 0.4 0.1 0.1\n")
            (folder / "labels" / "y2.txt").write_text(label_text)
            (folder / "data.yaml").write_text(yaml_text if yaml_text is not None else "names: [cat, dog]\n")
            return folder
        return build

    yolos = {
        "yolo-four-columns": "0 0.5 0.5 0.2\n", "yolo-text": "cat 0.5 0.5 0.2 0.2\n",
        "yolo-over-one": "0 1.5 0.5 2 2\n",
        "yolo-negative": "0 -0.5 0.5 0.2 0.2\n", "yolo-nan": "0 nan 0.5 0.2 0.2\n", "yolo-inf": "0 0.5 inf 0.2 0.2\n",
        "yolo-class-999": "999 0.5 0.5 0.2 0.2\n", "yolo-class-negative": "-1 0.5 0.5 0.2 0.2\n",
        "yolo-class-float": "1.5 0.5 0.5 0.2 0.2\n", "yolo-zero-size": "0 0.5 0.5 0 0\n",
        "yolo-garbage": rng.bytes(60).decode("latin-1"), "yolo-many-columns": "0 " + " ".join(["0.5"] * 40) + "\n",
        "yolo-huge-number": "0 1e400 0.5 0.2 0.2\n",
    }
    for name, text in yolos.items():
        cases.append(AnnotationCase(name, "YOLO txt", yolo_builder(text), "y2.txt"))
    for name, yaml_text in (("yolo-yaml-broken", "names: [cat, dog\n"), ("yolo-yaml-names-int", "names: 5\n"),
                            ("yolo-yaml-tab", "names:\n\t- cat\n"), ("yolo-yaml-alias-bomb",
                            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nnames: [*c, *c, *c, *c, *c]\n")):
        cases.append(AnnotationCase(name, "YOLO yaml", yolo_builder("0 0.5 0.5 0.2 0.2\n", yaml_text), "data.yaml"))

    # Pascal VOC
    def voc_xml(filename: str = "v1.jpg", size: str | None = None, box: tuple = (2, 3, 20, 30),
                name: str | None = "cat") -> str:
        if size is None:
            size = f"<size><width>{SIZE}</width><height>{SIZE}</height><depth>3</depth></size>"
        label = f"<name>{name}</name>" if name is not None else ""
        return (f"<annotation><filename>{filename}</filename>{size}<object>{label}<bndbox><xmin>{box[0]}</xmin>"
                f"<ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object></annotation>")

    def voc_builder(text: str) -> Callable[[Path], Path]:
        def build(folder: Path) -> Path:
            (folder / "Annotations").mkdir(parents=True)
            _good_images(folder / "JPEGImages", ["v0.jpg", "v1.jpg"], np.random.default_rng(0))
            (folder / "Annotations" / "v0.xml").write_text(voc_xml("v0.jpg"))
            (folder / "Annotations" / "v1.xml").write_text(text)
            return folder
        return build

    good_xml = voc_xml()
    bomb = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
            + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 9))
            + "]>" + good_xml.replace("<name>cat</name>", "<name>&lol8;</name>"))
    xxe = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/hostname">]>'
           + good_xml.replace("<name>cat</name>", "<name>&x;</name>"))
    vocs = {
        "voc-truncated": good_xml[: len(good_xml) // 2], "voc-not-xml": "hello", "voc-empty": "",
        "voc-no-size": voc_xml(size=""), "voc-size-text": voc_xml(size="<size><width>abc</width><height>x</height>"
                                                                      "</size>"),
        "voc-size-zero": voc_xml(size="<size><width>0</width><height>0</height><depth>3</depth></size>"),
        "voc-inverted-box": voc_xml(box=(30, 30, 2, 2)), "voc-box-text": voc_xml(box=("a", "b", "c", "d")),
        "voc-box-nan": voc_xml(box=("nan", 3, 20, 30)), "voc-box-inf": voc_xml(box=(2, 3, "inf", 30)),
        "voc-box-huge": voc_xml(box=(2, 3, "1e309", 30)), "voc-box-negative": voc_xml(box=(-50, -50, 20, 30)),
        "voc-box-float": voc_xml(box=("2.7", "3.1", "20.5", "30.9")), "voc-no-name": voc_xml(name=None),
        "voc-empty-name": voc_xml(name=""), "voc-missing-image": voc_xml(filename="nowhere.jpg"),
        "voc-path-escape": voc_xml(filename="../../../../etc/hostname"), "voc-entity-bomb": bomb, "voc-xxe": xxe,
        "voc-no-bndbox": good_xml.replace("<bndbox>", "<box>").replace("</bndbox>", "</box>"),
        "voc-wrong-root": good_xml.replace("annotation>", "html>"),
    }
    for name, text in vocs.items():
        cases.append(AnnotationCase(name, "VOC XML", voc_builder(text), "v1.xml"))
    return cases


# ---- running the CLI in this process --------------------------------------------------------------------------
def run_cli(args: list[str]) -> tuple[int | str, str]:
    """``oculi ARGS`` through the console script's entry point in this process: (exit code or "exception",
    stdout + stderr, with the traceback of an exception that escaped)."""
    from oculi.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv
    sys.argv = ["oculi", *args]
    code: int | str = 0
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(CASE_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except CaseTimeout as e:
        code = "hang"
        err.write(f"hang: {e}\n")
    except MemoryError:
        code = "out of memory"
        err.write(f"{TRACEBACK}\nMemoryError (address space capped at +{MEMORY_HEADROOM >> 30} GiB)\n")
    except BaseException:  # noqa: BLE001 - an escaping exception is what we count
        code = "exception"
        err.write(traceback.format_exc())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = saved
    return code, out.getvalue() + err.getvalue()


def _first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:160] if lines else ""


def check_image(case: Case, root: Path, tally: Tally) -> None:
    """``oculi data check`` on two class folders, one of which holds the case."""
    folder = root / "check" / Path(case.name).stem
    rng = np.random.default_rng(5)
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        for n in range(3):
            _picture(rng).save(folder / cls / f"good{n}.png")
    (folder / "a" / case.name).write_bytes(case.data)
    _judge_check(folder, case.name, case.kind, tally, surface="data check (images)", must_pass=case.valid)


def _judge_check(path: Path, mutated: str, kind: str, tally: Tally, surface: str, must_pass: bool = False) -> None:
    code, text = run_cli(["data", "check", str(path), "--json", "--workers", "1"])
    outcome = Outcome(surface, mutated if surface.endswith("(images)") else path.name, kind)
    outcome.traceback = TRACEBACK in text
    outcome.crash = code not in (0, 1, 2, 3)
    report = None
    with contextlib.suppress(ValueError):
        report = json.loads(text[text.index("{"):]) if code in (0, 1) and "{" in text else None
    failed = code != 0
    if report is not None:
        errors = [f for f in report.get("findings", []) if f.get("level") == "error"]
        unnamed = [f for f in errors if not f.get("path")]
        named = any(mutated in (f.get("path") or "") or mutated in f.get("message", "") for f in errors) \
            or any(mutated in p for p in report.get("bad_images", []))
        if unnamed:
            outcome.unnamed, outcome.note = True, f"finding without a file: {unnamed[0]['message'][:120]}"
        elif (failed or errors) and not named:
            outcome.unnamed = True
            outcome.note = "errors name other files: " + "; ".join(f"{f.get('path')}: {f['message'][:60]}"
                                                                     for f in errors[:2])
    elif failed and mutated not in text:
        outcome.unnamed, outcome.note = True, f"exit {code}: {_first_line(text)}"
    if must_pass and failed and not outcome.note:
        outcome.note = f"a valid image was refused (exit {code}): {_first_line(text)}"
    if outcome.crash or outcome.traceback:
        outcome.unnamed = False  # counted once, as what it is
        outcome.note = f"exit {code}: {_first_line(text)}"
    outcome.refused = failed or bool(report and any(f.get("level") == "error" for f in report.get("findings", [])))
    tally.add(outcome)


def predict_image(case: Case, root: Path, bundle: Path, tally: Tally) -> None:
    """``oculi predict BUNDLE IMAGE --json``."""
    path = root / "predict" / case.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(case.data)
    code, text = run_cli(["predict", str(bundle), str(path), "--json"])
    outcome = Outcome("predict", case.name, case.kind, traceback=TRACEBACK in text, crash=code not in (0, 3),
                      refused=code != 0)
    if code != 0 and case.name not in text and not (outcome.crash or outcome.traceback):
        outcome.unnamed = True
    if outcome.crash or outcome.traceback or outcome.unnamed or (case.valid and code != 0):
        outcome.note = f"exit {code}: {_first_line(text)}"
    tally.add(outcome)


# ---- the server and transform (child processes) ---------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _oculi(*args: str) -> list[str]:
    return [sys.executable, "-c", "from oculi.cli import main; main()", *args]


def serve_images(cases: list[Case], bundle: Path, root: Path, tally: Tally) -> None:
    """``oculi serve BUNDLE`` on a loopback port; each case is POSTed to /invocations once."""
    port = _free_port()
    log = root / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(_oculi("serve", str(bundle), "--port", str(port)), stdout=sink,
                                stderr=subprocess.STDOUT, preexec_fn=_child_limit)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/ping")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"oculi serve did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        for case in cases:
            outcome = Outcome("server /invocations", case.name, case.kind)
            content_type = "image/png" if case.name.endswith(".png") else "image/jpeg"
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                connection.request("POST", "/invocations", body=case.data,
                                   headers={"Content-Type": content_type, "Accept": "application/json"})
                response = connection.getresponse()
                body = response.read().decode(errors="replace")
                connection.close()
                outcome.crash = response.status >= 500
                outcome.refused = 400 <= response.status < 500
                outcome.traceback = TRACEBACK in body
                if outcome.crash or outcome.traceback or (case.valid and response.status != 200):
                    outcome.note = f"HTTP {response.status}: {body[:140]}"
            except OSError as e:
                outcome.crash, outcome.note = True, f"no answer: {type(e).__name__}: {e}"
            tally.add(outcome)
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        if proc.poll() is None:
            proc.kill()
    text = log.read_text(errors="replace")
    if TRACEBACK in text:
        first = text[text.index(TRACEBACK):].splitlines()
        tally.add(Outcome("server /invocations", "(server log)", "log", traceback=True,
                          note=" / ".join(first[-1:])[:160]))


def transform_images(cases: list[Case], bundle: Path, root: Path, tally: Tally) -> None:
    """One ``oculi transform`` over a folder holding every case: each input needs a result or an errors.jsonl
    record that names it."""
    inputs, output = root / "transform-in", root / "transform-out"
    inputs.mkdir()
    for case in cases:
        (inputs / case.name).write_bytes(case.data)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(_oculi("transform", str(bundle), "--input", str(inputs), "--output", str(output),
                                 "--no-progress"), capture_output=True, text=True, env=env, timeout=1800,
                          preexec_fn=_child_limit)
    text = proc.stdout + proc.stderr
    logs = list(Path(os.environ["OCULI_HOME"]).glob("jobs/*transform*/logs/*.log"))
    text += "".join(p.read_text(errors="replace") for p in logs)
    errors: dict[str, dict] = {}
    errors_file = output / "errors.jsonl"
    if errors_file.exists():
        for line in errors_file.read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                errors[str(record.get("source") or record.get("path"))] = record
    run = Outcome("transform", "(the run)", "run", traceback=TRACEBACK in text, crash=proc.returncode != 0)
    if run.crash or run.traceback:
        run.note = f"exit {proc.returncode}: {_first_line(text)}"
    tally.add(run)
    for case in cases:
        outcome = Outcome("transform", case.name, case.kind)
        result = output / f"{case.name}.out"
        record = next((r for key, r in errors.items() if key.endswith(case.name)), None)
        if record is None and not result.exists():
            outcome.crash, outcome.note = True, "neither a result nor an errors.jsonl record"
        elif record is not None and case.name not in json.dumps(record):
            outcome.unnamed, outcome.note = True, f"errors.jsonl record does not name it: {record}"
        elif record is not None and case.valid:
            outcome.note = f"a valid image failed: {str(record.get('error'))[:120]}"
        outcome.refused = record is not None
        tally.add(outcome)


# ---- the bundle and the report --------------------------------------------------------------------------------
def make_bundle(directory: Path) -> Path:
    """A 2-class ResNet-20 image-classification bundle at 3×32×32, random weights, written through the
    algorithm contract and ``save_bundle`` (nothing trained, nothing downloaded)."""
    import torch

    from oculi.algorithms import get_algorithm
    from oculi.artifacts import save_bundle

    algo = get_algorithm("image-classification")
    hp = algo.hyperparameters.model_validate({"num_layers": "20", "image_shape": "3,32,32", "num_classes": "2",
                                              "resize": "32",
                                              "lr_scheduler": "cosine", "num_workers": "0",
                                              "precision_dtype": "float32"})
    torch.manual_seed(0)
    model = algo.build_model(hp, ["a", "b"], pretrained=False).eval()
    meta = {"algorithm": algo.name, "task": algo.task, "hyperparameters": hp.model_dump(mode="json"),
            "classes": ["a", "b"], "input": algo.input_spec(hp), "metrics": {}}
    return save_bundle(directory, meta, model)


def report(tally: Tally, show: int) -> int:
    """Print the per-surface table and the failing cases; returns the number of failing outcomes."""
    surfaces: dict[str, Counter] = {}
    for o in tally.outcomes:
        c = surfaces.setdefault(o.surface, Counter())
        c["cases"] += 1
        c["traceback"] += o.traceback
        c["crash"] += o.crash
        c["unnamed"] += o.unnamed
        c["other"] += bool(o.note) and not (o.traceback or o.crash or o.unnamed)
        c["refused"] += o.refused and not (o.traceback or o.crash or o.unnamed)
    header = (f"{'surface':<26}{'cases':>7}{'refused ok':>12}{'tracebacks':>12}{'crashes':>9}{'unnamed':>9}"
              f"{'other':>7}")
    print(header)
    print("-" * len(header))
    for surface, c in surfaces.items():
        print(f"{surface:<26}{c['cases']:>7}{c['refused']:>12}{c['traceback']:>12}{c['crash']:>9}{c['unnamed']:>9}"
              f"{c['other']:>7}")
    total = Counter()
    for c in surfaces.values():
        total.update(c)
    print("-" * len(header))
    print(f"{'total':<26}{total['cases']:>7}{total['refused']:>12}{total['traceback']:>12}{total['crash']:>9}"
          f"{total['unnamed']:>9}{total['other']:>7}")
    print("refused ok: answered with an error that names the file (or a 4xx); the rest passed as valid input")
    bad = [o for o in tally.outcomes if o.note]
    if bad:
        listed = "" if len(bad) <= show else f", first {show} listed"
        print(f"\nfailing cases ({len(bad)}; 'other' = a valid image refused{listed}):")
        by_kind = Counter((o.surface, o.kind) for o in bad)
        for (surface, kind), n in sorted(by_kind.items()):
            print(f"  {surface:<26} {kind:<26} {n}")
        print()
        for o in bad[:show]:
            flags = ",".join(k for k in ("traceback", "crash", "unnamed") if getattr(o, k)) or "other"
            print(f"  [{flags}] {o.surface} · {o.case}: {o.note}")
    return len(bad)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("images", "annotations"), default=None)
    parser.add_argument("--show", type=int, default=40, help="failing cases listed in full")
    parser.add_argument("--verbose", action="store_true", help="print each case's time as it runs")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="oculi-fuzz-") as tmp:
        root = Path(tmp)
        os.environ["OCULI_HOME"] = str(root / "home")
        tally = Tally()
        import torch  # noqa: F401

        import oculi.cli  # noqa: F401 - loaded before the address space is capped

        cap = limit_memory()
        print(f"address space capped at {cap / 2**30:.1f} GiB; {CASE_SECONDS} s per case", flush=True)
        if args.only != "annotations":
            bundle = make_bundle(root / "bundle")
            cases = image_cases(args.seed)
            print(f"{len(cases)} image cases", flush=True)
            for case in cases:
                check_image(case, root, tally)
            print(f"  data check done ({time.perf_counter() - started:.0f} s)", flush=True)
            for case in cases:
                predict_image(case, root, bundle, tally)
            print(f"  predict done ({time.perf_counter() - started:.0f} s)", flush=True)
            serve_images(cases, bundle, root, tally)
            print(f"  server done ({time.perf_counter() - started:.0f} s)", flush=True)
            transform_images(cases, bundle, root, tally)
            print(f"  transform done ({time.perf_counter() - started:.0f} s)", flush=True)
        if args.only != "images":
            annotations = annotation_cases(args.seed)
            print(f"{len(annotations)} annotation cases", flush=True)
            for n, case in enumerate(annotations):
                folder = root / "annotations" / f"{n:03d}-{case.name}"
                folder.mkdir(parents=True)
                try:
                    target = case.build(folder)
                except Exception as e:  # noqa: BLE001 - a case the bench itself cannot build is reported
                    tally.add(Outcome("data check (annotations)", case.name, case.kind, note=f"bench: {e}"))
                    continue
                began = time.perf_counter()
                _judge_check(target, case.mutated, case.kind, tally, surface="data check (annotations)")
                tally.outcomes[-1].case = case.name
                if args.verbose:
                    print(f"    {case.name}: {time.perf_counter() - began:.1f} s", flush=True)
            print(f"  data check done ({time.perf_counter() - started:.0f} s)", flush=True)
        print()
        report(tally, args.show)
        shutil.rmtree(root / "home", ignore_errors=True)
    print(f"\nseed {args.seed}; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
