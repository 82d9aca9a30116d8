"""``oculi monitor quality`` and ``export-for-labeling``: ground truth joins captured requests by inference id
(SageMaker's records) or by the event id a labeling job's images are named after; a window scored far below the
training figure is a violation; a drifted window becomes a pre-labelled labeling job whose labels close the loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oculi.cli import app
from oculi.labeling import jobs
from oculi.monitoring import check, quality
from tests.helpers import draw
from tests.monitoring.test_monitor import base, capture_images, jpeg_train, shapes  # noqa: F401 - fixtures

CLASSES = ["circle", "square", "stripes"]


def ground_truth(path: Path, labels: dict[str, str]) -> Path:
    """SageMaker's ground-truth records: the label fields of a Ground Truth classification line as JSON."""
    with path.open("w") as f:
        for inference_id, name in labels.items():
            fields = {"label": CLASSES.index(name), "label-metadata": {
                "class-name": name, "type": "groundtruth/image-classification",
                "class-map": {str(i): c for i, c in enumerate(CLASSES)}}}
            f.write(json.dumps({"groundTruthData": {"data": json.dumps(fields), "encoding": "JSON"},
                                "eventMetadata": {"inferenceId": inference_id}, "eventVersion": "0"}) + "\n")
        f.write("{broken\n")
    return path


def test_quality_joins_by_id_and_flags_a_window_far_below_training(base, classifier, tmp_path):  # noqa: F811
    from oculi.tasks import load_predictor

    rng = np.random.default_rng(31)
    images = [draw(CLASSES[n % 3], 32, rng) for n in range(45)]
    capture = capture_images(tmp_path / "cap", images)
    files = []
    for n, img in enumerate(images):  # the same JPEG bytes the capture holds
        img.save(tmp_path / f"{n}.jpg", "JPEG", quality=95)
        files.append(tmp_path / f"{n}.jpg")
    predicted = [r.predicted_label for r in load_predictor(classifier, precision="float32").predict(files)]
    truth = {f"req-{n}": k for n, k in enumerate(predicted)}  # labels the model gets right: accuracy 1
    right = quality(capture, ground_truth(tmp_path / "gt.jsonl", {**truth, "req-999": "circle"}), base,
                    tmp_path / "q1", tolerance=0.3)
    assert right["matched"] == 45 and right["missing"] == ["req-999"] and len(right["bad_lines"]) == 1
    assert len(right["windows"]) == 1 and right["windows"][0]["images"] == 45
    assert right["training"] == pytest.approx(json.loads((base / "baseline.json").read_text())
                                              ["training_metrics"]["validation:accuracy"])
    assert right["windows"][0]["accuracy"] == pytest.approx(1.0) and right["violations"] == 0

    wrong = {i: CLASSES[(CLASSES.index(k) + 1) % 3] for i, k in truth.items()}  # every label names another class
    result = CliRunner().invoke(app, ["monitor", "quality", "--capture", str(capture), "--ground-truth",
                                      str(ground_truth(tmp_path / "bad.jsonl", wrong)), "--baseline", str(base),
                                      "--tolerance", "0.3", "--output", str(tmp_path / "q2")])
    assert result.exit_code == 3, result.output
    violations = json.loads((tmp_path / "q2" / "constraint_violations.json").read_text())["violations"]
    assert violations[0]["feature_name"] == "accuracy"
    assert violations[0]["constraint_check_type"] == "LessThanThreshold"
    assert json.loads((tmp_path / "q2" / "quality.json").read_text())["windows"][0]["accuracy"] == 0.0


def test_a_drifted_window_becomes_a_prelabelled_labeling_job_whose_labels_join_back(base, tmp_path):  # noqa: F811
    dark = [Image.eval(img, lambda v: int(v * 0.4)) for img in shapes(30, seed=41)]
    capture = capture_images(tmp_path / "cap", dark)
    report = check(capture, base, tmp_path / "check")
    assert report["violations"] > 0
    result = CliRunner().invoke(app, ["monitor", "export-for-labeling", "--violations", str(tmp_path / "check"),
                                      "--to", "drift-1"])
    assert result.exit_code == 0, result.output
    described = jobs.describe("drift-1")
    assert described["LabelCounters"]["Unlabeled"] == 30
    items = jobs.JobStore().labeling_items("drift-1")
    assert all(item["proposal"] and "classes" in item["proposal"] for item in items)
    for item in items[:12]:  # a person labels twelve of them
        jobs.save_label("drift-1", item["idx"], {"classes": item["proposal"]["classes"]}, "tester")
    manifest = jobs.export("drift-1")
    result = quality(capture, manifest, base, tmp_path / "q", tolerance=0.3)
    assert result["matched"] == 12 and result["windows"][0]["images"] == 12
    assert result["windows"][0]["accuracy"] == pytest.approx(1.0)  # the labeler accepted the pre-labels
