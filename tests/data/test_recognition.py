"""Formats recognised by content: CVAT XML, Label Studio JSON exports and VIA JSON are read as what they are (not as
VOC or as a manifest; see test_tool_formats.py), the variants oculi does not read (a Label Studio configuration,
JSON-MIN, CVAT for video) are named, and SageMaker's detection layout is not taken for segmentation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli.data import app
from oculi.data.channels import read_channel
from oculi.data.detection import read_detection
from oculi.data.formats.voc import read_voc
from oculi.errors import DataError
from tests.data.conftest import make_image
from tests.data.detection_helpers import make_detection_set, write_as

runner = CliRunner()

CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task><id>7</id><name>cars</name><size>2</size><mode>annotation</mode>
      <labels><label><name>car</name><color>#fa3253</color><type>rectangle</type><attributes/></label></labels>
    </task>
    <dumped>2026-11-30 09:12:44.123456+00:00</dumped>
  </meta>
  <image id="0" name="a.jpg" width="64" height="48">
    <box label="car" source="manual" occluded="0" xtl="1.50" ytl="2.00" xbr="30.00" ybr="40.00" z_order="0">
    </box>
  </image>
  <image id="1" name="b.jpg" width="64" height="48">
  </image>
</annotations>
"""

LABEL_STUDIO_CONFIG = """<View>
  <Image name="image" value="$image" zoom="true"/>
  <RectangleLabels name="label" toName="image">
    <Label value="car" background="#FFA39E"/>
    <Label value="person" background="#D4380D"/>
  </RectangleLabels>
</View>
"""

LABEL_STUDIO_EXPORT = [
    {"id": 1, "data": {"image": "/data/upload/1/a.jpg"}, "annotations": [
        {"id": 1, "completed_by": 1, "result": [
            {"id": "x1", "type": "rectanglelabels", "from_name": "label", "to_name": "image",
             "original_width": 64, "original_height": 48, "image_rotation": 0,
             "value": {"x": 2.3, "y": 4.1, "width": 44.5, "height": 79.2, "rotation": 0,
                       "rectanglelabels": ["car"]}}]}],
     "predictions": []},
]


def _via_entry(name: str, size: int) -> dict:
    return {"filename": name, "size": size, "file_attributes": {}, "regions": [
        {"shape_attributes": {"name": "rect", "x": 1, "y": 2, "width": 20, "height": 30},
         "region_attributes": {"label": "car"}}]}


VIA = {f"{name}{size}": _via_entry(name, size) for name, size in (("a.jpg", 2045), ("b.jpg", 1991))}
VIA_PROJECT = {"_via_settings": {"project": {"name": "cars"}}, "_via_img_metadata": VIA, "_via_attributes": {}}


@pytest.fixture
def cvat(tmp_path: Path) -> Path:
    """``cvat/annotations.xml`` + ``cvat/images/{a,b}.jpg``, as CVAT's "CVAT for images 1.1" export unzips."""
    root = tmp_path / "cvat"
    for i, name in enumerate(("a.jpg", "b.jpg")):
        make_image(root / "images" / name, seed=i, size=(64, 48))
    (root / "annotations.xml").write_text(CVAT)
    return root


def _refused(path: Path, *expected: str) -> None:
    """`oculi data check PATH` stops with a DataError naming the file and saying each of ``expected``."""
    result = runner.invoke(app, ["check", str(path)])
    assert isinstance(result.exception, DataError), result.output
    message = str(result.exception)
    for text in expected:
        assert text in message, message
    assert "not read this format" in message and "Supported annotation formats" in message


def test_cvat_xml_is_read_not_taken_for_voc(cvat):
    for path in (cvat / "annotations.xml", cvat):
        report = json.loads(runner.invoke(app, ["check", str(path), "--json"]).output)
        assert report["task"] == "detection" and report["num_images"] == {"train": 2}, report
    read = read_detection(cvat)
    assert read.format == "cvat" and [len(s.target) for s in read.samples] == [1, 0]
    converted = runner.invoke(app, ["convert", str(cvat), "--to", "coco", str(cvat.parent / "out")])
    assert converted.exit_code == 0, converted.output


def test_label_studio_config_and_export_are_named(tmp_path):
    config = tmp_path / "ls" / "config.xml"
    config.parent.mkdir()
    config.write_text(LABEL_STUDIO_CONFIG)
    _refused(config, "Label Studio labeling configuration", "not annotations")
    export = tmp_path / "ls" / "project-1-at-2026-11-30.json"
    export.write_text(json.dumps(LABEL_STUDIO_EXPORT))
    read = read_detection(export)  # read; its image is not here, which is what the findings say
    assert read.format == "labelstudio" and not len(read)
    assert [f.code for f in read.findings] == ["missing_image"] and "'/data/upload/1/a.jpg'" in read.findings[0].message


