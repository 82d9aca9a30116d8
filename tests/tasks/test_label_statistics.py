"""The task contract's ``label_statistics`` hook: detection counts box sizes, segmentation mask areas, into the
bins the console's dataset page draws; classification has none (its class counts are the data check's)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from oculi.tasks import get_task
from oculi.tasks.base import histogram
from oculi.types import BoxTarget, MaskTarget, Sample, SampleSet


def test_histogram_bins_values_between_edges_with_an_open_last_bin():
    h = histogram("x", "X", "px", [0, 7.9, 8, 40, 1000], [0, 8, 32])
    assert h["counts"] == {"0–8": 2, "8–32": 1, "≥ 32": 2}
    assert h["bins"] == ["0–8", "8–32", "≥ 32"]  # the order drawn
    assert histogram("x", "X", "px", [], [0, 8])["counts"] == {"0–8": 0, "≥ 8": 0}


def test_detection_counts_box_sizes_as_the_root_of_their_area():
    boxes = BoxTarget(boxes=((0, 0, 4, 4), (10, 10, 30, 30), (0, 0, 100, 64), (5, 5, 5, 9)), labels=(0, 0, 1, 1))
    sample_set = SampleSet([Sample(image=__file__, target=boxes), Sample(image=__file__)], ["a", "b"], "detection")
    (h,) = get_task("detection").label_statistics(sample_set)
    # √16 = 4 → 0–8; √400 = 20 → 16–32; √6400 = 80 → 64–96; the empty box (zero width) is not counted
    assert h["name"] == "box-size" and sum(h["counts"].values()) == 3
    assert h["counts"]["0–8"] == 1 and h["counts"]["16–32"] == 1 and h["counts"]["64–96"] == 1


def test_segmentation_counts_each_class_share_of_each_image(tmp_path):
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[:3, :] = 1  # class 1: 30 % → 20–50
    mask[9, 9] = 2  # class 2: 1 % → 1–2
    mask[5, :] = 255  # ignored pixels count in no class
    Image.fromarray(mask).save(tmp_path / "m.png")
    target = MaskTarget(mask=tmp_path / "m.png", present=(0, 1, 2), width=10, height=10)
    sample_set = SampleSet([Sample(image=tmp_path / "i.png", target=target)], ["bg", "one", "two"], "segmentation")
    (h,) = get_task("segmentation").label_statistics(sample_set)
    assert h["name"] == "mask-area" and h["counts"]["20–50"] == 1 and h["counts"]["1–2"] == 1
    assert sum(h["counts"].values()) == 2 and h["note"] == ""


def test_classification_has_no_label_statistics():
    assert get_task("classification").label_statistics is None
