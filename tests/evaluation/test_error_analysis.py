"""Error analysis (issue 16 item 3): TIDE error types on hand-made prediction/truth pairs, each type's share of
the lost mAP, and the report files of `oculi evaluate --output` for classification and detection."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from oculi.evaluation.detection import detection_scores
from oculi.evaluation.tide import average_precision, match_image, tide


def _boxes(*rows):
    return torch.tensor(rows, dtype=torch.float32)


TRUTH = {"boxes": _boxes([0, 0, 40, 40], [100, 100, 140, 140], [200, 0, 240, 40], [300, 300, 340, 340]),
         "labels": torch.tensor([0, 1, 0, 1])}


def _one_error_of_each_type():
    """Detections on TRUTH, best first: a hit, its duplicate, a wrong class on box 1, a loose box on box 2, a
    wrong class *and* loose box near box 3, and a box on empty background."""
    rows = [([0, 0, 40, 40], 0.95, 0, None),            # right
            ([1, 1, 41, 41], 0.9, 0, "duplicate"),       # same box again
            ([100, 100, 140, 140], 0.85, 0, "class"),    # box 1 is class 1
            ([200, 0, 218, 40], 0.8, 0, "localisation"),  # IoU 0.45 with box 2 (its own class)
            ([300, 300, 318, 340], 0.75, 0, "both"),     # box 3 is class 1, IoU 0.45
            ([500, 500, 540, 540], 0.7, 1, "background")]
    pred = {"boxes": _boxes(*[r[0] for r in rows]), "scores": torch.tensor([r[1] for r in rows]),
            "labels": torch.tensor([r[2] for r in rows])}
    return pred, [r[3] for r in rows]


def test_every_tide_type_is_recognised_on_hand_made_boxes():
    pred, expected = _one_error_of_each_type()
    found = match_image(pred, TRUTH, fg=0.5)
    assert found.errors == expected
    assert found.right == [e is None for e in expected]
    # box 1 (class error points at it) and box 2 (localisation) are not missed; box 3 is: only a "both" is near
    assert found.missed == [3]
    assert found.related[2] == 1 and found.related[3] == 2


def test_each_fix_recovers_the_ap_its_type_lost():
    truth = {"boxes": _boxes([0, 0, 40, 40], [100, 0, 140, 40]), "labels": torch.tensor([0, 0])}
    # the loose box scores above the true hit, so it costs precision; nothing is missed once it is fixed
    pred = {"boxes": _boxes([100, 0, 118, 40], [0, 0, 40, 40]), "scores": torch.tensor([0.9, 0.8]),
            "labels": torch.tensor([0, 0])}
    report = tide([pred], [truth], 1, 0.5)
    assert report.counts["localisation"] == 1 and report.counts["missed"] == 0
    assert report.mAP < 1.0 and report.delta_ap["localisation"] == pytest.approx(1.0 - report.mAP)
    assert report.share["localisation"] == pytest.approx(1.0)
    assert all(report.delta_ap[k] == 0.0 for k in report.delta_ap if k != "localisation")

    lonely = {"boxes": _boxes([0, 0, 40, 40]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}
    missed = tide([lonely], [truth], 1, 0.5)
    assert missed.counts["missed"] == 1 and missed.mAP == pytest.approx(0.5, abs=0.01)
    assert missed.delta_ap["missed"] == pytest.approx(1.0 - missed.mAP)


def test_our_ap_agrees_with_pycocotools():
    pred, _ = _one_error_of_each_type()
    ours, per_class = average_precision([pred], [TRUTH], 2, 0.5)
    coco = detection_scores([pred], [TRUTH], ["a", "b"], 0.5)
    assert ours == pytest.approx(coco.metrics["mAP"], abs=1e-4)
    assert per_class[0] == pytest.approx(coco.per_class["a"], abs=1e-4)


def test_classification_report_has_top_losses_and_confused_pairs(classifier, tiny_split, tmp_path):
    from oculi.tasks import evaluate

    result = evaluate(classifier, tiny_split["validation"], output=tmp_path / "report", progress=False)
    body = json.loads((tmp_path / "report" / "metrics.json").read_text())
    losses = body["error_analysis"]["top_losses"]
    assert losses and [r["loss"] for r in losses] == sorted((r["loss"] for r in losses), reverse=True)
    worst = losses[0]
    index = [str(p) for p in result.images].index(worst["image"])
    true = result.classes.index(worst["true"])
    assert worst["loss"] == pytest.approx(-float(result.probabilities[index, true].clamp_min(1e-7).log()), abs=1e-5)
    confused = body["error_analysis"]["most_confused"]
    off_diagonal = sum(c for i, row in enumerate(body["confusion_matrix"]) for j, c in enumerate(row) if i != j)
    assert sum(p["count"] for p in confused) == off_diagonal or len(confused) == 10
    assert (tmp_path / "report" / "top_losses.png").stat().st_size > 1000


def test_the_top_loss_gallery_shows_heat_maps(classifier, tiny_split, tmp_path):
    from PIL import Image

    from oculi.tasks import get_task, load_predictor
    from oculi.tasks.classification import heat_maps

    predictor = load_predictor(classifier, precision="float32")
    image = sorted(tiny_split["validation"].glob("*/*.png"))[0]
    drawn = heat_maps(predictor)(image, predictor.classes[0])
    plain = predictor.transform(predictor.to_tensor(image)).permute(1, 2, 0).numpy()  # the crop the model saw
    assert drawn.shape == plain.shape and drawn.dtype == np.uint8
    assert np.abs(drawn.astype(int) - plain.astype(int)).mean() > 5  # the heat colours are blended in
    contract = get_task("classification")
    contract.evaluate(predictor, tiny_split["validation"], output=tmp_path / "maps", progress=False)
    contract.evaluate(predictor, tiny_split["validation"], output=tmp_path / "plain", progress=False, overlay=None)
    with_maps = np.asarray(Image.open(tmp_path / "maps" / "top_losses.png").convert("RGB"))
    without = np.asarray(Image.open(tmp_path / "plain" / "top_losses.png").convert("RGB"))
    assert with_maps.shape == without.shape and not np.array_equal(with_maps, without)


def test_detection_report_has_tide_sizes_galleries_and_thresholds(tmp_path):
    from oculi.tasks import evaluate, load_predictor
    from oculi.tasks.thresholds import thresholds_of
    from tests.serving.bundles import tiny_bundle
    from tests.test_detection_training import _shapes_coco

    data = _shapes_coco(tmp_path / "shapes", 6, 3)
    predictor = load_predictor(tiny_bundle(tmp_path / "det", "object-detection"), precision="float32")
    result = evaluate(predictor, data, output=tmp_path / "report", progress=False)
    body = json.loads((tmp_path / "report" / "metrics.json").read_text())
    analysis = body["error_analysis"]
    assert set(analysis["errors"]) == {"localisation", "class", "both", "duplicate", "background", "missed"}
    wrong = sum(len(p["labels"]) for p in result.predictions) - sum(
        sum(match_image(p, t, 0.5).right) for p, t in zip(result.predictions, result.targets, strict=True))
    assert sum(row["count"] for kind, row in analysis["errors"].items() if kind != "missed") == wrong
    assert all(0.0 <= row["share_of_lost_mAP"] <= 1.0 for row in analysis["errors"].values())
    assert {"mAP_small", "mAP_medium", "mAP_large"} <= set(body)
    galleries = list((tmp_path / "report" / "errors").glob("*.png"))
    assert galleries and {p.stem for p in galleries} <= {"box", "disc"}

    chosen = thresholds_of(predictor, result, "precision=0.95")
    assert set(chosen.calibration.thresholds) <= {"box", "disc"}
    for choice in chosen.choices.values():
        assert choice.precision >= 0.95 or not choice.reached


def test_boundary_f1_and_error_maps_on_hand_made_masks():
    from oculi.evaluation.analysis import FALSE_NEGATIVE, FALSE_POSITIVE, boundary_counts, boundary_f1, error_map

    truth = torch.zeros(60, 80, dtype=torch.int64)
    truth[10:40, 10:40] = 1
    same = boundary_f1(boundary_counts(truth, truth.clone(), 2, 255), ["background", "box"])
    assert same[0] == 1.0 and same[1]["box"] == 1.0
    shifted = torch.zeros_like(truth)
    shifted[20:50, 30:60] = 1  # far beyond the 1-pixel tolerance except where the edges cross
    moved = boundary_f1(boundary_counts(truth, shifted, 2, 255), ["background", "box"])
    assert moved[1]["box"] < 0.3
    picture = error_map(torch.full((3, 60, 80), 128, dtype=torch.uint8), truth, shifted, 255)
    pixels = np.asarray(picture)[::4, ::4]  # enlarged 4× to a 240-pixel short side
    assert picture.size == (320, 240)
    assert tuple(pixels[45, 45].tolist()) == FALSE_POSITIVE  # predicted box, truth background
    assert tuple(pixels[12, 12].tolist()) == FALSE_NEGATIVE  # true box, predicted background
    assert tuple(pixels[25, 35].tolist()) not in (FALSE_POSITIVE, FALSE_NEGATIVE)  # right in both


def test_segmentation_report_has_boundary_f1_and_worst_images(tmp_path):
    from oculi.tasks import evaluate
    from tests.segmentation.helpers import write_layout
    from tests.serving.bundles import tiny_bundle

    root = write_layout(tmp_path / "seg", "validation", 4, seed=2)
    (root / "train").mkdir()
    model = tiny_bundle(tmp_path / "model", "semantic-segmentation")
    result = evaluate(model, root, output=tmp_path / "report", progress=False)
    body = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert 0.0 <= body["boundary_F1"] <= 1.0
    worst = body["error_analysis"]["worst_images"]
    assert len(worst) == 4 and [w["iou"] for w in worst] == sorted(w["iou"] for w in worst)
    assert len(list((tmp_path / "report" / "worst").glob("*.png"))) == 4
    assert set(body["error_analysis"]["per_class_boundary_F1"]) == set(result.per_class)
