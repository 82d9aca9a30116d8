"""Label Studio, CVAT for images 1.1, labelme and VIA files: read as each task, converted with a ledger, written
back, trained on; files written here the way those tools write them (from their documented formats), plus the VIA
sample in ../shared/data/format-fixtures."""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oculi.cli.data import app
from oculi.data.channels import read_channel
from oculi.data.checks import check_path
from oculi.data.convert import convert
from oculi.data.detection import read_detection
from oculi.data.formats.labelstudio import decode_rle, encode_rle
from oculi.data.formats.masks import load_mask
from oculi.data.formats.tools import prelabels
from oculi.data.segmentation import read_segmentation
from oculi.data.tasks import recognise
from oculi.errors import DataError
from oculi.types import BoxTarget
from tests.data.conftest import make_image

runner = CliRunner()


# --- Label Studio's brush RLE, checked against the reference coder ----------------------------------------------

def reference_encode(arr: np.ndarray) -> list[int]:
    """label-studio-converter's ``brush.encode_rle`` as it is written there: a bit string built run by run."""
    out = f"{len(arr):032b}" + f"{8 - 1:05b}" + "".join(f"{x - 1:04b}" for x in (3, 4, 8, 16))
    for value, group in groupby(arr.tolist()):
        length = len(list(group))
        if length == 1:
            out += "0" + "00" + "000" + f"{value:08b}"
        elif length <= 8:
            out += "1" + "00" + f"{length - 1:03b}" + f"{value:08b}"
        elif length <= 16:
            out += "1" + "01" + f"{length - 1:04b}" + f"{value:08b}"
        elif length <= 256:
            out += "1" + "10" + f"{length - 1:08b}" + f"{value:08b}"
        else:
            while length > 2 ** 16:
                out += "1" + "11" + f"{2 ** 16 - 1:016b}" + f"{value:08b}"
                length -= 2 ** 16
            out += "1" + "11" + f"{length - 1:016b}" + f"{value:08b}"
    out += "0" * (8 - len(out) % 8)
    return [int(out[i:i + 8], 2) for i in range(0, len(out), 8)]


def reference_decode(rle: list[int]) -> np.ndarray:
    """label-studio-converter's ``brush.decode_rle``: read the bit string field by field."""
    bits = "".join(f"{b:08b}" for b in rle)
    position = 0

    def read(size: int) -> int:
        nonlocal position
        position += size
        return int(bits[position - size:position], 2)

    num, word = read(32), read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, dtype=np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = i + 1 + read(sizes[read(2)])
        if repeat:
            out[i:j] = read(word)
            i = j
        else:
            while i < j:
                out[i] = read(word)
                i += 1
    return out


def brush_of(mask: np.ndarray) -> list[int]:
    """A Label Studio brush ``rle`` for a boolean mask, as label-studio-converter's ``mask2rle`` makes it."""
    return reference_encode(np.repeat(mask.ravel().astype(np.uint8) * 255, 4))


def test_brush_rle_matches_the_reference_coder_byte_for_byte() -> None:
    rng = np.random.default_rng(3)
    for values in (np.repeat((rng.random((40, 30)) > 0.8).astype(np.uint8).ravel() * 255, 4),
                   np.concatenate([np.zeros(70_000, np.uint8), np.full(5, 9, np.uint8), rng.integers(0, 256, 50,
                                                                                                    dtype=np.uint8)]),
                   np.array([7], np.uint8)):
        ours = encode_rle(values)
        assert ours == reference_encode(values)
        assert np.array_equal(decode_rle(ours), values)
        assert np.array_equal(reference_decode(ours), values)