@pytest.mark.parametrize("content", [VIA, VIA_PROJECT], ids=["export", "project"])
def test_via_json_is_read_not_taken_for_a_manifest(tmp_path, content):
    via = tmp_path / "via_region_data.json"
    via.write_text(json.dumps(content))  # one line, as VIA writes it: it used to pass for a manifest
    make_image(tmp_path / "a.jpg", size=(64, 48))
    read = read_detection(via)
    assert read.format == "via" and read.classes == ["car"] and len(read) == 1
    with pytest.raises(DataError, match="no image-level class") as raised:
        read_channel(via)
    assert "possible label attributes" not in str(raised.value) and str(via) in str(raised.value)
    pretty = tmp_path / "pretty" / "via.json"
    pretty.parent.mkdir()
    pretty.write_text(json.dumps(content, indent=2))
    make_image(tmp_path / "pretty" / "a.jpg")
    report = json.loads(runner.invoke(app, ["check", str(pretty.parent), "--json"]).output)
    assert report["task"] == "detection" and report["num_images"] == {"train": 1}, report


def test_a_stray_cvat_file_among_voc_annotations_is_ignored_with_a_warning(tmp_path, cvat):
    voc = write_as(make_detection_set(tmp_path / "src"), "voc", tmp_path / "voc")["path"]
    shutil.copy(cvat / "annotations.xml", voc / "Annotations" / "annotations.xml")
    read = read_voc(voc)
    assert len(read) == 4
    stray = [f for f in read.findings if f.path == str(voc / "Annotations" / "annotations.xml")]
    assert [(f.level, f.code) for f in stray] == [("warning", "not_voc")] and "CVAT" in stray[0].message


def test_sagemaker_detection_layout_is_checked_as_detection(tmp_path):
    root = tmp_path / "sm"
    write_as(make_detection_set(tmp_path / "src"), "sagemaker-json", root)
    result = runner.invoke(app, ["check", str(root), "--json"])
    report = json.loads(result.output)
    assert report["task"] == "detection", report
    assert not [f for f in report["findings"] if "mask" in f["code"]]
    assert sum(report["counts"]["train"].values()) == 6


def test_sagemaker_detection_validation_split_is_checked_and_never_dropped_silently(tmp_path):
    from oculi.data.convert import convert
    from oculi.data.formats.sagemaker_json import write_sagemaker_json

    root = tmp_path / "sm"
    generated = make_detection_set(tmp_path / "src")
    write_sagemaker_json(generated, root / "train", root / "train_annotation")
    write_sagemaker_json(generated.with_samples(generated.samples[:2]), root / "validation",
                         root / "validation_annotation")
    report = json.loads(runner.invoke(app, ["check", str(root), "--json"]).output)
    assert report["num_images"] == {"train": 4, "validation": 2} and report["task"] == "detection"
    ledger = convert(root, "coco", tmp_path / "out")
    assert ledger.images_in == 4
    note = [c for c in ledger.changes if c.code == "split_not_read"]
    assert note and "validation_annotation" in note[0].message


def test_voc_still_recognised(tmp_path):
    voc = write_as(make_detection_set(tmp_path / "src"), "voc", tmp_path / "voc")["path"]
    assert len(read_detection(voc)) == 4 and read_detection(voc).format == "voc"


def test_the_real_via_fixture_is_checked(shared_data):
    via = shared_data / "format-fixtures" / "via"
    for path in (via / "via_bbox.json", via):
        result = runner.invoke(app, ["check", str(path), "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["task"] == "detection" and report["num_images"] == {"train": 2}


def test_label_studio_json_min_and_a_single_voc_file_are_named(tmp_path):
    export = tmp_path / "min.json"
    export.write_text(json.dumps([{"image": "/data/upload/1/a.jpg", "id": 1, "annotator": 1, "annotation_id": 3,
                                   "label": [{"x": 2.3, "y": 4.1, "width": 44.5, "height": 79.2,
                                              "rectanglelabels": ["car"]}]}]))
    _refused(export, "Label Studio JSON-MIN export")
    voc = write_as(make_detection_set(tmp_path / "src"), "voc", tmp_path / "voc")["path"]
    one = voc / "Annotations" / "a.xml"
    for read in (lambda: read_detection(one), lambda: read_channel(one)):
        with pytest.raises(DataError, match=r"a\.xml: one Pascal VOC annotation.*pass the folder"):
            read()


def test_cvat_for_video_is_named_from_the_start_of_the_file(tmp_path):
    from oculi.data.formats.foreign import describe_foreign

    video = tmp_path / "annotations.xml"
    tracks = "".join(f'<track id="{i}" label="car"><box frame="0" xtl="1" ytl="2" xbr="3" ybr="4" outside="0" '
                     'occluded="0" keyframe="1"/></track>' for i in range(3))
    video.write_text(f"<annotations><version>1.1</version><meta/>{tracks}</annotations>")
    assert "a CVAT for video XML export (root <annotations>, version 1.1)" in describe_foreign(video)
    broken = tmp_path / "broken.xml"
    broken.write_bytes(b"\xff\xd8\xff\xe0 a JPEG named .xml")
    assert describe_foreign(broken) is None


def test_class_folders_beside_an_unrelated_via_file_still_read(class_folders):
    (class_folders / "notes-via.json").write_text(json.dumps(VIA, indent=2))
    read = read_channel(class_folders)
    assert read.classes == ["cat", "dog", "fish"] and len(read) == 11
