"""Evaluation end to end on a tiny trained model (metrics match an independent computation, report files, CLI,
user mistakes), plus the metric and report code on hand-made predictions whose answers are known."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from oculi.cli import app, main
from oculi.engine.training import train
from oculi.errors import ConfigError, DataError
from oculi.evaluation import EvaluationResult
from oculi.evaluation.metrics import multi_label_scores, single_label_scores
from oculi.tasks import evaluate, load_predictor
from oculi.types import Sample, SampleSet
from tests.helpers import TINY, make_class_folders

runner = CliRunner()


def quiet(*_: object) -> None:
    """An ``echo`` that prints nothing."""


@pytest.fixture(scope="module")
def model(tiny_split, tmp_path_factory) -> Path:
    """A bundle trained for two epochs on the tiny three-class split."""
    out = tmp_path_factory.mktemp("evaluate-bundle") / "model"
    train("image-classification", {"train": tiny_split["train"]}, {**TINY, "epochs": "2"}, output=out,
          progress=False, echo=quiet)
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """72 images, more than the 64 above which images are decoded in DataLoader workers. Half the circles are
    filed under square, so the model gets about 12 of them "wrong": true counts circle 12, square 36, stripes 24."""
    root = make_class_folders(tmp_path_factory.mktemp("evaluate-data") / "test", per_class=24, seed=7)
    for image in sorted((root / "circle").glob("*.png"))[:12]:
        image.rename(root / "square" / image.name)
    return root


def _independent(model: Path, data: Path) -> tuple[float, set[str]]:
    """Accuracy and the misclassified file names, from ``Predictor.probabilities`` argmax one image at a time."""
    predictor = load_predictor(model)
    wrong, total = set(), 0
    for image in sorted(data.glob("*/*.png")):
        predicted = int(predictor.probabilities([image]).argmax(dim=1))
        total += 1
        if predicted != predictor.classes.index(image.parent.name):
            wrong.add(image.name)
    return 1 - len(wrong) / total, wrong


def test_report_matches_an_independent_computation(model, data, tmp_path):
    out = tmp_path / "report"
    result = evaluate(model, data, output=out, top_k=2, progress=False)
    accuracy, wrong = _independent(model, data)

    metrics = json.loads((out / "metrics.json").read_text())
    assert isinstance(metrics["accuracy"], float)
    assert metrics["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert {Path(m["image"]).name for m in metrics["misclassified"]} == wrong
    assert metrics["num_images"] == 72 and metrics["classes"] == ["circle", "square", "stripes"]
    confusion = torch.tensor(metrics["confusion_matrix"])
    assert confusion.shape == (3, 3) and int(confusion.sum()) == 72
    assert confusion.sum(dim=1).tolist() == [12, 36, 24]  # rows are the true classes
    assert 0 < len(wrong) < 72
    assert int(confusion.trace()) / 72 == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert metrics["top_k"] == 2 and metrics["top_k_accuracy"] >= metrics["accuracy"]
    assert set(metrics["per_class"]["circle"]) == {"precision", "recall", "f1", "support"}
    assert result.metrics["accuracy"] == metrics["accuracy"] and result.report_dir == out

    for name in ("confusion_matrix.png", "misclassified.png"):
        with Image.open(out / name) as image:
            image.load()
            assert image.width >= 300 and image.height >= 150
    with (out / "per_class.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["circle", "square", "stripes"]
    assert sum(int(r["support"]) for r in rows) == 72


def test_split_layout_evaluates_the_validation_split(model, tiny_split):
    result = evaluate(model, tiny_split["train"].parent, progress=False)
    assert result.data == str(tiny_split["validation"]) and result.num_images == 18
    assert "evaluating" in result.notes[0] and "validation" in result.notes[0]


def test_sample_set_with_another_class_order_is_aligned_by_name(model, tiny_split):
    images = sorted(tiny_split["validation"].glob("*/*.png"))
    names = ["stripes", "circle", "square"]
    samples = SampleSet([Sample(p, names.index(p.parent.name)) for p in images], names, source="in memory")
    by_name = evaluate(model, samples, progress=False)
    from_folder = evaluate(model, tiny_split["validation"], progress=False)
    assert by_name.confusion == from_folder.confusion


def test_cli_writes_the_report(model, data, tmp_path):
    out = tmp_path / "cli-report"
    result = runner.invoke(app, ["evaluate", str(model), str(data), "--output", str(out), "--top-k", "2",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    for name in ("metrics.json", "per_class.csv", "confusion_matrix.png", "misclassified.png"):
        assert (out / name).is_file()
    assert "top-2 accuracy" in result.output and str(out / "metrics.json") in result.output


def test_unknown_class_is_a_clear_cli_error(model, tiny_split, tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_split["validation"], data)
    make_class_folders(data, per_class=2, classes=("circle",))
    (data / "circle").rename(data / "triangle")
    monkeypatch.setattr(sys, "argv", ["oculi", "evaluate", str(model), str(data), "--no-progress"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == DataError.exit_code
    err = capsys.readouterr().err
    assert "'triangle'" in err and "square" in err and "Traceback" not in err


def test_user_mistakes_raise_errors_that_name_the_fix(model, tmp_path):
    (tmp_path / "empty" / "circle").mkdir(parents=True)
    with pytest.raises(DataError, match="no labelled images"):
        evaluate(model, tmp_path / "empty", progress=False)
    with pytest.raises(DataError, match="no labelled images"):
        evaluate(model, SampleSet([], ["circle"]), progress=False)
    with pytest.raises(ConfigError, match="`top_k` got 4; the model has 3 classes"):
        evaluate(model, tmp_path / "empty", top_k=4, progress=False)
    broken = make_class_folders(tmp_path / "broken", per_class=1)
    (broken / "square" / "square_000.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="square_000.png"):
        evaluate(model, broken, progress=False)


def test_multi_label_model(tiny_split, tmp_path):
    folder = tiny_split["train"]
    lines = [f"{n}\t{int(p.parent.name == 'circle')}\t{int(p.parent.name != 'circle')}\t{int(n % 2)}\t"
             f"{p.relative_to(folder).as_posix()}" for n, p in enumerate(sorted(folder.glob("*/*.png")))]
    lst = tmp_path / "labels.lst"
    lst.write_text("\n".join(lines) + "\n")
    bundle = tmp_path / "model"
    train("image-classification", {"train": folder, "train_lst": lst},
          {**TINY, "multi_label": "1", "epochs": "1"}, output=bundle, progress=False, echo=quiet)
    result = evaluate(bundle, SampleSet([Sample(p, 0) for p in sorted((folder / "circle").glob("*.png"))],
                                        ["0", "1", "2"]), output=tmp_path / "report", progress=False)
    assert result.multi_label and result.confusion is None
    assert 0 <= result.metrics["accuracy"] <= result.metrics["hamming"] <= 1
    assert result.per_class["0"]["support"] == 16 and result.per_class["1"]["support"] == 0
    assert "confusion matrix" not in result.files and (tmp_path / "report" / "misclassified.png").is_file()
    with pytest.raises(ConfigError, match="multi-label"):
        evaluate(bundle, folder / "circle", top_k=1, progress=False)


def test_single_label_scores_on_known_predictions():
    # true: 0 0 1 1 2 2; argmax: 0 1 1 1 2 0 → 4/6 correct; second choices: 1 0 0 2 1 2
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1],
                          [0.1, 0.5, 0.4], [0.1, 0.3, 0.6], [0.5, 0.1, 0.4]])
    targets = torch.tensor([0, 0, 1, 1, 2, 2])
    scores = single_label_scores(probs, targets, ["a", "b", "c"], top_k=2)
    assert scores.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert scores.metrics["accuracy"] == pytest.approx(4 / 6)
    assert scores.metrics["top_k_accuracy"] == pytest.approx(6 / 6) and scores.metrics["top_k"] == 2
    a, b, c = (scores.per_class[k] for k in "abc")
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(1 / 2), pytest.approx(1 / 2), 2)
    assert (b["precision"], b["recall"]) == (pytest.approx(2 / 3), pytest.approx(1.0))
    assert b["f1"] == pytest.approx(2 * (2 / 3) / (2 / 3 + 1))
    assert (c["precision"], c["recall"]) == (pytest.approx(1.0), pytest.approx(1 / 2))
    assert scores.metrics["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    with pytest.raises(ConfigError, match="from 1 to 3"):
        single_label_scores(probs, targets, ["a", "b", "c"], top_k=0)


def test_multi_label_scores_on_known_predictions():
    probs = torch.tensor([[0.9, 0.8, 0.1], [0.6, 0.2, 0.7], [0.1, 0.4, 0.2]])
    targets = torch.tensor([[1, 1, 0], [1, 0, 0], [0, 1, 0]])
    scores = multi_label_scores(probs, targets, ["a", "b", "c"])
    assert scores.metrics["accuracy"] == pytest.approx(1 / 3)  # only the first row is exactly right
    assert scores.metrics["hamming"] == pytest.approx(7 / 9)  # one false positive (1, c), one miss (2, b)
    assert scores.per_class["b"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores.per_class["c"]["precision"] == 0.0 and scores.per_class["c"]["support"] == 0
    assert scores.confusion is None


def _result(num_classes: int, misclassified: list[tuple[Path, str, str, float]]) -> EvaluationResult:
    classes = [f"class_{i:02d}" for i in range(num_classes)]
    confusion = [[(5 + i) if i == j else int(j == (i + 1) % num_classes) for j in range(num_classes)]
                 for i in range(num_classes)]
    per_class = {name: {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": sum(confusion[i])}
                 for i, name in enumerate(classes)}
    total = sum(map(sum, confusion))
    return EvaluationResult({"accuracy": sum(confusion[i][i] for i in range(num_classes)) / total},
                            per_class, confusion, classes, misclassified, total, "model", "data")


def test_report_truncates_many_classes_and_draws_misclassified(tmp_path):
    image = make_class_folders(tmp_path / "images", per_class=1, size=48) / "circle" / "circle_000.png"
    result = _result(30, [(image, "class_00", "class_01", 0.87)] * 3)
    console = Console(file=io.StringIO(), width=300)
    result.render(console)
    text = console.file.getvalue()
    assert "the 20 most frequent of 30 classes shown" in text and "class_29" in text
    assert "true: class_00 / pred: class_01 (p=0.87)" in text
    files = result.write(tmp_path / "report")
    assert set(files) == {"metrics", "per-class metrics", "confusion matrix", "misclassified"}
    for key in ("confusion matrix", "misclassified"):
        with Image.open(files[key]) as png:
            assert png.width >= 400
    assert json.loads(files["metrics"].read_text())["num_misclassified"] == 3


def test_placeholder_when_nothing_is_misclassified(tmp_path):
    files = _result(2, []).write(tmp_path)
    with Image.open(files["misclassified"]) as png:
        assert png.size == (600, 200)
