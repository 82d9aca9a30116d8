"""Class ids are never silently lost: an id outside a detection manifest's class-map, a SageMaker JSON's
categories or `num_classes` is a finding naming the file and line, not a new (or phantom, empty) class; training
refuses it, or leaves it out with `skip_bad_images=true`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from oculi.data.checks import check_path
from oculi.data.formats.lst import read_lst
from oculi.data.formats.manifest import read_detection_manifest, read_manifest
from oculi.data.formats.sagemaker_json import read_sagemaker_json
from oculi.engine.training import train
from oculi.errors import DataError
from tests.data.conftest import make_image
from tests.helpers import TINY


def _lst(root: Path, ids: list[int]) -> Path:
    """``root/train.lst`` with one line per id (``index<TAB>id<TAB>img<n>.png``) and its image; returns the
    .lst."""
    lines = []
    for n, class_id in enumerate(ids):
        make_image(root / f"img{n}.png", seed=n, size=(32, 32))
        lines.append(f"{n}\t{class_id}\timg{n}.png\n")
    path = root / "train.lst"
    path.write_text("".join(lines))
    return path


IDS = [0, 1, 5, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]  # line 3 holds id 5


def test_lst_id_at_or_above_num_classes_names_the_line(tmp_path: Path) -> None:
    path = _lst(tmp_path, IDS)
    gaps = read_lst(path)
    assert gaps.classes == [str(i) for i in range(6)]
    (gap,) = [f for f in gaps.findings if f.code == "class_id_gap"]
    assert (gap.path, gap.line) == (str(path), 3) and "2, 3, 4" in gap.message
    read = read_lst(path, num_classes=2)
    assert read.classes == ["0", "1"] and len(read) == len(IDS) - 1
    (finding,) = read.findings
    assert (finding.code, finding.level, finding.path, finding.line) == ("label_out_of_range", "error", str(path), 3)
    assert "num_classes=2" in finding.message
    report = check_path(path, num_classes=2)
    assert not report.ok and [(f.code, f.line) for f in report.errors()] == [("label_out_of_range", 3)]
    assert "skip_bad_images" in report.verdict()


def test_training_refuses_an_id_beyond_num_classes_or_leaves_it_out_with_consent(tmp_path: Path) -> None:
    path = _lst(tmp_path / "data", IDS)
    params = {**TINY, "num_classes": "2"}
    with pytest.raises(DataError, match=rf"{path}:3: class id 5 is outside"):
        train("image-classification", {"train": path}, params, output=tmp_path / "a", progress=False,
              echo=lambda *_: None)
    lines: list[str] = []
    result = train("image-classification", {"train": path}, {**params, "skip_bad_images": "true"},
                   output=tmp_path / "b", progress=False, echo=lines.append, stop_requested=lambda: True)
    assert result.classes == ["0", "1"]
    assert any("left out 1 label(s)" in line and f"{path}:3" in line for line in lines), lines


def test_classification_manifest_id_beyond_num_classes(tmp_path: Path) -> None:
    rows = []
    for n, class_id in enumerate([0, 1, 7]):
        make_image(tmp_path / f"m{n}.png", seed=n)
        rows.append(json.dumps({"source-ref": f"m{n}.png", "class": class_id}) + "\n")
    (tmp_path / "train.manifest").write_text("".join(rows))
    gaps = read_manifest(tmp_path / "train.manifest")
    assert [(f.code, f.line) for f in gaps.findings if f.code == "class_id_gap"] == [("class_id_gap", 3)]
    read = read_manifest(tmp_path / "train.manifest", num_classes=2)
    assert read.classes == ["0", "1"] and len(read) == 2
    assert [(f.code, f.line) for f in read.findings] == [("label_out_of_range", 3)]


def _bee_manifest(root: Path) -> Path:
    make_image(root / "a.png", size=(40, 30))
    make_image(root / "b.png", seed=1, size=(40, 30))
    meta = {"class-map": {"0": "bee"}, "type": "groundtruth/object-detection"}
    lines = [{"source-ref": "a.png", "boxes": {"image_size": [{"width": 40, "height": 30, "depth": 3}],
                                              "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 9,
                                                               "height": 9}]}, "boxes-metadata": meta},
             {"source-ref": "b.png", "boxes": {"image_size": [{"width": 40, "height": 30, "depth": 3}],
                                              "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 9,
                                                               "height": 9},
                                                              {"class_id": 1, "left": 5, "top": 5, "width": 9,
                                                               "height": 9}]}, "boxes-metadata": meta}]
    path = root / "train.manifest"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_detection_manifest_class_id_missing_from_its_class_map(tmp_path: Path) -> None:
    path = _bee_manifest(tmp_path)
    read = read_detection_manifest(path)
    assert read.classes == ["bee"]
    assert [s.target.labels for s in read.samples] == [(0,), (0,)]
    (finding,) = [f for f in read.findings if f.level == "error"]
    assert (finding.code, finding.path, finding.line) == ("unknown_class", str(path), 2)
    assert "class_id 1" in finding.message and "0: bee" in finding.message
    report = check_path(path)
    assert report.classes == ["bee"] and [(f.code, f.line) for f in report.errors()] == [("unknown_class", 2)]
    with pytest.raises(DataError, match=rf"{path}:2: class_id 1 is not in the boxes-metadata class-map"):
        train("object-detection", {"train": path}, {"image_shape": "64", "num_workers": "0"},
              output=tmp_path / "m", progress=False, echo=lambda *_: None)


def test_sagemaker_json_class_id_outside_its_categories(tmp_path: Path) -> None:
    make_image(tmp_path / "train" / "x.jpg", size=(20, 10))
    (tmp_path / "train_annotation").mkdir()
    record = {"file": "x.jpg", "image_size": [{"width": 20, "height": 10, "depth": 3}],
              "annotations": [{"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4},
                              {"class_id": 3, "left": 0, "top": 0, "width": 5, "height": 5}],
              "categories": [{"class_id": 0, "name": "dog"}]}
    (tmp_path / "train_annotation" / "x.json").write_text(json.dumps(record, indent=1))
    read = read_sagemaker_json(tmp_path / "train", tmp_path / "train_annotation")
    assert read.classes == ["dog"] and read.samples[0].target.labels == (0,)
    (finding,) = [f for f in read.findings if f.level == "error"]
    assert finding.code == "unknown_class" and finding.path == str(tmp_path / "train_annotation" / "x.json")
    lines = (tmp_path / "train_annotation" / "x.json").read_text().splitlines()
    assert '"class_id": 3' in lines[finding.line - 1] and "annotation 2" in finding.message


def test_data_check_cli_num_classes_names_the_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from oculi.cli.data import app

    path = _lst(tmp_path, IDS)
    for args in ([str(path)], ["--channel", f"train={path}"]):
        result = CliRunner().invoke(app, ["check", *args, "--num-classes", "2", "--json"])
        assert result.exit_code == 1, result.output
        errors = [f for f in json.loads(result.output)["findings"] if f["level"] == "error"]
        assert [(f["code"], f["path"], f["line"]) for f in errors] == [("label_out_of_range", str(path), 3)]


def test_detection_ids_without_names_are_checked_against_num_classes(tmp_path: Path) -> None:
    """A manifest without class-map, SageMaker JSON without categories and YOLO without names: ids at or above
    `num_classes` are findings naming the line; without it, gaps are a warning naming the first id past one."""
    from oculi.data.formats.yolo import read_yolo

    box = {"left": 1, "top": 1, "width": 9, "height": 9}
    rows = []
    for n, class_id in enumerate([0, 1, 5]):
        make_image(tmp_path / "m" / f"{n}.png", seed=n, size=(40, 30))
        rows.append(json.dumps({"source-ref": f"{n}.png", "boxes": {"annotations": [{"class_id": class_id, **box}]}}))
    manifest = tmp_path / "m" / "train.manifest"
    manifest.write_text("\n".join(rows) + "\n")
    read = read_detection_manifest(manifest, num_classes=2)
    assert read.classes == ["0", "1"]
    assert [(f.code, f.path, f.line) for f in read.findings] == [("label_out_of_range", str(manifest), 3)]
    with pytest.raises(DataError, match=rf"{manifest}:3: class id 5 is outside"):
        train("object-detection", {"train": manifest}, {"image_shape": "64", "num_workers": "0", "num_classes": "2"},
              output=tmp_path / "out", progress=False, echo=lambda *_: None)

    make_image(tmp_path / "s" / "train" / "x.jpg", size=(20, 10))
    (tmp_path / "s" / "train_annotation").mkdir()
    record = {"file": "x.jpg", "annotations": [{"class_id": 0, **box}, {"class_id": 4, **box}]}
    (tmp_path / "s" / "train_annotation" / "x.json").write_text(json.dumps(record, indent=1))
    read = read_sagemaker_json(tmp_path / "s" / "train", tmp_path / "s" / "train_annotation", num_classes=2)
    assert read.classes == ["0", "1"] and [f.code for f in read.findings if f.level == "error"] == [
        "label_out_of_range"]

    (tmp_path / "y" / "labels").mkdir(parents=True)
    for n, class_id in enumerate([0, 3]):
        make_image(tmp_path / "y" / "images" / f"{n}.png", seed=n, size=(40, 30))
        (tmp_path / "y" / "labels" / f"{n}.txt").write_text(f"{class_id} 0.5 0.5 0.2 0.2\n")
    gaps = read_yolo(tmp_path / "y")
    (gap,) = [f for f in gaps.findings if f.code == "class_id_gap"]
    assert (gap.path, gap.line) == (str(tmp_path / "y" / "labels" / "1.txt"), 1) and "1, 2" in gap.message
    read = read_yolo(tmp_path / "y", num_classes=2)
    assert read.classes == ["0", "1"]
    assert [(f.code, f.line) for f in read.findings if f.level == "error"] == [("label_out_of_range", 1)]
