"""`--label-attribute` for manifests whose lines hold several label attributes: data check / split / sample /
convert, train and evaluate; the chosen attribute's class-map names are kept end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.data.formats.manifest import read_manifest
from oculi.errors import ConfigError, DataError
from tests.data.detection_helpers import make_detection_set
from tests.helpers import TINY, make_class_folders

runner = CliRunner()
NAMES = {"circle": "round", "square": "boxy", "stripes": "lined"}  # class-map names differ from folder names


def write_two_attribute_manifest(folders: Path, path: Path) -> Path:
    """A Ground-Truth-style manifest over ``folders/<class>/*.png``: the labels in ``shape`` (with a class-map
    naming each id), and a second attribute ``reviewed`` (a verification job's 0/1 output)."""
    classes = sorted(p.name for p in folders.iterdir() if p.is_dir())
    class_map = {str(i): NAMES[name] for i, name in enumerate(classes)}
    rows = []
    for i, name in enumerate(classes):
        for image in sorted((folders / name).glob("*.png")):
            rows.append({"source-ref": str(image), "shape": i,
                         "shape-metadata": {"class-map": class_map, "type": "groundtruth/image-classification"},
                         "reviewed": 1, "reviewed-metadata": {"type": "groundtruth/image-classification"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return write_two_attribute_manifest(make_class_folders(tmp_path / "images", per_class=6, seed=3),
                                        tmp_path / "train.manifest")


def test_without_it_the_error_says_how_to_pass_it(manifest):
    result = runner.invoke(app, ["data", "check", str(manifest)])
    assert isinstance(result.exception, DataError)
    assert "2 possible label attributes (shape, reviewed)" in str(result.exception)
    assert "--label-attribute shape" in str(result.exception)


def test_data_check_split_and_sample_take_it(manifest, tmp_path):
    checked = runner.invoke(app, ["data", "check", str(manifest), "--label-attribute", "shape", "--json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.output)
    assert report["classes"] == ["round", "boxy", "lined"] and report["counts"]["train"]["boxy"] == 6
    split = runner.invoke(app, ["data", "split", str(manifest), "--fraction", "0.5", "--output", str(tmp_path / "s"),
                                "--label-attribute", "shape"])
    assert split.exit_code == 0, split.output
    sampled = runner.invoke(app, ["data", "sample", str(manifest), "--fraction", "0.5", "--output",
                                  str(tmp_path / "sample.manifest"), "--label-attribute", "shape"])
    assert sampled.exit_code == 0, sampled.output
    for written in (tmp_path / "s" / "validation.manifest", tmp_path / "sample.manifest"):
        assert read_manifest(written).classes == ["round", "boxy", "lined"]


def test_a_label_attribute_no_line_has_is_named(manifest):
    with pytest.raises(DataError, match="no line has the label attribute 'shapes'.*shape, reviewed"):
        read_manifest(manifest, label_attribute="shapes")
    result = runner.invoke(app, ["data", "check", str(manifest), "--label-attribute", "shapes"])
    assert isinstance(result.exception, DataError)


def test_convert_takes_it_for_detection_manifests(tmp_path):
    from oculi.data.formats.manifest import write_detection_manifest

    path = tmp_path / "boxes.manifest"
    write_detection_manifest(make_detection_set(tmp_path / "src"), path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        row["boxes-audit"] = {"annotations": []}  # a second, empty box attribute (an audit job's output)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    refused = runner.invoke(app, ["data", "convert", str(path), "--to", "coco", str(tmp_path / "a")])
    assert isinstance(refused.exception, DataError) and "--label-attribute" in str(refused.exception)
    result = runner.invoke(app, ["data", "convert", str(path), "--to", "coco", str(tmp_path / "b"), "--json",
                                 "--label-attribute", "bounding-box"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["boxes_out"] == 6


def test_train_and_evaluate_take_it_and_keep_the_class_map_names(manifest, tmp_path):
    params = [arg for key, value in TINY.items() for arg in ("-p", f"{key}={value}")]
    out = tmp_path / "model"
    trained = runner.invoke(app, ["train", "image-classification", "--train", str(manifest), *params,
                                  "--label-attribute", "shape", "--output", str(out)])
    assert trained.exit_code == 0, trained.output
    meta = json.loads((out / "model.json").read_text())
    assert meta["classes"] == ["round", "boxy", "lined"]
    assert meta["hyperparameters"]["label_attribute"] == "shape"
    evaluated = runner.invoke(app, ["evaluate", str(out), str(manifest), "--label-attribute", "shape",
                                    "--no-progress"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "accuracy" in evaluated.output
    refused = runner.invoke(app, ["evaluate", str(out), str(manifest), "--no-progress"])
    assert isinstance(refused.exception, DataError) and "--label-attribute" in str(refused.exception)


def test_train_refuses_two_different_label_attributes(manifest, tmp_path):
    result = runner.invoke(app, ["train", "image-classification", "--train", str(manifest), "-p",
                                 "label_attribute=reviewed", "--label-attribute", "shape"])
    assert isinstance(result.exception, ConfigError)
    assert "label_attribute=reviewed" in str(result.exception) and "--label-attribute shape" in str(result.exception)
