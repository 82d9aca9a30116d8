"""Detection's mosaic augmentation: four augmented samples joined at a point, boxes following their pixels."""

from __future__ import annotations

import pytest
import torch

from oculi.data.dataset import DetectionDataset
from oculi.data.detection import read_detection
from oculi.data.transforms import detection_train, mosaic
from oculi.engine.training import train
from oculi.errors import ConfigError
from tests.test_detection_training import TINY_SSD, _shapes_coco

COLOURS = ((200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0))


def _tile(colour: tuple[int, int, int], boxes: list[list[float]], label: int):
    image = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).repeat(1, 100, 100)
    return image, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.full((len(boxes),), label)


def test_mosaic_places_four_tiles_and_moves_their_boxes():
    tiles = [_tile(COLOURS[0], [[60, 60, 90, 90]], 0),  # top-left tile: its bottom-right 70×40 shows
             _tile(COLOURS[1], [[10, 70, 40, 95], [50, 0, 60, 5]], 1),  # top-right: second box is above the window
             _tile(COLOURS[2], [[20, 20, 35, 80]], 2),  # bottom-left: box cut to a 5 px wide sliver (22 %)
             _tile(COLOURS[3], [], 3)]  # bottom-right: no boxes
    image, boxes, labels = mosaic(tiles, 100, (70, 40))
    assert image.shape == (3, 100, 100) and image.dtype == torch.uint8
    for (y, x), colour in zip(((10, 10), (10, 90), (90, 10), (90, 90)), COLOURS, strict=True):
        assert tuple(image[:, y, x].tolist()) == colour
    # top-left tile's (60,60,90,90) shifted by (-30, -60): x 30–60, y 0–30 (its top clipped at 0, 30 of 30 rows left)
    # top-right tile's (10,70,40,95) shifted by (70, -60): x 80–100 (clipped), y 10–35
    assert labels.tolist() == [0, 1]
    assert boxes.tolist() == [[30, 0, 60, 30], [80, 10, 100, 35]]


def test_mosaic_drops_boxes_left_with_too_little_of_themselves():
    # a 40×40 box of which a 10×40 strip stays visible (25 %) is kept; a 9×40 strip is dropped
    outside = mosaic([_tile(COLOURS[0], [[0, 0, 40, 40]], 0), *[_tile(c, [], 1) for c in COLOURS[1:]]], 100,
                     (50, 50))
    tile = _tile(COLOURS[0], [[60, 60, 100, 100]], 0)
    edge = mosaic([tile, *[_tile(c, [], 1) for c in COLOURS[1:]]], 100, (10, 100))
    dropped = mosaic([tile, *[_tile(c, [], 1) for c in COLOURS[1:]]], 100, (9, 100))
    assert len(outside[2]) == 0  # (0,0,40,40) moved by (−50,−50) lies wholly outside the window
    assert edge[1].tolist() == [[0, 60, 10, 100]]
    assert len(dropped[2]) == 0


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosaic-shapes")
    return {"train": _shapes_coco(root / "train", 24, 3), "validation": _shapes_coco(root / "val", 8, 4)}


def test_mosaic_dataset_boxes_sit_on_their_objects(shapes):
    sample_set = read_detection(shapes["train"])
    dataset = DetectionDataset(sample_set.samples, detection_train(128, (0, 0, 0)), min_side=128, mosaic=1.0)
    red_boxes, on_red = 0, 0
    for seed in range(12):
        torch.manual_seed(seed)
        image, target = dataset[seed % len(dataset)]
        assert image.shape == (3, 128, 128)
        boxes, labels = target["boxes"], target["labels"]
        assert len(boxes) == len(labels) and (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 128).all()
        for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels.tolist(), strict=True):
            if label == 0:  # class "box": a filled red rectangle, so the box's centre is red (after colour jitter)
                r, g, b = image[:, int((y1 + y2) / 2), int((x1 + x2) / 2)].tolist()
                red_boxes += 1
                on_red += r > g + 40 and r > b + 40
    # a disc drawn over a rectangle can cover its centre: allow one miss in ten
    assert red_boxes >= 10 and on_red >= 0.9 * red_boxes, (on_red, red_boxes)


def test_mosaic_trains_and_is_checked(shapes, tmp_path):
    result = train("object-detection", shapes, {**TINY_SSD, "mosaic": "0.5"}, output=tmp_path / "m",
                   progress=False, echo=lambda *_: None)
    assert result.hyperparameters["mosaic"] == 0.5
    with pytest.raises(ConfigError, match="mosaic"):
        train("object-detection", shapes, {**TINY_SSD, "mosaic": "1.5"}, output=tmp_path / "bad", progress=False,
              echo=lambda *_: None)
