"""Fixtures for the batch-transform tests: tiny trained bundles (built once per session) and image folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

from oculi.engine.training import train
from tests.segmentation.helpers import TINY as TINY_SEGMENTATION
from tests.segmentation.helpers import write_label_map, write_layout


@pytest.fixture(scope="session")
def segmenter(tmp_path_factory) -> Path:
    """A one-epoch semantic-segmentation bundle trained with a label map (masks store class × 3), so its PNG
    results are in that encoding."""
    root = tmp_path_factory.mktemp("batch-shapes")
    write_layout(root, "train", 8, seed=1, size=(64, 48), encode=lambda c: c * 3)
    write_layout(root, "validation", 4, seed=2, size=(64, 48), encode=lambda c: c * 3)
    label_map = write_label_map(root, {"scale": "3"})
    out = root / "model"
    channels = {"train": root / "train", "train_annotation": root / "train_annotation",
                "validation": root / "validation", "validation_annotation": root / "validation_annotation",
                "label_map": label_map}
    train("semantic-segmentation", channels, TINY_SEGMENTATION, output=out, progress=False, echo=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def image_tree(tiny_split, tmp_path_factory) -> Path:
    """``images/`` with 9 images in class sub-folders (PNG) and 3 JPEG copies at the top, plus a non-image file
    and a hidden folder that a transform must leave alone."""
    root = tmp_path_factory.mktemp("batch-images") / "images"
    for folder in sorted(tiny_split["validation"].iterdir()):
        (root / folder.name).mkdir(parents=True)
        for png in sorted(folder.glob("*.png"))[:3]:
            shutil.copy(png, root / folder.name / png.name)
        Image.open(sorted(folder.glob("*.png"))[3]).save(root / f"{folder.name}.jpg", quality=90)
    (root / "notes.txt").write_text("not an image")
    (root / ".cache").mkdir()
    shutil.copy(sorted((root / "circle").glob("*.png"))[0], root / ".cache" / "hidden.png")
    return root


def copy_tree(source: Path, target: Path) -> Path:
    """A private copy of an image folder (for tests that add or break files)."""
    shutil.copytree(source, target)
    return target
