"""Models trained once per session on generated data whose answer is known: a classifier whose class is the
colour of one square patch and a segmenter of the generated scenes (red rectangle, green disc); and an untrained
tiny detector."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from oculi.algorithms import get_algorithm
from oculi.data.synthetic import write_detection_data, write_segmentation_data
from oculi.engine.training import train
from tests.explain.scenes import write_patch_folders
from tests.serving.bundles import tiny_bundle

QUIET = {"progress": False, "echo": lambda *_: None}
PATCH_SIZE, IMAGE_SIZE = 16, 48


@dataclass
class Trained:
    """A trained bundle and its validation data (``boxes``: classification patch boxes by image path)."""

    model: Path
    data: dict[str, Path]
    boxes: dict[str, tuple[int, ...]]


@pytest.fixture(scope="session")
def patch_classifier(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """ResNet-20 on 48² images whose class is the colour of one 16² patch (or ``none``)."""
    root = tmp_path_factory.mktemp("patches")
    write_patch_folders(root / "train", 16, IMAGE_SIZE, PATCH_SIZE, seed=1)
    boxes = write_patch_folders(root / "validation", 4, IMAGE_SIZE, PATCH_SIZE, seed=2)
    hp = {"epochs": "3", "image_shape": f"3,{IMAGE_SIZE},{IMAGE_SIZE}", "resize": str(IMAGE_SIZE), "num_layers": "20",
          "mini_batch_size": "8", "num_workers": "0", "learning_rate": "0.1"}
    channels = {"train": root / "train", "validation": root / "validation"}
    train("image-classification", channels, hp, output=root / "model", **QUIET)
    return Trained(root / "model", channels, boxes)


@pytest.fixture(scope="session")
def scene_detector(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """An untrained tiny SSD (seeded weights; its boxes are not objects, so it serves the output and box-specificity
    checks, not a pointing test) and generated scenes to explain."""
    root = tmp_path_factory.mktemp("detector")
    channels = write_detection_data(root / "data", seed=3, count=4)
    return Trained(tiny_bundle(root / "model", "object-detection"), channels, {})


@pytest.fixture(scope="session")
def scene_segmenter(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The tiny segmentation network on the generated scenes (0 background, 1 box, 2 disc)."""
    root = tmp_path_factory.mktemp("segmenter")
    channels = write_segmentation_data(root / "data", seed=4, count=16)
    hp = {**get_algorithm("semantic-segmentation").tiny_hyperparameters, "epochs": "6"}
    train("semantic-segmentation", channels, hp, output=root / "model", **QUIET)
    return Trained(root / "model", channels, {})
