"""Thresholds and calibration (issue 16 item 4): the rules on known scores, temperature scaling on an
over-confident model, `oculi evaluate --choose-thresholds [--write]` on a trained classifier, and predictions that
apply what model.json stores."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from oculi.artifacts import load_bundle, read_meta
from oculi.errors import ArtifactError, ConfigError
from oculi.evaluation.calibration import (
    CalibrationData,
    Rule,
    choose_threshold,
    choose_thresholds,
    expected_calibration_error,
    fit_temperature,
    logits_of_scores,
)
from oculi.inference.calibration import parse_threshold, scale_distribution


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _noisy_binary(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores whose chance of being right rises with the score (a reasonable but imperfect detector)."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(n, generator=g, dtype=torch.float64)
    right = (torch.rand(n, generator=g, dtype=torch.float64) < scores ** 0.5).double()
    return scores, right


@pytest.mark.parametrize("rule", ["precision=0.95", "precision=0.8", "recall=0.9", "recall=0.5", "max_f1"])
def test_each_rule_holds_on_the_data_it_was_chosen_on(rule):
    scores, right = _noisy_binary(400, seed=3)
    positives = int(right.sum()) + 20  # 20 true items no score found (a detector's misses)
    parsed = Rule.parse(rule)
    choice = choose_threshold(scores, right, positives, parsed)
    kept = scores >= choice.threshold
    precision = float(right[kept].mean())
    recall = float(right[kept].sum()) / positives
    assert choice.reached
    assert precision == pytest.approx(choice.precision) and recall == pytest.approx(choice.recall)
    if parsed.kind == "precision":
        assert precision >= parsed.target
        lower = scores[scores < choice.threshold].max()  # one step lower breaks the rule
        assert float(right[scores >= lower].mean()) < parsed.target
    elif parsed.kind == "recall":
        assert recall >= parsed.target
        higher = scores[scores > choice.threshold].min()
        assert float(right[scores >= higher].sum()) / positives < parsed.target
    else:
        f1s = []
        for t in scores.unique():
            k = scores >= t
            p, r = float(right[k].mean()), float(right[k].sum()) / positives
            f1s.append(2 * p * r / (p + r) if p + r else 0.0)
        assert choice.f1 == pytest.approx(max(f1s))


def test_an_unreachable_recall_is_reported_not_hidden():
    scores, right = torch.tensor([0.9, 0.8, 0.3]), torch.tensor([1.0, 0.0, 1.0])
    choice = choose_threshold(scores, right, positives=10, rule=Rule.parse("recall=0.5"))
    assert not choice.reached and choice.threshold == pytest.approx(0.3) and choice.recall == pytest.approx(0.2)


def test_rules_and_overrides_that_are_wrong_say_how_to_write_them():
    for bad in ("precision", "precision=1.5", "f2", "recall=abc"):
        with pytest.raises(ConfigError, match="max_f1, precision=P or recall=R"):
            Rule.parse(bad)
    classes = ["bee", "wasp"]
    assert parse_threshold("0.4", classes) == 0.4 and parse_threshold("none", classes) == "none"
    assert parse_threshold("bee=0.3", classes) == {"bee": 0.3} and parse_threshold(None, classes) is None
    with pytest.raises(ConfigError, match="not a class of the model"):
        parse_threshold("ant=0.3", classes)
    with pytest.raises(ConfigError, match="outside 0…1"):
        parse_threshold("1.5", classes)


def _overconfident(n: int = 3000, classes: int = 4, sharpen: float = 4.0, seed: int = 0) -> CalibrationData:
    """Labels drawn from softmax(z); the model reports softmax(sharpen · z): right ranking, too sure."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, classes, generator=g, dtype=torch.float64)
    targets = torch.multinomial(torch.softmax(z, dim=1), 1, generator=g).flatten()
    probs = torch.softmax(sharpen * z, dim=1)
    return CalibrationData(classes=[f"c{i}" for i in range(classes)], softmax=True,
                           logits=torch.log(probs), targets=targets, num_images=n)


