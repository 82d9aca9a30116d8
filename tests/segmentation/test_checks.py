"""`oculi data check` on segmentation data: each mask finding names its file (and says how to fix it)."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from oculi.cli import app
from oculi.data.checks import check_classification, check_path
from oculi.data.segmentation import read_segmentation
from tests.segmentation.helpers import write_label_map, write_layout


def _codes(report) -> dict[str, list]:
    out: dict[str, list] = {}
    for finding in report.findings:
        out.setdefault(finding.code, []).append(finding)
    return out


def test_clean_layout_passes(tmp_path):
    write_layout(tmp_path, "train", 3, seed=1)
    write_layout(tmp_path, "validation", 2, seed=2)
    report = check_path(tmp_path)
    assert report.ok and report.task == "segmentation" and set(report.counts) == {"train", "validation"}
    assert report.counts["train"] == {"0": 3, "1": 3, "2": 3}


def test_every_mask_finding_names_the_file(tmp_path):
    write_layout(tmp_path, "train", 6, seed=1)
    masks, images = tmp_path / "train_annotation", tmp_path / "train"
    (masks / "000.png").unlink()  # missing mask
    Image.new("P", (10, 10)).save(masks / "orphan.png")  # extra mask
    Image.new("L", (30, 20)).save(masks / "001.png")  # wrong size
    Image.fromarray(np.full((48, 64), 7, np.uint8), "L").save(masks / "002.png")  # value 7 outside 0–2
    Image.new("RGB", (64, 48), (200, 0, 0)).save(masks / "003.png")  # RGB mask
    report = check_path(tmp_path)
    codes = _codes(report)
    assert not report.ok
    assert codes["missing_mask"][0].path == str(images / "000.png")
    assert codes["extra_mask"][0].path == str(masks / "orphan.png") and codes["extra_mask"][0].level == "warning"
    assert codes["mask_size"][0].path == str(masks / "001.png") and "30×20" in codes["mask_size"][0].message
    # Without num_classes the values are the classes (7 makes 8); SageMaker's num_classes=3 makes 7 an error.
    assert "value_outside_label_map" not in codes and len(report.classes) == 8
    with_count = check_classification({"train": read_segmentation(tmp_path, num_classes=3)})
    outside = _codes(with_count)["value_outside_label_map"][0]
    assert outside.path == str(masks / "002.png") and "7" in outside.message and "num_classes" in outside.message
    rgb = codes["rgb_mask"][0]
    assert rgb.path == str(masks / "003.png") and "mode L or P" in rgb.message


def test_values_outside_a_map_label_map(tmp_path):
    write_layout(tmp_path, "train", 2, seed=1, encode={0: 5, 1: 0, 2: 9}.get)
    write_label_map(tmp_path, {"map": {"0": 5, "1": 0, "2": 2}})  # 9 is not mapped
    report = check_path(tmp_path)
    finding = _codes(report)["value_outside_label_map"][0]
    assert finding.path.endswith("000.png") and "label map does not name" in finding.message


def test_class_that_never_appears_is_a_warning(tmp_path):
    write_layout(tmp_path, "train", 2, seed=1, encode={0: 0, 1: 1, 2: 1}.get)
    write_label_map(tmp_path, {"map": {"0": 0, "1": 1, "2": 2}})  # class 2 is in the map, never in a mask
    report = check_path(tmp_path)
    empty = _codes(report)["empty_class"]
    assert report.ok and empty[0].level == "warning" and "'2' never appears in the train masks" in empty[0].message


def test_cli_check_and_convert(tmp_path):
    write_layout(tmp_path / "data", "train", 2, seed=1)
    runner = CliRunner()
    result = runner.invoke(app, ["data", "check", str(tmp_path / "data"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["task"] == "segmentation"
    result = runner.invoke(app, ["data", "convert", str(tmp_path / "data"), "--to", "voc", str(tmp_path / "voc"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    ledger = json.loads(result.output)
    assert ledger["unit"] == "pixels" and ledger["images_out"] == 2 and ledger["boxes_in"] == ledger["boxes_out"]
    assert (tmp_path / "voc" / "SegmentationClass" / "000.png").is_file()


def test_cli_check_num_classes_reports_values_outside(tmp_path):
    write_layout(tmp_path, "train", 3, seed=1)
    Image.fromarray(np.full((48, 64), 7, np.uint8), "L").save(tmp_path / "train_annotation" / "002.png")
    runner = CliRunner()
    assert runner.invoke(app, ["data", "check", str(tmp_path), "--json"]).exit_code == 0  # 7 read as a class
    result = runner.invoke(app, ["data", "check", str(tmp_path), "--num-classes", "3", "--json"])
    assert result.exit_code == 1, result.output
    findings = [f for f in json.loads(result.output)["findings"] if f["code"] == "value_outside_label_map"]
    assert findings and findings[0]["path"].endswith("002.png")
