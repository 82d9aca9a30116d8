"""Detection label issues (cleanlab's object-detection module) on generated boxes with injected mistakes, judged
against detections that match the true boxes — what a good out-of-fold detector gives."""

from __future__ import annotations

import random
from dataclasses import replace

import numpy as np

from oculi.analysis.audit import Item, read_sets
from oculi.analysis.labels import _cleanlab_predictions, detection_findings
from oculi.data.synthetic import write_detection_data
from oculi.inference.detection import Detections


def overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Whether two ``xyxy`` boxes share any area."""
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def test_missing_swapped_and_misplaced_boxes_are_found(tmp_path):
    channels = write_detection_data(tmp_path / "data", seed=3, count=40)
    _, sets = read_sets([f"train={channels['train']}"])
    train = sets["train"]
    truth_predictions = [
        _cleanlab_predictions(Detections([list(b) for b in s.target.boxes], [0.99] * len(s.target),
                                         list(s.target.labels), train.classes, 128, 96), train.num_classes)
        for s in train.samples]
    rng = random.Random(0)
    # a removed box must not touch another one: cleanlab calls a box overlooked only where no label overlaps it
    apart = [n for n, s in enumerate(train.samples) if len(s.target) >= 2 and not any(
        overlaps(s.target.boxes[0], other) for other in s.target.boxes[1:])]
    missing = rng.sample(apart, 3)
    others = [n for n, s in enumerate(train.samples) if len(s.target) >= 2 and n not in missing]
    picked = missing + rng.sample(others, 6)
    injected = {"missing_box": set(), "swapped_class": set(), "misplaced_box": set()}
    samples = list(train.samples)
    for n, kind in zip(picked, ["missing_box"] * 3 + ["swapped_class"] * 3 + ["misplaced_box"] * 3, strict=True):
        target = samples[n].target
        boxes, labels = list(target.boxes), list(target.labels)
        if kind == "missing_box":
            boxes, labels = boxes[1:], labels[1:]
        elif kind == "swapped_class":
            labels[0] = 1 - labels[0]
        else:
            x0, y0, x1, y1 = boxes[0]
            boxes[0] = (x0 + (x1 - x0) * 0.6, y0 + (y1 - y0) * 0.6, x1 + (x1 - x0) * 0.6, y1 + (y1 - y0) * 0.6)
        samples[n] = replace(samples[n], target=replace(target, boxes=tuple(boxes), labels=tuple(labels)))
        injected[kind].add(str(samples[n].image))
    items = [Item("train", n, s) for n, s in enumerate(samples)]
    findings = detection_findings(items, train.classes, truth_predictions)
    every = set().union(*injected.values())
    flagged = {f.file for f in findings}
    assert len(flagged & every) >= 8 and len(flagged - every) <= 1, (flagged - every, every - flagged)
    for kind, files in injected.items():  # each mistake is named as what it is
        named = {f.file for f in findings if f.kind == kind}
        assert len(named & files) >= 2, (kind, [(f.file, f.kind, f.detail) for f in findings])
    missing = next(f for f in findings if f.kind == "missing_box" and f.file in injected["missing_box"])
    assert "has no box" in missing.fix and np.isfinite(missing.score)


def test_wrong_mask_regions_are_found(tmp_path):
    import torch
    import torch.nn.functional as F

    from oculi.analysis.labels import SEGMENTATION_SIDE, segmentation_findings
    from oculi.data.formats.masks import load_mask
    from oculi.data.synthetic import write_segmentation_data

    write_segmentation_data(tmp_path / "data", seed=2, count=24)
    _, sets = read_sets([tmp_path / "data"])
    train = sets["train"]
    size = (SEGMENTATION_SIDE, SEGMENTATION_SIDE)
    masks = np.stack([F.interpolate(torch.from_numpy(load_mask(s.target))[None, None].float(), size=size,
                                    mode="nearest")[0, 0].long().numpy() for s in train.samples])
    k = train.num_classes
    probabilities = np.full((len(masks), k, *size), 0.1 / (k - 1), dtype=np.float32)
    np.put_along_axis(probabilities, masks[:, None], 0.9, axis=1)  # a model that agrees with the true masks
    rng = np.random.default_rng(0)
    wrong = rng.choice(len(masks), 4, replace=False)
    for n in wrong:  # relabel a 20×20 square as the next class
        y, x = rng.integers(0, SEGMENTATION_SIDE - 20, 2)
        masks[n, y:y + 20, x:x + 20] = (masks[n, y:y + 20, x:x + 20] + 1) % k
    items = [Item("train", n, s) for n, s in enumerate(train.samples)]
    findings = segmentation_findings(items, train.classes, masks, probabilities)
    assert {f.file for f in findings} == {str(train.samples[n].image) for n in wrong}
    assert all(f.kind == "wrong_mask" and "check the mask in [" in f.fix for f in findings)