def test_a_truncated_brush_code_is_an_error() -> None:
    code = encode_rle(np.arange(40, dtype=np.uint8))
    with pytest.raises(ValueError, match="ends early"):
        decode_rle(code[: len(code) // 2])


# --- files as the tools write them -------------------------------------------------------------------------------

def ls_result(kind: str, value: dict, size: tuple[int, int], n: int) -> dict:
    return {"id": f"r{n}", "type": kind, "from_name": "label", "to_name": "image", "original_width": size[0],
            "original_height": size[1], "image_rotation": 0, "value": value}


@pytest.fixture
def labelstudio(tmp_path: Path) -> dict:
    """A Label Studio 1.x JSON export of three uploaded images: boxes + a polygon, a brush mask, and one task
    nobody annotated. Image 80×60 / 40×40."""
    root = tmp_path / "ls"
    make_image(root / "images" / "bee1.png", seed=1, size=(80, 60))
    make_image(root / "images" / "bee2.png", seed=2, size=(40, 40))
    make_image(root / "images" / "bee3.png", seed=3, size=(40, 40))
    brush = np.zeros((40, 40), bool)
    brush[10:20, 5:30] = True  # 250 px
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/1/0a1b2c3d-bee1.png"}, "annotations": [
            {"id": 11, "completed_by": 1, "was_cancelled": False, "result": [
                ls_result("rectanglelabels", {"x": 10, "y": 20, "width": 50, "height": 25, "rotation": 0,
                                              "rectanglelabels": ["bee"]}, (80, 60), 1),
                ls_result("polygonlabels", {"points": [[50, 50], [75, 50], [75, 100]], "closed": True,
                                            "polygonlabels": ["wasp"]}, (80, 60), 2)]}],
         "predictions": [], "file_upload": "0a1b2c3d-bee1.png"},
        {"id": 2, "data": {"image": "/data/upload/1/9f8e7d6c-bee2.png"}, "annotations": [
            {"id": 12, "was_cancelled": False, "result": [
                ls_result("brushlabels", {"format": "rle", "rle": brush_of(brush), "brushlabels": ["bee"]}, (40, 40),
                          3)]}]},
        {"id": 3, "data": {"image": "/data/upload/1/11112222-bee3.png"}, "annotations": []},
    ]
    path = root / "project-1-at-2024-05-01.json"
    path.write_text(json.dumps(tasks, indent=2))
    return {"path": path, "images": root / "images"}


def test_labelstudio_as_detection_boxes_in_pixels_and_the_ledger(labelstudio: dict, tmp_path: Path) -> None:
    read = read_detection(labelstudio["path"])
    by_name = {s.image.name: s.target for s in read.samples}
    assert sorted(by_name) == ["bee1.png", "bee2.png"]  # bee3 has no annotation
    bee1 = by_name["bee1.png"]
    named = sorted((read.classes[c], tuple(round(v, 6) for v in b)) for b, c in zip(bee1.boxes, bee1.labels,
                                                                                      strict=True))
    assert named == [("bee", (8.0, 12.0, 48.0, 27.0)), ("wasp", (40.0, 30.0, 60.0, 60.0))]
    assert by_name["bee2.png"].boxes == ((5.0, 10.0, 30.0, 20.0),)  # the brush's bounding box
    ledger = convert(labelstudio["path"], "coco", tmp_path / "coco", task="detection")  # brushes: auto = masks
    assert (ledger.images_in, ledger.images_out, ledger.boxes_in, ledger.boxes_out) == (2, 2, 3, 3)
    assert ledger.boxes_per_class_out == {"bee": 2, "wasp": 1}
    codes = {c.code: c.message for c in ledger.changes}
    assert "1 polygon(s) read as their bounding boxes" in codes["polygon_as_box"]
    assert "1 mask(s) read as their bounding boxes" in codes["mask_as_box"]
    assert codes["unlabeled"].startswith("1 image(s) have no annotation")


def test_labelstudio_brushes_are_segmentation_and_round_trip(labelstudio: dict, tmp_path: Path) -> None:
    assert recognise(labelstudio["path"]).name == "segmentation"  # it holds a brush mask
    read = read_segmentation(labelstudio["path"])
    assert read.classes == ["background", "bee", "wasp"]
    masks = {s.image.name: load_mask(s.target) for s in read.samples}
    assert int((masks["bee2.png"] == 1).sum()) == 250
    assert int((masks["bee1.png"] == 1).sum()) == 40 * 15  # the rectangle, painted
    assert int((masks["bee1.png"] == 2).sum()) > 0
    there = convert(labelstudio["path"], "cvat", tmp_path / "cvat")
    assert there.boxes_per_class_out == there.boxes_per_class_in
    assert {"polygon_as_mask", "box_as_mask"} <= {c.code for c in there.changes}
    back = convert(Path(there.target), "labelstudio", tmp_path / "ls-back")
    assert back.boxes_per_class_out == there.boxes_per_class_in
    again = {s.image.name: load_mask(s.target) for s in read_segmentation(Path(back.target)).samples}
    for name, mask in masks.items():
        assert np.array_equal(again[name], mask), name


