"""Splits are never silently lost: a Roboflow YOLO export's train / valid / test folders are read as its
data.yaml says (validation from `val`, `test` left out of training and said so)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.data.checks import check_path
from oculi.data.detection import detect_format, read_detection
from oculi.data.formats.yolo import read_yolo, yolo_splits
from oculi.engine.training import train
from oculi.errors import DataError

TINY_SSD = {"image_shape": "64", "mini_batch_size": "2", "num_workers": "0", "epochs": "1",
            "precision_dtype": "float32"}
ROBOFLOW_YAML = """train: ../train/images
val: ../valid/images
test: ../test/images

nc: 2
names: ['box', 'disc']

roboflow:
  workspace: someone
  project: shapes
  version: 1
"""


def roboflow_yolo(root: Path, counts: dict[str, int] | None = None) -> Path:
    """A YOLO dataset laid out as Roboflow exports it: ``<split>/images`` + ``<split>/labels`` for ``train``,
    ``valid`` and ``test``, ``data.yaml`` with ``../<split>/images`` paths, and the README*.txt files Roboflow
    writes (one of them beside the labels). Every image has one box of class 0 and one of class 1; the images
    are distinct, so a split leaking into another shows in the counts."""
    counts = counts or {"train": 6, "valid": 2, "test": 3}
    rng = np.random.default_rng(7)
    for split, count in counts.items():
        (root / split / "labels").mkdir(parents=True)
        (root / split / "images").mkdir()
        for i in range(count):
            pixels = rng.integers(0, 255, (48, 64, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(root / split / "images" / f"{split}_{i}.jpg")
            (root / split / "labels" / f"{split}_{i}.txt").write_text("0 0.3 0.3 0.4 0.4\n1 0.7 0.7 0.3 0.3\n")
    (root / "data.yaml").write_text(ROBOFLOW_YAML)
    (root / "README.roboflow.txt").write_text("\nShapes - v1\n==============================\n\nThis dataset "
                                              "was exported via roboflow.com on December 5, 2026\n")
    (root / "README.dataset.txt").write_text("# Shapes > 2026-12-05\nhttps://universe.roboflow.com/\n")
    (root / "train" / "labels" / "README.roboflow.txt").write_text("Provided by a Roboflow user\nLicense: CC BY 4.0\n")
    return root


def test_roboflow_splits_resolve_as_the_yaml_says(tmp_path: Path) -> None:
    root = roboflow_yolo(tmp_path / "export")
    expected = {"train": root / "train" / "labels", "val": root / "valid" / "labels",
                "test": root / "test" / "labels"}
    assert yolo_splits(root) == expected and yolo_splits(root / "data.yaml") == expected
    assert detect_format(root) == "yolo"
    train_set = read_detection(root, split="train")
    assert train_set.classes == ["box", "disc"]
    assert sorted(s.image.stem for s in train_set.samples) == [f"train_{i}" for i in range(6)]
    # README*.txt beside the labels is not a label file: no bad_line / missing_image findings.
    assert not [f for f in train_set.findings if f.level != "info"], train_set.findings
    assert [s.image.stem for s in read_yolo(root, split="val").samples] == ["valid_0", "valid_1"]
    everything = read_yolo(root)  # e.g. `oculi data convert ROOT`: all splits in one set, and said so
    assert len(everything) == 11
    (merged,) = [f for f in everything.findings if f.level != "info"]
    assert merged.code == "splits_merged" and "test (" in merged.message


def test_data_check_on_the_export_root_checks_each_split(tmp_path: Path) -> None:
    report = check_path(roboflow_yolo(tmp_path / "export"))
    assert report.task == "detection" and report.classes == ["box", "disc"]
    assert report.num_images == {"train": 6, "validation": 2, "test": 3}
    assert report.counts["test"] == {"box": 3, "disc": 3}
    assert report.ok, report.findings
    (note,) = [f for f in report.findings if f.code == "yolo_splits"]
    assert f"test → {tmp_path / 'export' / 'test' / 'labels'}" in note.message


def test_training_validates_on_val_and_leaves_test_out(tmp_path: Path) -> None:
    root = roboflow_yolo(tmp_path / "export")
    lines: list[str] = []
    train("object-detection", {"train": root}, TINY_SSD, output=tmp_path / "model", progress=False,
          echo=lines.append, stop_requested=lambda: True)
    text = "\n".join(lines)
    assert "training on 6 images, validating on 2" in text, text
    assert "held out" not in text
    assert any("test split" in line and str(root / "test" / "labels") in line and "left out" in line
               for line in lines), text


def test_plain_yaml_paths_and_missing_split_folders(tmp_path: Path) -> None:
    """`path:` is relative to the YAML; a split whose folder is absent, or that names the train folder again,
    is not a split of its own."""
    root = roboflow_yolo(tmp_path / "export", {"train": 2, "valid": 1})
    (root / "data.yaml").write_text("path: .\ntrain: train/images\nval: train/images\ntest: test/images\n"
                                    "names: {0: box, 1: disc}\n")
    assert yolo_splits(root) == {"train": root / "train" / "labels"}
    assert len(read_detection(root, split="train")) == 2


def test_training_refuses_a_yaml_whose_train_folder_cannot_be_found(tmp_path: Path) -> None:
    """val/test folders found but no train folder: reading "everything" would train on the held-out images."""
    root = roboflow_yolo(tmp_path / "export", {"train": 2, "valid": 1, "test": 1})
    (root / "data.yaml").write_text(ROBOFLOW_YAML.replace("../train/images", "../training/images"))
    with pytest.raises(DataError, match="no existing `train:` folder"):
        train("object-detection", {"train": root}, TINY_SSD, output=tmp_path / "model", progress=False,
              echo=lambda *_: None)


def test_sagemaker_detection_root_uses_its_validation_channel(tmp_path: Path) -> None:
    """`--train ROOT` with SageMaker's detection layout (train/, train_annotation/, validation/,
    validation_annotation/): validation/ validates, nothing is held out of train."""
    root = tmp_path / "sm"
    rng = np.random.default_rng(3)
    for split, count in (("train", 6), ("validation", 2)):
        (root / split).mkdir(parents=True)
        (root / f"{split}_annotation").mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (48, 64, 3)).astype(np.uint8)).save(root / split / f"{i}.jpg")
            record = {"file": f"{i}.jpg", "image_size": [{"width": 64, "height": 48, "depth": 3}],
                      "annotations": [{"class_id": 0, "left": 5, "top": 5, "width": 20, "height": 20},
                                      {"class_id": 1, "left": 30, "top": 20, "width": 20, "height": 20}],
                      "categories": [{"class_id": 0, "name": "box"}, {"class_id": 1, "name": "disc"}]}
            (root / f"{split}_annotation" / f"{i}.json").write_text(json.dumps(record))
    lines: list[str] = []
    train("object-detection", {"train": root}, TINY_SSD, output=tmp_path / "model", progress=False,
          echo=lines.append, stop_requested=lambda: True)
    text = "\n".join(lines)
    assert "training on 6 images, validating on 2" in text and "held out" not in text, text
    assert "channels found: train (train/), train_annotation" in text