def test_temperature_scaling_lowers_the_calibration_error_of_an_overconfident_model():
    data = _overconfident()
    temperature = fit_temperature(data)
    assert 3.0 < temperature < 5.5  # the sharpening it undoes is 4
    before = expected_calibration_error(*data.confidence(1.0))
    after = expected_calibration_error(*data.confidence(temperature))
    assert before > 0.1 and after < before / 3
    report = choose_thresholds(data, Rule.parse("precision=0.9"))
    assert report.ece_after < report.ece_before and report.calibration.unsure is not None
    # the unsure threshold holds the precision among the answers it keeps, on calibrated probabilities
    probs = scale_distribution(torch.softmax(data.logits, dim=1), report.calibration.temperature)
    top, predicted = probs.max(dim=1)
    sure = top >= report.calibration.unsure
    assert float((predicted[sure] == data.targets[sure]).double().mean()) >= 0.9


def test_multi_label_thresholds_per_class_hold_the_precision():
    g = torch.Generator().manual_seed(5)
    n, c = 600, 3
    truth = (torch.rand(n, c, generator=g) < 0.4).double()
    probs = (0.55 * truth + 0.45 * torch.rand(n, c, generator=g, dtype=torch.float64)).clamp(0.01, 0.99)
    data = CalibrationData(classes=["a", "b", "c"], softmax=False, logits=logits_of_scores(probs).flatten(),
                           targets=truth.flatten(), groups=torch.arange(c).repeat(n),
                           positives={i: int(truth[:, i].sum()) for i in range(c)}, num_images=n)
    report = choose_thresholds(data, Rule.parse("precision=0.95"))
    calibrated = data.probabilities(report.calibration.temperature).reshape(n, c)
    for i, name in enumerate(data.classes):
        kept = calibrated[:, i] >= report.calibration.thresholds[name]
        assert kept.any() and float(truth[kept, i].mean()) >= 0.95


def _precision_of_sure_answers(model: Path, folder: Path) -> tuple[float, int]:
    from oculi import load_model

    predictor = load_model(model)
    right = kept = 0
    for path in sorted(folder.rglob("*.png")):
        result = predictor.predict(path)
        assert result.calibration is not None and result.calibration["source"] == "model"
        if not result.unsure:
            kept += 1
            right += result.predicted_label == path.parent.name
    return right / max(kept, 1), kept


def test_cli_chooses_writes_and_predictions_apply_the_thresholds(classifier, tiny_split, tmp_path):
    from oculi.cli import app

    model = tmp_path / "model"
    shutil.copytree(classifier, model)
    before = _digest(model)
    runner = CliRunner()
    report = tmp_path / "report"
    args = ["evaluate", str(model), str(tiny_split["validation"]), "--choose-thresholds", "precision=0.95",
            "--no-progress"]
    result = runner.invoke(app, [*args, "--output", str(report)])
    assert result.exit_code == 0, result.output
    assert "expected calibration error" in result.output and "Thresholds (precision=0.95)" in result.output
    assert _digest(model) == before  # without --write nothing in the bundle changes
    chosen = json.loads((report / "thresholds.json").read_text())
    assert chosen["rule"] == "precision=0.95" and chosen["choices"]["unsure"]["precision"] >= 0.95

    result = runner.invoke(app, [*args, "--write"])
    assert result.exit_code == 0, result.output
    meta = read_meta(model)
    calibration = meta["calibration"]
    assert calibration["rule"] == "precision=0.95" and calibration["unsure"] == chosen["unsure"]
    assert calibration["data"]["fingerprint"] == chosen["data"]["fingerprint"] and len(
        calibration["data"]["fingerprint"]) == 16
    assert set(calibration["ece"]) == {"before", "after"}
    assert _digest(model)["weights.safetensors"] == before["weights.safetensors"]
    precision, kept = _precision_of_sure_answers(model, tiny_split["validation"])
    if chosen["choices"]["unsure"]["reached"]:
        # evaluate scores in batches, predict one image at a time: an image right at the threshold may fall on the
        # other side in float rounding (seen on an AVX2-only CPU), so one answer either way is allowed
        assert precision >= 0.95 and abs(kept - chosen["choices"]["unsure"]["kept"]) <= 1

    shown = runner.invoke(app, ["predict", str(model), str(next(tiny_split["validation"].rglob("*.png")))])
    assert shown.exit_code == 0 and "calibration (model, precision=0.95)" in shown.output
    assert "unsure below" in shown.output

    old = load_bundle(classifier)  # a bundle without calibration predicts exactly as before
    assert "calibration" not in old.meta
    from oculi import load_model

    plain = load_model(classifier).predict(next(tiny_split["validation"].rglob("*.png")))
    assert plain.calibration is None and plain.unsure is None