def test_labelstudio_choices_are_classification_and_convert_to_cvat_tags(tmp_path: Path) -> None:
    root = tmp_path / "choices"
    tasks = []
    for i, labels in enumerate([["ant"], ["bee"], ["bee"], ["ant"], ["bee"]]):
        make_image(root / f"{i}.jpg", seed=i)
        tasks.append({"id": i + 1, "data": {"image": f"/data/local-files/?d=photos/{i}.jpg"}, "annotations": [
            {"id": i + 1, "result": [{"id": "c", "type": "choices", "from_name": "choice", "to_name": "image",
                                      "value": {"choices": labels}}]}]})
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    assert recognise(path).name == "classification"
    read = read_channel(path)
    assert read.classes == ["ant", "bee"] and [s.target for s in read.samples] == [0, 1, 1, 0, 1]
    ledger = convert(path, "cvat", tmp_path / "cvat")
    assert ledger.boxes_per_class_in == ledger.boxes_per_class_out == {"ant": 2, "bee": 3}
    assert ledger.images_out == 5 and ledger.unit == "labels"
    xml = Path(ledger.target).read_text()
    assert xml.count('<tag label="bee"') == 3
    report = check_path(path, workers=1, progress=False)
    assert report.ok


def test_class_folders_to_labelstudio_and_multi_label_tags_round_trip(class_folders: Path, tmp_path: Path) -> None:
    ledger = convert(class_folders, "labelstudio", tmp_path / "ls")
    assert ledger.source_format == "folders" and ledger.boxes_per_class_out == ledger.boxes_per_class_in
    assert (ledger.images_in, ledger.images_out) == (11, 11)
    multi = tmp_path / "multi.xml"
    images = sorted(class_folders.glob("*/*.*g"))[:3]
    tags = "".join(f'<image id="{i}" name="{p}" width="24" height="16">' + "".join(
        f'<tag label="{c}" source="manual"/>' for c in labels) + "</image>"
        for i, (p, labels) in enumerate(zip(images, [["sky", "sea"], ["sea"], ["sky"]], strict=True)))
    multi.write_text(f"<annotations><version>1.1</version>{tags}</annotations>")
    read = read_channel(multi)
    assert read.multi_label and read.classes == ["sea", "sky"]
    assert [s.target for s in read.samples] == [(1, 0), (0,), (1,)]
    back = convert(multi, "labelstudio", tmp_path / "multi-ls")
    assert back.boxes_per_class_out == {"sea": 2, "sky": 2}
    assert [s.target for s in read_channel(Path(back.target)).samples] == [(1, 0), (0,), (1,)]


# --- CVAT -----------------------------------------------------------------------------------------------------

CVAT_XML = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta>
    <task><id>7</id><name>garden</name><size>2</size><mode>annotation</mode>
      <labels>
        <label><name>flower</name><color>#fa3253</color><type>any</type><attributes></attributes></label>
        <label><name>bee</name><color>#33ddff</color><type>any</type><attributes></attributes></label>
      </labels>
    </task>
    <dumped>2024-05-01 10:00:00.000000+00:00</dumped>
  </meta>
  <image id="0" name="garden/a.png" width="64" height="48">
    <tag label="flower" source="manual"></tag>
    <box label="bee" source="manual" occluded="0" xtl="4.50" ytl="6.00" xbr="20.00" ybr="30.25" z_order="0"></box>
    <polygon label="flower" source="manual" occluded="0" points="30.00,10.00;60.00,10.00;60.00,40.00;30.00,40.00"
      z_order="0"></polygon>
  </image>
  <image id="1" name="garden/b.png" width="32" height="32">
    <mask label="bee" source="manual" occluded="0" rle="2, 3, 1, 3, 1, 3, 3" left="10" top="12" width="4"
      height="4" z_order="1"></mask>
    <points label="bee" source="manual" occluded="0" points="1.00,1.00" z_order="0"></points>
  </image>
</annotations>
"""


@pytest.fixture
def cvat(tmp_path: Path) -> Path:
    """A CVAT for images 1.1 export: ``annotations.xml`` + ``images/garden/…`` as CVAT's zip unpacks."""
    root = tmp_path / "cvat-export"
    make_image(root / "images" / "garden" / "a.png", seed=5, size=(64, 48))
    make_image(root / "images" / "garden" / "b.png", seed=6, size=(32, 32))
    (root / "annotations.xml").write_text(CVAT_XML)
    return root


