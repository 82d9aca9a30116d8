"""What the export tests share: random-weight bundles of every task exported to ONNX, tiny detectors and segmenters
trained on their task's generated data, and the console entry point run in-process."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest
import torch

from oculi.algorithms import get_algorithm
from oculi.artifacts import WEIGHTS, save_bundle
from oculi.cli import main
from oculi.data.tasks import DATA_TASKS
from oculi.engine.training import train
from oculi.export import export_onnx


def train_tiny(algorithm: str, task: str, root: Path, **overrides: str) -> Path:
    """A bundle of ``algorithm``'s tiny configuration trained on ``task``'s generated data (seed 0); its model.json
    records the channels, so exports find their calibration and validation data."""
    channels = DATA_TASKS.get(task).synthesize(root / "data", 0)
    hp = {**get_algorithm(algorithm).tiny_hyperparameters, **overrides}
    train(algorithm, channels, hp, output=root / "model", progress=False, echo=lambda _line: None)
    return root / "model"


def random_bundle(algorithm: str, hyperparameters: dict, classes: list[str], out: Path) -> Path:
    """A bundle of ``algorithm``'s network with seeded random weights (no training)."""
    torch.manual_seed(0)
    algo = get_algorithm(algorithm)
    hp = algo.hyperparameters.model_validate(hyperparameters)
    model = algo.build_model(hp, classes, pretrained=False).eval()
    meta = {"algorithm": algo.name, "task": algo.task, "hyperparameters": hp.model_dump(mode="json"),
            "classes": classes, "input": algo.input_spec(hp)}
    return save_bundle(out, meta, model)


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder``."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


def copy_bundle(bundle: Path, to: Path) -> Path:
    return Path(shutil.copytree(bundle, to))


@pytest.fixture(scope="session")
def exported(classifier, tmp_path_factory) -> dict[str, Path]:
    """Exported copies of a bundle of every task."""
    root = tmp_path_factory.mktemp("exported")
    bundles = {
        "classification": copy_bundle(classifier, root / "classification"),
        "detection": random_bundle("object-detection", {"base_network": "efficientnet-lite0",
                                                        "use_pretrained_model": False, "image_shape": 96},
                                   ["box", "disc"], root / "detection"),
        "segmentation": random_bundle("semantic-segmentation", {"algorithm": "psp", "backbone":
                                                                "efficientnet-lite0", "use_pretrained_model": False,
                                                                "base_size": 64, "crop_size": 48},
                                      ["0", "1", "2"], root / "segmentation"),
    }
    for bundle in bundles.values():
        weights = digests(bundle)[WEIGHTS]
        export_onnx(bundle)
        assert digests(bundle)[WEIGHTS] == weights  # the weights stay as they were, in safetensors
    return bundles


def oculi(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run the real console entry point in-process: ``(exit code, stdout, stderr)``."""
    monkeypatch.setattr(sys, "argv", ["oculi", *args])
    monkeypatch.delenv("OCULI_DEBUG", raising=False)
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def tiny_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SSD trained for its tiny epochs on generated boxes."""
    return train_tiny("object-detection", "detection", tmp_path_factory.mktemp("tiny-detector"))


@pytest.fixture(scope="session")
def tiny_segmenter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny segmentation network trained for its tiny epochs on generated masks."""
    return train_tiny("semantic-segmentation", "segmentation", tmp_path_factory.mktemp("tiny-segmenter"))
