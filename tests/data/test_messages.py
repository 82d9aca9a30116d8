"""Small data messages a new user meets: a SageMaker annotation without its image, an empty .lst, `data sample`
on a folder of splits, and a model.json naming an algorithm oculi does not have."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.data.channels import read_channel, resolve_classification_channels
from oculi.data.formats.sagemaker_json import read_sagemaker_json
from oculi.errors import ArtifactError, DataError
from tests.data.conftest import make_image

runner = CliRunner()


def _annotation(folder: Path, stem: str, file: str | None = None) -> Path:
    record = {"annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}],
              "categories": [{"class_id": 0, "name": "cat"}]}
    if file is not None:
        record["file"] = file
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.json"
    path.write_text(json.dumps(record))
    return path


def test_sagemaker_missing_image_names_real_places(tmp_path):
    annotations = tmp_path / "train_annotation"
    _annotation(annotations, "1")
    _annotation(annotations, "2", file="2.jpg")
    alone = read_sagemaker_json(None, annotations)
    messages = [f.message for f in alone.findings if f.code == "missing_image"]
    assert len(messages) == 2
    assert not any("None" in m or "<jpg|png>" in m for m in messages), messages
    assert all("No images folder was given" in m for m in messages)
    assert f"'2.jpg' in {annotations}" in messages[1]
    make_image(tmp_path / "train" / "other.jpg")
    with_images = read_sagemaker_json(tmp_path / "train", annotations)
    first = next(f.message for f in with_images.findings if f.code == "missing_image")
    assert f"{tmp_path / 'train' / '1'}.jpg, .png or another image extension" in first


def test_an_empty_lst_is_called_empty(tmp_path):
    empty = tmp_path / "train.lst"
    empty.write_text("\n  \n")
    for read in (lambda: read_channel(empty),
                 lambda: resolve_classification_channels({"train": tmp_path, "train_lst": empty}),
                 lambda: resolve_classification_channels({"train": tmp_path, "train_lst": tmp_path})):
        with pytest.raises(DataError, match=r"train\.lst: the file is empty") as raised:
            read()
        assert "neither" not in str(raised.value)
    result = runner.invoke(app, ["data", "check", str(empty)])
    assert isinstance(result.exception, DataError) and "the file is empty" in str(result.exception)


def test_data_sample_on_splits_suggests_a_split_not_a_missing_option(split_folders, tmp_path):
    for command in ("sample", "split"):
        result = runner.invoke(app, ["data", command, str(split_folders), "--fraction", "0.5", "--output",
                                     str(tmp_path / f"{command}.manifest")])
        assert isinstance(result.exception, DataError), result.output
        message = str(result.exception)
        assert "--channel" not in message
        assert f"oculi data {command} {split_folders / 'train'}" in message


def test_a_bundle_with_an_unknown_algorithm_names_its_model_json(classifier, tmp_path):
    from oculi.artifacts import load_bundle

    bundle = tmp_path / "bundle"
    shutil.copytree(classifier, bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["algorithm"] = "image-clasification"
    (bundle / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="image-clasification") as raised:
        load_bundle(bundle)
    assert str(bundle / "model.json") in str(raised.value) and "image-classification" in str(raised.value)
    image = next((Path(classifier).parent).glob("*"))  # any path; the bundle fails before the image is read
    result = runner.invoke(app, ["predict", str(bundle), str(image)])
    assert isinstance(result.exception, ArtifactError) and str(bundle / "model.json") in str(result.exception)
