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
    from oculi.evaluation import evaluate

    model, validation = detector
    with pytest.raises(ConfigError, match="top-k"):
        evaluate(model, validation, top_k=2, progress=False)
