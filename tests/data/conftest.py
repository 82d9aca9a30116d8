"""Tiny generated classification datasets in every supported layout, plus broken and unusual images."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MakeImage = Callable[..., Path]


def make_image(
    path: Path,
    *,
    seed: int = 0,
    size: tuple[int, int] = (24, 16),
    mode: str = "RGB",
    exif_orientation: int | None = None,
) -> Path:
    """Write a small random image (unique bytes per ``seed``) in ``mode``; the format follows the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (height, width)).astype(np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB").convert(mode)
    if exif_orientation is not None:
        exif = img.getexif()
        exif[0x0112] = exif_orientation
        img.save(path, exif=exif)
    else:
        img.save(path)
    return path


@pytest.fixture
def image_factory() -> MakeImage:
    """:func:`make_image`, for tests that build their own layout."""
    return make_image


@pytest.fixture
def class_folders(tmp_path: Path) -> Path:
    """``folders/{cat: 4, dog: 3, fish: 3}`` JPEG/PNG images; ``cat`` also holds ``notes.txt`` and a sub-folder."""
    root = tmp_path / "folders"
    seed = 0
    for name, count in (("cat", 4), ("dog", 3), ("fish", 3)):
        for i in range(count):
            seed += 1
            make_image(root / name / f"{name}{i}.{'jpg' if i % 2 else 'png'}", seed=seed)
    (root / "cat" / "notes.txt").write_text("not an image")
    make_image(root / "cat" / "more" / "cat_nested.JPG", seed=100)
    return root


@pytest.fixture
def split_folders(tmp_path: Path) -> Path:
    """``splits/{train,val}/{ants,bees}`` — the hymenoptera layout, in miniature."""
    root = tmp_path / "splits"
    seed = 200
    for split, count in (("train", 4), ("val", 2)):
        for name in ("ants", "bees"):
            for i in range(count):
                seed += 1
                make_image(root / split / name / f"{name}{i}.jpg", seed=seed)
    return root


@pytest.fixture
def lst_dataset(tmp_path: Path) -> Path:
    """``lst/images/*.jpg`` and ``lst/train.lst`` (3 classes, 6 images, non-sequential indices); returns the .lst."""
    root = tmp_path / "lst"
    lines = []
    for i, label in enumerate([0, 1, 2, 0, 1, 2]):
        make_image(root / "images" / f"img{i}.jpg", seed=300 + i)
        lines.append(f"{i * 10 + 5}\t{label}\timages/img{i}.jpg")
    (root / "train.lst").write_text("\n".join(lines) + "\n")
    return root / "train.lst"


def _write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def manifest_single(tmp_path: Path) -> Path:
    """Single-label manifest: labels as ``"0"`` and ``1``, class names from per-line ``class-name``, relative
    ``source-ref`` paths."""
    root = tmp_path / "single"
    records = []
    for i, (label, name) in enumerate([("0", "cat"), (1, "dog"), ("0", "cat"), (1, "dog"), (2, "fish")]):
        make_image(root / "images" / f"s{i}.png", seed=400 + i)
        meta = {"class-name": name, "type": "groundtruth/image-classification"}
        records.append({"source-ref": f"images/s{i}.png", "class": label, "class-metadata": meta})
    return _write_lines(root / "train.manifest", records)


@pytest.fixture
def manifest_multi_hot(tmp_path: Path) -> Path:
    """Multi-hot manifest (``"[1, 0, 1]"`` strings) with a full class-map; ``image-ref`` absolute paths."""
    root = tmp_path / "multihot"
    class_map = {"0": "person", "1": "bicycle", "2": "car"}
    records = []
    for i, hot in enumerate(["[1, 0, 1]", "[0, 1, 0]", "[1, 1, 0]", "[0, 0, 1]"]):
        image = make_image(root / f"m{i}.jpg", seed=500 + i)
        records.append({"image-ref": str(image), "labels": hot, "labels-metadata": {"class-map": class_map}})
    return _write_lines(root / "multi.manifest", records)


@pytest.fixture
def manifest_class_id(tmp_path: Path) -> Path:
    """Class-id multi-label manifest (``"[0, 2]"``) with S3 references resolved from the ``images/`` sub-folder."""
    root = tmp_path / "classid"
    records = []
    for i, ids in enumerate(["[0, 2]", "[1]", "[0, 1, 2]", "[2]"]):
        make_image(root / "images" / f"c{i}.jpg", seed=600 + i)
        records.append({"source-ref": f"s3://my-bucket/data/c{i}.jpg", "class": ids})
    return _write_lines(root / "ids.manifest", records)


@pytest.fixture
def bad_folders(tmp_path: Path) -> Path:
    """``bad/good/`` with 3 decodable images and ``bad/broken/`` with one good image, a truncated JPEG, a text
    file named ``.jpg`` and a zero-byte ``.png``."""
    root = tmp_path / "bad"
    for i in range(3):
        make_image(root / "good" / f"g{i}.jpg", seed=700 + i)
    make_image(root / "broken" / "ok.jpg", seed=710)
    whole = make_image(tmp_path / "whole.jpg", seed=711, size=(64, 64)).read_bytes()
    (root / "broken" / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "broken" / "text.jpg").write_text("this is not a JPEG")
    (root / "broken" / "empty.png").write_bytes(b"")
    return root


@pytest.fixture
def mode_folders(tmp_path: Path) -> Path:
    """``modes/odd/`` holds a grayscale, palette, RGBA, CMYK, 16-bit and an EXIF-rotated image; ``modes/plain/``
    one ordinary RGB JPEG."""
    root = tmp_path / "modes"
    make_image(root / "odd" / "gray.png", seed=800, mode="L")
    make_image(root / "odd" / "palette.png", seed=801, mode="P")
    make_image(root / "odd" / "alpha.png", seed=802, mode="RGBA")
    make_image(root / "odd" / "cmyk.jpg", seed=803, mode="CMYK")
    make_image(root / "odd" / "deep.png", seed=804, mode="I;16")
    make_image(root / "odd" / "rotated.jpg", seed=805, size=(30, 10), exif_orientation=6)
    make_image(root / "plain" / "rgb.jpg", seed=806)
    return root
