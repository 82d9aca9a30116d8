"""`oculi data convert` never writes over its input, replaces an existing output only with --overwrite, and
refuses to report success for nothing (no image found, every listed image missing)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli.data import app
from oculi.data.convert import convert
from oculi.data.formats.coco import write_coco
from oculi.errors import ConfigError, DataError
from tests.data.detection_helpers import make_detection_set, write_as
from tests.segmentation.helpers import write_layout

runner = CliRunner()


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    """``coco/annotations.json`` naming its images relative to it (``images/a.png`` …; 4 images, 6 boxes)."""
    write_coco(make_detection_set(tmp_path / "coco"), tmp_path / "coco" / "annotations.json")
    return tmp_path / "coco" / "annotations.json"


def _convert(*args: str):
    return runner.invoke(app, ["convert", *args], terminal_width=200)


def test_converting_a_file_onto_itself_is_refused(coco):
    before = coco.read_bytes()
    for out in (coco, coco.parent):  # the file itself, or the folder whose annotations.json it is
        result = _convert(str(coco), "--to", "coco", str(out))
        assert isinstance(result.exception, ConfigError), result.output
        assert str(coco) in str(result.exception) and "input" in str(result.exception)
        result = _convert(str(coco), "--to", "coco", str(out), "--overwrite")
        assert isinstance(result.exception, ConfigError)
    assert coco.read_bytes() == before


def test_a_folder_converted_into_itself_is_refused(tmp_path):
    voc = write_as(make_detection_set(tmp_path / "src"), "voc", tmp_path / "voc")["path"]
    before = sorted((p.name, p.read_bytes()) for p in (voc / "Annotations").iterdir())
    for to in ("voc", "yolo"):
        with pytest.raises(ConfigError, match="is the input"):
            convert(voc, to, voc, overwrite=True)
    assert sorted((p.name, p.read_bytes()) for p in (voc / "Annotations").iterdir()) == before
    assert not (voc / "labels").exists()


def test_an_output_holding_the_images_is_refused(coco, tmp_path):
    # yolo writes OUT/images: here that is where the COCO file's images are.
    with pytest.raises(ConfigError, match="an image the annotations list"):
        convert(coco, "yolo", coco.parent, overwrite=True)
    assert all(p.is_file() and not p.is_symlink() for p in (coco.parent / "images").iterdir())


def test_an_existing_output_needs_overwrite(coco, tmp_path):
    out = tmp_path / "out"
    assert _convert(str(coco), "--to", "coco", str(out)).exit_code == 0
    written = out / "annotations.json"
    written.write_text("{}")  # the user's own edit, which must not be lost without consent
    refused = _convert(str(coco), "--to", "coco", str(out))
    assert isinstance(refused.exception, ConfigError)
    assert str(written) in str(refused.exception) and "--overwrite" in str(refused.exception)
    assert written.read_text() == "{}"
    replaced = _convert(str(coco), "--to", "coco", str(out), "--overwrite", "--json")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(replaced.output)["images_out"] == 4 and len(json.loads(written.read_text())["images"]) == 4


def test_overwrite_replaces_a_folder_output_whole(coco, tmp_path):
    out = tmp_path / "voc"
    convert(coco, "voc", out)
    shutil.copy(out / "Annotations" / "a.xml", out / "Annotations" / "stale.xml")
    with pytest.raises(ConfigError, match="already exists"):
        convert(coco, "voc", out)
    ledger = convert(coco, "voc", out, overwrite=True)
    assert ledger.images_out == 4 and not (out / "Annotations" / "stale.xml").exists()


def test_a_coco_file_away_from_its_images_is_an_error(coco, tmp_path):
    moved = tmp_path / "elsewhere" / "annotations.json"
    moved.parent.mkdir()
    shutil.copy(coco, moved)
    result = _convert(str(moved), "--to", "yolo", str(tmp_path / "out"))
    assert isinstance(result.exception, DataError), result.output
    message = str(result.exception)
    assert "none of the 4 image(s)" in message and str(moved.parent) in message and "a.png" in message
    assert not (tmp_path / "out").exists()


def test_a_folder_with_no_images_is_an_error(tmp_path):
    labels = tmp_path / "guess" / "labels"
    labels.mkdir(parents=True)
    (labels / "x.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (tmp_path / "guess" / "data.yaml").write_text("names: [cat]\n")
    with pytest.raises(DataError, match="nothing was written|Nothing was written"):
        convert(tmp_path / "guess", "coco", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_segmentation_conversion_is_guarded_too(tmp_path):
    write_layout(tmp_path / "src", "train", 2, seed=1)
    with pytest.raises(ConfigError, match="is the input"):
        convert(tmp_path / "src", "sagemaker-masks", tmp_path / "src", task="segmentation", overwrite=True)
    convert(tmp_path / "src", "voc", tmp_path / "voc", task="segmentation")
    with pytest.raises(ConfigError, match="already exists"):
        convert(tmp_path / "src", "voc", tmp_path / "voc", task="segmentation")
    assert convert(tmp_path / "src", "voc", tmp_path / "voc", task="segmentation", overwrite=True).images_out == 2
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "train_annotation").mkdir()
    with pytest.raises(DataError):
        convert(tmp_path / "empty", "voc", tmp_path / "voc2", task="segmentation")
    assert not (tmp_path / "voc2").exists()
