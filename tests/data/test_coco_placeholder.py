"""A COCO export whose category 0 is an unused placeholder (Roboflow writes one named after the dataset) gives no
second, empty class: the placeholder is left out and the ledger / data check say so."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from oculi.data.checks import check_path
from oculi.data.convert import convert
from oculi.data.formats.coco import read_coco
from oculi.data.formats.coco_masks import read_coco_masks
from tests.data.conftest import make_image


def _roboflow_coco(root: Path, placeholder_used: bool = False) -> Path:
    """``root/_annotations.coco.json`` as Roboflow exports it: category 0 named after the dataset (supercategory
    "none") above the real class ``bee`` (supercategory the dataset's name); two images, one box each."""
    images, annotations = [], []
    for i in range(2):
        make_image(root / f"hive{i}.jpg", seed=i, size=(40, 30))
        images.append({"id": i, "file_name": f"hive{i}.jpg", "width": 40, "height": 30})
        annotations.append({"id": i, "image_id": i, "category_id": 0 if placeholder_used and i else 1,
                            "bbox": [2, 3, 10, 8], "area": 80, "iscrowd": 0,
                            "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11]]})
    categories = [{"id": 0, "name": "bees-x1", "supercategory": "none"},
                  {"id": 1, "name": "bee", "supercategory": "bees-x1"}]
    path = root / "_annotations.coco.json"
    path.write_text(json.dumps({"info": {}, "licenses": [], "categories": categories, "images": images,
                                "annotations": annotations}))
    return path


def test_unused_placeholder_category_is_left_out_and_said(tmp_path: Path) -> None:
    path = _roboflow_coco(tmp_path / "export")
    read = read_coco(path)
    assert read.classes == ["bee"] and read.class_ids == (1,)
    (note,) = [f for f in read.findings if f.code == "placeholder_category"]
    assert note.level == "info" and "'bees-x1'" in note.message and note.path == str(path)
    report = check_path(path)
    assert report.ok and report.classes == ["bee"] and not [f for f in report.findings if f.code == "empty_class"]
    assert read_coco_masks(path).classes == ["background", "bee"]


def test_convert_ledger_says_the_placeholder_was_left_out(tmp_path: Path) -> None:
    ledger = convert(_roboflow_coco(tmp_path / "export"), "yolo", tmp_path / "yolo")
    assert [c.code for c in ledger.changes if c.code == "placeholder_category"] == ["placeholder_category"]
    assert ledger.boxes_per_class_out == {"bee": 2}
    assert yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())["names"] == {0: "bee"}


def test_a_used_category_0_is_a_class(tmp_path: Path) -> None:
    read = read_coco(_roboflow_coco(tmp_path / "export", placeholder_used=True))
    assert read.classes == ["bees-x1", "bee"]
    assert not [f for f in read.findings if f.code == "placeholder_category"]
