"""Detection formats: each writes the generated dataset and reads it back equal; format details; real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.data.detection import DETECTION_FORMATS, detect_format, read_detection
from oculi.data.formats.coco import read_coco, write_coco
from oculi.data.formats.manifest import read_detection_manifest
from oculi.data.formats.sagemaker_json import read_sagemaker_json, write_sagemaker_json
from oculi.data.formats.voc import read_voc
from oculi.data.formats.yolo import read_yolo, write_yolo
from oculi.types import SampleSet
from tests.data.conftest import make_image
from tests.data.detection_helpers import assert_same_boxes, make_detection_set, write_as


@pytest.fixture
def detection_set(tmp_path: Path) -> SampleSet:
    return make_detection_set(tmp_path / "generated")


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_write_then_read_gives_the_same_samples(fmt: str, detection_set: SampleSet, tmp_path: Path) -> None:
    args = write_as(detection_set, fmt, tmp_path / fmt)
    assert detect_format(args["path"], args.get("annotations")) == fmt
    back = read_detection(**args)
    assert back.task == "detection" and back.format == fmt
    assert not [f for f in back.findings if f.level != "info"], back.findings
    assert_same_boxes(detection_set, back)
    if fmt == "voc":
        assert {s.image.stem: s.target.difficult for s in back.samples}["a"] == (False, True)


def test_sagemaker_json_sparse_ids_without_names_are_restored(tmp_path: Path) -> None:
    make_image(tmp_path / "train" / "x.jpg", size=(20, 10))
    (tmp_path / "train_annotation").mkdir()
    record = {"image_size": [{"width": 20, "height": 10, "depth": 3}],
              "annotations": [{"class_id": 7, "left": 1, "top": 2, "width": 3, "height": 4},
                              {"class_id": 3, "left": 0, "top": 0, "width": 5, "height": 5}]}
    (tmp_path / "train_annotation" / "x.json").write_text(json.dumps(record))
    read = read_sagemaker_json(tmp_path / "train", tmp_path / "train_annotation")
    assert read.classes == ["3", "7"] and read.class_ids == (3, 7)
    assert read.samples[0].target.boxes == ((1.0, 2.0, 4.0, 6.0), (0.0, 0.0, 5.0, 5.0))
    assert read.samples[0].target.labels == (1, 0)
    write_sagemaker_json(read, None, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "x.json").read_text())
    assert [a["class_id"] for a in written["annotations"]] == [7, 3]
    assert Path(written["file"]).is_absolute()


def test_coco_sparse_category_ids_restored_and_renumbered_elsewhere(detection_set: SampleSet, tmp_path: Path) -> None:
    write_coco(detection_set, tmp_path / "one.json")
    data = json.loads((tmp_path / "one.json").read_text())
    assert [c["id"] for c in data["categories"]] == [1, 2, 3]
    for category in data["categories"]:
        category["id"] *= 10
    for annotation in data["annotations"]:
        annotation["category_id"] *= 10
    (tmp_path / "sparse.json").write_text(json.dumps(data))
    sparse = read_coco(tmp_path / "sparse.json")
    assert sparse.class_ids == (10, 20, 30) and sparse.classes == detection_set.classes
    write_coco(sparse, tmp_path / "again.json")
    assert [c["id"] for c in json.loads((tmp_path / "again.json").read_text())["categories"]] == [10, 20, 30]
    findings = write_sagemaker_json(sparse, None, tmp_path / "sm")
    assert [f.code for f in findings] == ["class_ids_renumbered"]


def test_voc_coordinates_are_one_based(tmp_path: Path) -> None:
    make_image(tmp_path / "JPEGImages" / "p.jpg", size=(10, 10))
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "p.xml").write_text(
        "<annotation><filename>p.jpg</filename><size><width>10</width><height>10</height></size>"
        "<object><name>dot</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>1</xmax>"
        "<ymax>1</ymax></bndbox></object></annotation>")
    target = read_voc(tmp_path).samples[0].target
    assert target.boxes == ((0.0, 0.0, 1.0, 1.0),) and target.difficult == (True,)


def test_yolo_reports_each_difficult_box(detection_set: SampleSet, tmp_path: Path) -> None:
    findings = write_yolo(detection_set, tmp_path / "y")
    assert [f.code for f in findings] == ["difficult_not_representable"]
    assert (tmp_path / "y" / "images" / "a.png").is_symlink()
    assert (tmp_path / "y" / "labels" / "negative.txt").read_text() == ""


def test_yolo_layouts_negatives_and_orphan_labels(tmp_path: Path) -> None:
    root = tmp_path / "yolo"
    make_image(root / "images" / "train" / "one.jpg", size=(100, 50))
    make_image(root / "images" / "train" / "empty.jpg", size=(10, 10))
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "one.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.5 0.5 2 2\nbad line\n")
    (root / "labels" / "train" / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "classes.txt").write_text("fish\nbird\n")
    read = read_yolo(root)
    assert read.classes == ["fish", "bird"]
    target = {s.image.stem: s.target for s in read.samples}
    assert target["one"].boxes[0] == pytest.approx((40.0, 15.0, 60.0, 35.0))
    assert target["one"].boxes[1] == (0.0, 0.0, 100.0, 50.0) and target["empty"].boxes == ()
    codes = {(f.code, f.line) for f in read.findings}
    assert ("box_clipped", 2) in codes and ("bad_line", 3) in codes
    assert any(f.code == "missing_image" and f.path.endswith("ghost.txt") for f in read.findings)
    assert any(f.code == "negative_images" for f in read.findings)


def _yolo_with_splits(root: Path) -> Path:
    """A YOLO dataset whose data.yaml names images/train (2 images) and images/val (1 image)."""
    for split, stems in (("train", ("t1", "t2")), ("val", ("v1",))):
        (root / "labels" / split).mkdir(parents=True)
        for stem in stems:
            make_image(root / "images" / split / f"{stem}.jpg", size=(40, 20))
            (root / "labels" / split / f"{stem}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [fish]\n")
    return root


def test_yolo_data_yaml_splits(tmp_path: Path) -> None:
    from oculi.data.formats.yolo import yolo_splits
    from oculi.errors import DataError

    root = _yolo_with_splits(tmp_path / "y")
    assert yolo_splits(root) == {"train": root / "labels" / "train", "val": root / "labels" / "val"}
    assert yolo_splits(root / "data.yaml") == yolo_splits(root)
    assert sorted(s.image.stem for s in read_yolo(root).samples) == ["t1", "t2", "v1"]
    assert sorted(s.image.stem for s in read_detection(root, split="train").samples) == ["t1", "t2"]
    assert [s.image.stem for s in read_detection(root / "data.yaml", split="val").samples] == ["v1"]
    with pytest.raises(DataError, match="no existing `test` split"):
        read_yolo(root, split="test")


def test_manifest_missing_image_names_line_and_fix(tmp_path: Path) -> None:
    line = {"source-ref": "s3://bucket/data/nowhere.jpg",
            "boxes": {"annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 0, "height": 3}]}}
    (tmp_path / "m.manifest").write_text(json.dumps(line) + "\n")
    read = read_detection_manifest(tmp_path / "m.manifest")
    (finding,) = read.findings
    assert finding.code == "missing_image" and finding.line == 1
    assert "--image-root s3://bucket/data=DIR" in finding.message


def test_zero_area_box_is_a_warning(tmp_path: Path) -> None:
    make_image(tmp_path / "z.png", size=(8, 8))
    line = {"source-ref": "z.png", "boxes": {"annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 0,
                                                             "height": 3}]}}
    (tmp_path / "m.manifest").write_text(json.dumps(line) + "\n")
    read = read_detection_manifest(tmp_path / "m.manifest")
    assert read.samples[0].target.boxes == ()
    assert [(f.code, f.level, f.line) for f in read.findings] == [("empty_box", "warning", 1)]


def test_unknown_classes_against_training_classes(detection_set: SampleSet, tmp_path: Path) -> None:
    args = write_as(detection_set, "coco", tmp_path / "c")
    read = read_detection(**args, classes=["cat", "dog"])
    assert read.classes == ["cat", "dog"]
    assert sum(f.code == "unknown_class" for f in read.findings) == 2


def test_unrecognised_folder_names_the_formats(tmp_path: Path) -> None:
    from oculi.errors import DataError

    with pytest.raises(DataError, match="--from"):
        read_detection(tmp_path)


def test_bees_manifest_with_image_root(shared_data: Path) -> None:
    read = read_detection(shared_data / "bees" / "train.manifest",
                          image_roots={"s3://sagemaker-remars/datasets/na-bees/500": shared_data / "bees" / "images"})
    assert read.format == "manifest" and read.classes == ["bee"]
    assert len(read) == 400 and sum(len(s.target) for s in read.samples) == 843
    assert not read.findings


def test_coco128_yolo(shared_data: Path) -> None:
    read = read_detection(shared_data / "coco128" / "object_detection")
    assert read.format == "yolo" and len(read.classes) == 80 and read.classes[0] == "person"
    # 128 label files and 128 images, but two label files (12 boxes) have no image: 941 lines, 929 boxes read.
    assert len(read) == 128 and sum(len(s.target) for s in read.samples) == 929
    assert sorted(f.code for f in read.findings if f.level != "info") == ["missing_image", "missing_image"]
    # Its config.yaml names images/train2017 (present) and images/val2017 (absent here): the train split is all.
    assert len(read_detection(shared_data / "coco128" / "object_detection", split="train")) == 128


@pytest.mark.parametrize("relative", ["format-fixtures/annotations.json", "format-fixtures/voc",
                                      "format-fixtures/fridge/odFridgeObjects"])
def test_format_fixtures_read_without_errors(shared_data: Path, relative: str) -> None:
    read = read_detection(shared_data / relative)
    assert len(read) > 0 and sum(len(s.target) for s in read.samples) > 0
    assert not [f for f in read.findings if f.level == "error"], read.findings