def test_cvat_boxes_polygons_masks_per_task(cvat: Path, tmp_path: Path) -> None:
    detection = read_detection(cvat)  # the export folder: annotations.xml found in it
    assert detection.classes == ["flower", "bee"]  # the order the task declares
    by_name = {s.image.name: s.target for s in detection.samples}
    assert by_name["a.png"].boxes == ((4.5, 6.0, 20.0, 30.25), (30.0, 10.0, 60.0, 40.0))
    assert by_name["b.png"].boxes == ((10.0, 12.0, 14.0, 16.0),)  # the mask's bounding box: columns 10–13
    codes = {f.code for f in detection.findings}
    assert {"polygon_as_box", "mask_as_box", "tags_ignored", "unsupported_shape"} <= codes
    segmentation = read_segmentation(cvat / "annotations.xml", format="cvat")
    masks = {s.image.name: load_mask(s.target) for s in segmentation.samples}
    assert segmentation.classes == ["background", "flower", "bee"]
    assert int((masks["b.png"] == 2).sum()) == 9  # 3 + 3 + 3 ones in the 4×4 rectangle
    assert masks["b.png"][12, 12] == 2 and masks["b.png"][12, 10] == 0
    assert int((masks["a.png"] == 1).sum()) == 30 * 30
    classification = read_channel(cvat)
    assert classification.classes == ["flower"] and len(classification) == 1


def test_cvat_writes_what_it_reads(cvat: Path, tmp_path: Path) -> None:
    assert recognise(cvat).name == "segmentation"  # it holds a <mask>
    ledger = convert(cvat, "cvat", tmp_path / "again", task="detection")
    assert (ledger.boxes_in, ledger.boxes_out) == (3, 3)
    back = read_detection(Path(ledger.target))
    assert back.classes == ["flower", "bee"]
    assert sorted(s.target.boxes for s in back.samples) == sorted(s.target.boxes for s in read_detection(cvat).samples)


# --- labelme ----------------------------------------------------------------------------------------------------

def labelme_file(path: Path, image: str, size: tuple[int, int], shapes: list[dict]) -> None:
    path.write_text(json.dumps({"version": "5.4.1", "flags": {}, "shapes": shapes, "imagePath": image,
                                "imageData": None, "imageHeight": size[1], "imageWidth": size[0]}, indent=2))


def labelme_shape(label: str, points: list, kind: str) -> dict:
    return {"label": label, "points": points, "group_id": None, "description": "", "shape_type": kind, "flags": {},
            "mask": None}


@pytest.fixture
def labelme(tmp_path: Path) -> Path:
    root = tmp_path / "labelme"
    make_image(root / "one.jpg", seed=7, size=(50, 40))
    make_image(root / "two.jpg", seed=8, size=(50, 40))
    labelme_file(root / "one.json", "one.jpg", (50, 40), [
        labelme_shape("cat", [[30, 20], [5, 4]], "rectangle"),
        labelme_shape("dog", [[10, 10], [40, 10], [40, 30]], "polygon"),
        labelme_shape("dog", [[10, 10], [12, 12]], "circle")])
    labelme_file(root / "two.json", "two.jpg", (50, 40), [labelme_shape("cat", [[0, 0], [10, 0], [10, 10],
                                                                                [0, 10]], "polygon")])
    return root


def test_labelme_folder_reads_and_converts(labelme: Path, tmp_path: Path) -> None:
    assert recognise(labelme).name == "detection"
    ledger = convert(labelme, "labelstudio", tmp_path / "ls")
    assert ledger.source_format == "labelme"
    assert (ledger.images_in, ledger.boxes_in, ledger.boxes_out) == (2, 3, 3)
    assert ledger.boxes_per_class_out == {"cat": 2, "dog": 1}
    warnings = [c.message for c in ledger.changes if c.code == "unsupported_shape"]
    assert warnings and warnings[0].startswith("1 circle shape(s)")
    first = {s.image.name: s.target for s in read_detection(Path(ledger.target)).samples}["one.jpg"]
    assert sorted(first.boxes) == [(5.0, 4.0, 30.0, 20.0), (10.0, 10.0, 40.0, 30.0)]
    segmentation = read_segmentation(labelme)
    assert segmentation.classes == ["background", "cat", "dog"]
    two = {s.image.name: load_mask(s.target) for s in segmentation.samples}["two.jpg"]
    assert 90 <= int((two == 1).sum()) <= 121  # the 10×10 square, with the rasteriser's edge rule


