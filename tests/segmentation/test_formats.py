"""Segmentation data formats on generated data: SageMaker's layout with each label-map form, manifests (index and
RGB masks), VOC and COCO, conversions between them, and the real VOC / COCO fixtures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from oculi.data.convert import convert
from oculi.data.formats.masks import load_mask
from oculi.data.segmentation import read_segmentation
from oculi.errors import DataError
from tests.segmentation.helpers import shapes, write_label_map, write_layout


def _masks(sample_set) -> dict[str, np.ndarray]:
    return {s.image.stem.split("-", 1)[-1]: load_mask(s.target) for s in sample_set.samples}


def _truth(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"{n:03d}": shapes((64, 48), rng)[1].astype(np.int64) for n in range(count)}


def test_sagemaker_layout_without_label_map(tmp_path):
    write_layout(tmp_path, "train", 4, seed=1)
    data = read_segmentation(tmp_path)
    assert data.format == "sagemaker-masks" and data.classes == ["0", "1", "2"] and not data.findings
    assert all(s.target.present == (0, 1, 2) for s in data.samples)
    for stem, mask in _masks(data).items():
        assert np.array_equal(mask, _truth(4, 1)[stem])


@pytest.mark.parametrize("label_map, encode", [
    ({"scale": "3"}, lambda c: c * 3 + 1),  # 1, 4, 7 floor-divide to 0, 1, 2
    ({"map": {"0": 5, "1": 0, "2": 2}}, {0: 5, 1: 0, 2: 2}.get),
])
def test_sagemaker_layout_label_maps(tmp_path, label_map, encode):
    write_layout(tmp_path, "train", 3, seed=1, encode=encode)
    write_layout(tmp_path, "validation", 2, seed=2, encode=encode)
    write_label_map(tmp_path, label_map)
    data = read_segmentation(tmp_path / "train", annotations=tmp_path / "train_annotation",
                             label_map=tmp_path / "label_map")
    assert data.classes == ["0", "1", "2"] and not data.findings
    for stem, mask in _masks(data).items():
        assert np.array_equal(mask, _truth(3, 1)[stem])
    validation = read_segmentation(tmp_path, split="validation", classes=data.classes)
    for stem, mask in _masks(validation).items():
        assert np.array_equal(mask, _truth(2, 2)[stem])


def test_label_map_errors_name_the_file(tmp_path):
    write_layout(tmp_path, "train", 1, seed=1)
    bad = tmp_path / "label_map" / "train_label_map.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"scale": "zero"}))
    with pytest.raises(DataError, match="train_label_map.json.*scale"):
        read_segmentation(tmp_path)


@pytest.mark.parametrize("to", ["manifest", "voc", "coco", "sagemaker-masks"])
def test_conversions_round_trip(tmp_path, to):
    write_layout(tmp_path / "src", "train", 3, seed=1)
    ledger = convert(tmp_path / "src", to, tmp_path / "out", task="segmentation")
    back = read_segmentation(tmp_path / "out" if to != "manifest" else tmp_path / "out" / "train.manifest",
                             format=to)
    truth = _truth(3, 1)
    assert sorted(_masks(back)) == sorted(truth)
    for stem, mask in _masks(back).items():
        assert np.array_equal(mask, truth[stem]), (to, stem)
    assert ledger.images_in == ledger.images_out == 3
    assert ledger.boxes_per_class_in == ledger.boxes_per_class_out or to == "coco"
    assert ledger.boxes_in == ledger.boxes_out == 3 * 48 * 64  # every pixel counted, in and out


def test_ground_truth_manifest_with_rgb_masks(tmp_path):
    rng = np.random.default_rng(3)
    image, mask = shapes((40, 30), rng)
    Image.fromarray(image).save(tmp_path / "a.png")
    colours = {0: (255, 255, 255), 1: (42, 207, 89), 2: (0, 0, 255)}
    rgb = np.zeros((*mask.shape, 3), dtype=np.uint8)
    for value, colour in colours.items():
        rgb[mask == value] = colour
    Image.fromarray(rgb, "RGB").save(tmp_path / "a-mask.png")
    colour_map = {str(k): {"class-name": name, "hex-color": "#%02x%02x%02x" % colours[k]}  # noqa: UP031
                  for k, name in ((0, "BACKGROUND"), (1, "buildings"), (2, "sky"))}
    line = {"source-ref": "s3://bucket/imgs/a.png", "city-ref": "s3://bucket/masks/a-mask.png",
            "city-ref-metadata": {"internal-color-map": colour_map, "type": "groundtruth/semantic-segmentation"}}
    (tmp_path / "train.manifest").write_text(json.dumps(line) + "\n")
    data = read_segmentation(tmp_path / "train.manifest",
                             image_roots={"s3://bucket/imgs": tmp_path, "s3://bucket/masks": tmp_path})
    assert data.format == "manifest" and data.classes == ["BACKGROUND", "buildings", "sky"]
    assert not [f for f in data.findings if f.level == "error"]
    assert np.array_equal(load_mask(data.samples[0].target), mask)


def test_real_voc_segmentation_fixture(shared_data):
    voc = shared_data / "format-fixtures" / "voc"
    data = read_segmentation(voc)
    assert data.format == "voc" and data.classes[0] == "background" and len(data.classes) == 21
    mask = load_mask(data.samples[0].target)
    assert set(np.unique(mask)) >= {0, 255} and not [f for f in data.findings if f.level == "error"]
    assert mask.shape == Image.open(data.samples[0].image).size[::-1]


def test_real_coco_polygons_rasterise(shared_data):
    coco = shared_data / "format-fixtures" / "annotations.json"
    data = read_segmentation(coco, format="coco", annotations=coco.parent / "images")
    assert data.format == "coco" and data.classes[0] == "background" and len(data.samples) >= 1
    mask = load_mask(data.samples[0].target)
    width, height = Image.open(data.samples[0].image).size
    assert mask.shape == (height, width) and len(np.unique(mask)) >= 2