def test_write_refuses_an_archive_and_segmentation_refuses_thresholds(classifier, tiny_split, tmp_path):
    from oculi.artifacts import pack
    from oculi.cli import app

    archive = pack(classifier, tmp_path / "model.tar.gz")
    result = CliRunner().invoke(app, ["evaluate", str(archive), str(tiny_split["validation"]),
                                      "--choose-thresholds", "max_f1", "--write", "--no-progress"])
    assert isinstance(result.exception, ArtifactError) and "is an archive" in str(result.exception)
    result = CliRunner().invoke(app, ["evaluate", str(classifier), str(tiny_split["validation"]), "--write"])
    assert isinstance(result.exception, ConfigError) and "--choose-thresholds" in str(result.exception)


def test_multi_label_predictions_name_the_classes_over_their_thresholds(tmp_path):
    from oculi import load_model
    from oculi.artifacts import update_meta
    from oculi.inference.calibration import Calibration, scale_scores
    from tests.serving.bundles import build_bundle

    classes = ["circle", "square", "stripes"]
    model = build_bundle(tmp_path / "multi", "image-classification",
                         {"image_shape": "3,32,32", "num_layers": "20", "resize": "36", "multi_label": "1"}, classes)
    image = torch.randint(0, 255, (3, 40, 40), dtype=torch.uint8)
    raw = load_model(model).predict(image)
    assert raw.calibration is None and raw.predicted_labels is None  # no calibration stored: as before
    update_meta(model, {"calibration": Calibration("max_f1", 0.5, {"circle": 0.0, "square": 1.0,
                                                                   "stripes": 0.5}).to_meta()})
    predictor = load_model(model)
    result = predictor.predict(image)
    want = scale_scores(torch.tensor(raw.probabilities, dtype=torch.float64), 0.5)
    assert result.probabilities == pytest.approx(want.tolist(), abs=1e-5)
    assert "circle" in result.predicted_labels and "square" not in result.predicted_labels
    assert ("stripes" in result.predicted_labels) == (float(want[2]) >= 0.5)
    assert predictor.predict(image, threshold="square=0").predicted_labels[:2] == ["circle", "square"]
    assert predictor.predict(image, threshold="none").predicted_labels is None
    assert predictor.predict(image, calibrate=False).probabilities == raw.probabilities


def test_a_class_with_too_few_examples_keeps_the_default_threshold_and_says_why():
    from oculi.evaluation.calibration import MIN_SUPPORT

    g = torch.Generator().manual_seed(7)
    n = 300
    truth = (torch.rand(n, 2, generator=g) < 0.4).double()
    truth[:, 1] = 0
    truth[: MIN_SUPPORT - 1, 1] = 1  # class "rare": one true item short of the minimum
    probs = (0.55 * truth + 0.45 * torch.rand(n, 2, generator=g, dtype=torch.float64)).clamp(0.01, 0.99)
    data = CalibrationData(classes=["common", "rare"], softmax=False, logits=logits_of_scores(probs).flatten(),
                           targets=truth.flatten(), groups=torch.arange(2).repeat(n),
                           positives={i: int(truth[:, i].sum()) for i in range(2)}, num_images=n)
    report = choose_thresholds(data, Rule.parse("precision=0.95"))
    assert report.calibration.thresholds["rare"] == 0.5 and not report.choices["rare"].reached
    assert f"fewer than {MIN_SUPPORT}" in report.choices["rare"].note
    assert "note" in report.to_dict()["choices"]["rare"]
    assert report.choices["common"].reached and not report.choices["common"].note
    assert report.calibration.thresholds["common"] != 0.5