# --- VIA --------------------------------------------------------------------------------------------------------

def test_via_fixture_from_the_tool(shared_data: Path, tmp_path: Path) -> None:
    path = shared_data / "format-fixtures" / "via" / "via_bbox.json"
    ledger = convert(path, "cvat", tmp_path / "cvat")
    assert (ledger.images_in, ledger.images_out, ledger.boxes_in, ledger.boxes_out) == (2, 2, 10, 10)
    assert ledger.boxes_per_class_in == {"###": 2, "c": 2, "n": 2, "o": 2, "z": 2}
    messages = {c.code: c.message for c in ledger.changes}
    assert "'label' region attribute" in messages["class_attribute"]
    assert messages["polygon_as_box"].startswith("9 polygon(s)")


def test_via1_balloon_regions_take_the_default_class(tmp_path: Path) -> None:
    """The Mask R-CNN balloon tutorial's via_region_data.json: VIA 1.x, regions keyed "0", "1", no attributes."""
    root = tmp_path / "balloon"
    make_image(root / "34020010494_e5cb88e1c4_k.jpg", seed=9, size=(60, 40))
    data = {"34020010494_e5cb88e1c4_k.jpg1115004": {
        "fileref": "", "size": 1115004, "filename": "34020010494_e5cb88e1c4_k.jpg", "base64_img_data": "",
        "file_attributes": {}, "regions": {
            "0": {"shape_attributes": {"name": "polygon", "all_points_x": [5, 25, 25, 5],
                                       "all_points_y": [5, 5, 30, 30]}, "region_attributes": {}},
            "1": {"shape_attributes": {"name": "polygon", "all_points_x": [30, 55, 40],
                                       "all_points_y": [2, 2, 20]}, "region_attributes": {}}}}}
    path = root / "via_region_data.json"
    path.write_text(json.dumps(data))
    result = runner.invoke(app, ["convert", str(path), "--to", "coco", str(tmp_path / "coco"), "--default-class",
                                 "balloon", "--json"])
    assert result.exit_code == 0, result.output
    ledger = json.loads(result.output)
    assert ledger["boxes_per_class_out"] == {"balloon": 2}
    defaulted = [c["message"] for c in ledger["changes"] if c["code"] == "default_class"]
    assert len(defaulted) == 1
    assert defaulted[0].startswith("2 region(s) have no class attribute; they are read as class 'balloon'")
    masks = read_segmentation(path, default_class="balloon")
    assert masks.classes == ["background", "balloon"]


def test_via2_project_with_dropdown_attribute(tmp_path: Path) -> None:
    root = tmp_path / "via2"
    make_image(root / "img" / "a.jpg", seed=10, size=(40, 30))
    regions = [{"shape_attributes": {"name": "rect", "x": 2, "y": 3, "width": 10, "height": 12},
                "region_attributes": {"species": {"bee": True}}},
               {"shape_attributes": {"name": "polygon", "all_points_x": [20, 30, 25], "all_points_y": [5, 5, 15]},
                "region_attributes": {"species": {"wasp": True}}},
               {"shape_attributes": {"name": "circle", "cx": 5, "cy": 5, "r": 2}, "region_attributes": {}}]
    project = {"_via_settings": {"core": {"default_filepath": "img/"}},
               "_via_img_metadata": {"a.jpg1234": {"filename": "a.jpg", "size": 1234, "regions": regions,
                                                   "file_attributes": {}}},
               "_via_attributes": {"region": {"species": {"type": "checkbox", "options": {"bee": "", "wasp": ""}}},
                                   "file": {}}}
    path = root / "project.json"
    path.write_text(json.dumps(project))
    read = read_detection(path)
    assert read.classes == ["bee", "wasp"]
    assert read.samples[0].target.boxes == ((2.0, 3.0, 12.0, 15.0), (20.0, 5.0, 30.0, 15.0))
    assert "unsupported_shape" in {f.code for f in read.findings}
    for region, value in zip(regions, ("large", ""), strict=False):
        region["region_attributes"]["size"] = value
    path.write_text(json.dumps(project))
    by_size = read_detection(path, label_attribute="size")  # another attribute holds the class
    assert by_size.classes == ["large", "object"]
    assert "1 region(s) have no class attribute" in {f.code: f.message for f in by_size.findings}["default_class"]


