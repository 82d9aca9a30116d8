"""`oculi evaluate` on object-detection bundles: the metric path on hand-made boxes, and the CLI report of a
tiny SSD trained on generated shapes."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from oculi.engine.training import train
from oculi.errors import ConfigError
from oculi.evaluation.detection import detection_scores
from tests.test_detection_training import TINY_SSD, _shapes_coco


def _boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_perfect_predictions_score_one():
    targets = [{"boxes": _boxes([10, 10, 50, 40], [60, 20, 100, 80]), "labels": torch.tensor([0, 1])},
               {"boxes": _boxes([5, 5, 30, 30]), "labels": torch.tensor([1])}]
    preds = [{**t, "scores": torch.full((len(t["labels"]),), 0.9)} for t in targets]
    scores = detection_scores(preds, targets, ["box", "disc", "star"], 0.5)
    assert scores.metrics["mAP"] == 1.0 and scores.metrics["mAP_50"] == 1.0 and scores.metrics["mAP_50_95"] == 1.0
    assert scores.per_class == {"box": 1.0, "disc": 1.0, "star": None}
    recall, precision = scores.pr_curves["box"]
    assert recall[-1] == pytest.approx(1.0) and min(precision) == pytest.approx(1.0)


def test_a_shifted_box_misses_at_a_strict_threshold():
    targets = [{"boxes": _boxes([0, 0, 40, 40]), "labels": torch.tensor([0])}]
    preds = [{"boxes": _boxes([8, 0, 48, 40]), "scores": torch.tensor([0.8]), "labels": torch.tensor([0])}]
    loose = detection_scores(preds, targets, ["box"], 0.5)  # IoU = 32/48 ≈ 0.67
    strict = detection_scores(preds, targets, ["box"], 0.75)
    assert loose.metrics["mAP"] == 1.0 and strict.metrics["mAP"] == 0.0
    assert 0.0 < loose.metrics["mAP_50_95"] < loose.metrics["mAP_50"]


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    shapes = {"train": _shapes_coco(root / "train", 16, 1), "validation": _shapes_coco(root / "val", 8, 2)}
    out = tmp_path_factory.mktemp("det") / "model"
    train("object-detection", shapes, TINY_SSD, output=out, progress=False, echo=lambda *_: None)
    return out, shapes["validation"]


def test_cli_evaluates_a_detection_bundle(detector, tmp_path):
    from typer.testing import CliRunner

    from oculi.cli import app

    model, validation = detector
    report = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(model), str(validation), "--output", str(report),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "mAP" in result.output and "pr_curves.png" in result.output
    metrics = json.loads((report / "metrics.json").read_text())
    for key in ("mAP", "mAP_50_95", "mAP_50"):
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 1.0
    assert metrics["mAP_50_95"] <= metrics["mAP_50"] + 1e-6
    assert set(metrics["per_class_AP"]) == {"box", "disc"}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in metrics["per_class_AP"].values())
    assert metrics["num_images"] == 8 and metrics["num_boxes"] >= 8
    assert metrics["model"] and metrics["data"] == str(validation)
    for name in ("pr_curves.png", "detections.png"):
        with Image.open(report / name) as image:
            image.verify()


def test_top_k_is_refused_for_detection(detector):
    from oculi.tasks import evaluate

    model, validation = detector
    with pytest.raises(ConfigError, match="top-k"):
        evaluate(model, validation, top_k=2, progress=False)


def test_yolo_data_yaml_splits_train_on_train_and_evaluate_on_val(detector, tmp_path):
    """A YOLO dataset with images/{train,val}: training reads train and validates on val, evaluation reads val."""
    from oculi.algorithms import get_algorithm
    from oculi.config import resolve
    from oculi.data.detection import read_detection
    from oculi.data.formats.yolo import write_yolo
    from oculi.tasks import evaluate

    model, validation = detector
    root = tmp_path / "yolo"
    for split, part in (("train", slice(5, 8)), ("val", slice(0, 5))):
        source = read_detection(validation)
        source.samples[:] = source.samples[part]
        write_yolo(source, tmp_path / split, copy_images=True)
        for kind in ("images", "labels"):
            (root / kind).mkdir(parents=True, exist_ok=True)
            (tmp_path / split / kind).rename(root / kind / split)
    (root / "data.yaml").write_text(f"train: images/train\nval: images/val\nnames: {source.classes}\n")

    result = evaluate(model, root, progress=False)
    assert result.metrics["num_images"] == 5 and "(val split)" in result.data

    algo = get_algorithm("object-detection")
    hp = resolve(algo.hyperparameters, None, TINY_SSD, algorithm=algo.name)
    prepared = algo.prepare({"train": root}, hp, init_meta=None, image_roots=None, progress=False)
    assert (len(prepared.train), len(prepared.validation)) == (3, 5)
    assert any("validating on" in note for note in prepared.notes)
