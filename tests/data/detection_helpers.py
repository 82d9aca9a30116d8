"""A tiny generated detection dataset and helpers to write it in every format and compare read-backs."""

from __future__ import annotations

from pathlib import Path

from oculi.data.formats.coco import write_coco
from oculi.data.formats.manifest import write_detection_manifest
from oculi.data.formats.sagemaker_json import write_sagemaker_json
from oculi.data.formats.tools import WRITTEN_TOOL_FORMATS, tool_output, write_tool
from oculi.data.formats.voc import write_voc
from oculi.data.formats.yolo import write_yolo
from oculi.types import BoxTarget, Sample, SampleSet
from tests.data.conftest import make_image

CLASSES = ["cat", "dog", "zebra"]
# (name, size, boxes xyxy, labels, difficult)
IMAGES = [
    ("a", (64, 48), ((1.5, 2.25, 30.0, 40.0), (10.0, 5.0, 63.0, 47.5)), (0, 1), (False, True)),
    ("b", (40, 40), ((0.0, 0.0, 40.0, 40.0),), (2,), (False,)),
    ("c", (50, 30), ((3.0, 4.0, 13.0, 14.0), (20.125, 1.0, 45.0, 29.0), (5.0, 5.0, 6.0, 6.0)), (1, 1, 2),
     (False, False, False)),
    ("negative", (32, 32), (), (), ()),
]


def make_detection_set(root: Path) -> SampleSet:
    """Four PNGs in ``root/images`` with known boxes (one ``difficult``) and one negative image."""
    samples = []
    for seed, (name, size, boxes, labels, difficult) in enumerate(IMAGES):
        image = make_image(root / "images" / f"{name}.png", seed=900 + seed, size=size)
        samples.append(Sample(image, BoxTarget(boxes, labels, difficult, *size), origin=str(image)))
    return SampleSet(samples, list(CLASSES), task="detection", format="generated", source=str(root))


def write_as(sample_set: SampleSet, fmt: str, out: Path) -> dict[str, Path]:
    """Write ``sample_set`` as ``fmt`` under ``out``; returns the ``read_detection`` arguments to read it back."""
    if fmt == "sagemaker-json":
        write_sagemaker_json(sample_set, out / "train", out / "train_annotation")
        return {"path": out / "train", "annotations": out / "train_annotation"}
    if fmt == "manifest":
        write_detection_manifest(sample_set, out / "train.manifest")
        return {"path": out / "train.manifest"}
    if fmt == "coco":
        write_coco(sample_set, out / "annotations.json")
        return {"path": out / "annotations.json"}
    if fmt == "voc":
        write_voc(sample_set, out, copy_images=True)
        return {"path": out}
    if fmt in WRITTEN_TOOL_FORMATS:
        write_tool(sample_set, fmt, tool_output(fmt, out))
        return {"path": tool_output(fmt, out)}
    write_yolo(sample_set, out, copy_images=True)
    return {"path": out}


def by_stem(sample_set: SampleSet) -> dict[str, tuple]:
    """``{image stem: (sorted [(class name, box)…], width, height)}`` — comparable across formats."""
    result = {}
    for sample in sample_set.samples:
        target = sample.target
        boxes = sorted((sample_set.classes[c], tuple(b)) for b, c in zip(target.boxes, target.labels, strict=True))
        result[sample.image.stem] = (boxes, target.width, target.height)
    return result


def assert_same_boxes(left: SampleSet, right: SampleSet, tolerance: float = 1e-3) -> None:
    """Same images (by stem), same class names, and per image the same named boxes within ``tolerance`` px."""
    assert left.classes == right.classes
    a, b = by_stem(left), by_stem(right)
    assert sorted(a) == sorted(b)
    for stem in a:
        boxes_a, *size_a = a[stem]
        boxes_b, *size_b = b[stem]
        assert [n for n, _ in boxes_a] == [n for n, _ in boxes_b], stem
        for (_, box_a), (_, box_b) in zip(boxes_a, boxes_b, strict=True):
            assert max(abs(x - y) for x, y in zip(box_a, box_b, strict=True)) <= tolerance, (stem, box_a, box_b)
        assert size_a == size_b or None in size_a or None in size_b, stem