# --- corrupt files ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "text", "expected"), [
    ("bad.json", '[{"id": 7, "data": {"image": "a.png"}, "annotations": [{"result": [{"type": "rectanglelabels", '
                 '"original_width": 10, "original_height": 10, "value": {"x": "left", "y": 1, "width": 2, '
                 '"height": 2, "rectanglelabels": ["bee"]}}]}]}]', r"\(task 7\) result 1: x is 'left'"),
    ("brush.json", '[{"id": 3, "data": {"image": "a.png"}, "annotations": [{"result": [{"type": "brushlabels", '
                   '"original_width": 10, "original_height": 10, "value": {"format": "rle", "rle": [0, 0, 1], '
                   '"brushlabels": ["bee"]}}]}]}]', r"\(task 3\) result 1: the brush RLE cannot be decoded"),
    ("truncated.json", '[{"id": 1, "data": {"image": "a.png"}, "annotations": [', r"not valid JSON .* line 1"),
    ("cvat.xml", '<annotations><version>1.1</version><image id="4" name="a.png" width="9" height="9">'
                 '<polygon label="x" points="1,2;3"/></image></annotations>', r"image 4: a.png\) <polygon> 1"),
    ("via.json", '{"a.png12": {"filename": "a.png", "size": 12, "regions": [{"shape_attributes": {"name": '
                 '"polygon", "all_points_x": [1, 2, 3], "all_points_y": [1, 2]}, "region_attributes": {}}]}}',
     r"entry 'a.png12'\) region 1: a polygon needs"),
])
def test_corrupt_files_name_the_file_and_entry(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    fmt = {"bad.json": "labelstudio", "brush.json": "labelstudio", "truncated.json": "labelstudio",
           "cvat.xml": "cvat", "via.json": "via"}[name]
    with pytest.raises(DataError, match=expected) as raised:
        read_detection(path, format=fmt)
    assert str(path) in str(raised.value)
    with pytest.raises(DataError, match=expected):  # recognised as what it is, so the message is the same
        read_detection(path)


# --- pre-labels for a labeling job ------------------------------------------------------------------------------

def test_prelabels_index_into_the_job_classes(cvat: Path) -> None:
    pairs = dict(prelabels(cvat / "annotations.xml", "detection", ["bee", "moth", "flower"]))
    a = next(t for p, t in pairs.items() if p.name == "a.png")
    assert isinstance(a, BoxTarget) and sorted(a.labels) == [0, 2]
    tags = prelabels(cvat / "annotations.xml", "classification", ["bee", "flower"])
    assert [(p.name, t) for p, t in tags] == [("a.png", 1)]


# --- training on them -------------------------------------------------------------------------------------------

def shapes_export(root: Path, count: int, seed: int) -> Path:
    """``count`` 96×72 PNGs with one red rectangle (class ``box``) and a Label Studio export of it in percent."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    tasks = []
    root.mkdir(parents=True)
    for i in range(count):
        canvas = rng.integers(0, 60, (72, 96, 3)).astype(np.uint8)
        w, h = (int(v) for v in rng.integers(20, 40, 2))
        x, y = int(rng.integers(0, 96 - w)), int(rng.integers(0, 72 - h))
        canvas[y:y + h, x:x + w] = (230, 60, 60)
        Image.fromarray(canvas).save(root / f"{i}.png")
        value = {"x": 100 * x / 96, "y": 100 * y / 72, "width": 100 * w / 96, "height": 100 * h / 72,
                 "rotation": 0, "rectanglelabels": ["box"]}
        tasks.append({"id": i, "data": {"image": f"/data/upload/3/{i:08x}-{i}.png"},
                      "annotations": [{"id": i, "result": [ls_result("rectanglelabels", value, (96, 72), i)]}]})
    path = root / "export.json"
    path.write_text(json.dumps(tasks))
    return path


def test_train_reads_a_labelstudio_export_as_its_channel(tmp_path: Path) -> None:
    from oculi.artifacts import load_bundle
    from oculi.engine.training import train

    channels = {"train": shapes_export(tmp_path / "train", 12, 1), "validation": shapes_export(tmp_path / "val", 4, 2)}
    result = train("object-detection", channels, {"image_shape": "96", "mini_batch_size": "4", "num_workers": "0",
                                                  "epochs": "1"}, output=tmp_path / "model", progress=False,
                   echo=lambda _: None)
    assert result.classes == ["box"]
    assert load_bundle(result.model_dir).classes == ["box"]
    assert "validation:mAP" in result.metrics
