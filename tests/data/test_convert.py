"""`convert` between every ordered pair of detection formats, its ledger, and `oculi data convert`."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli.data import app
from oculi.data.convert import convert
from oculi.data.detection import DETECTION_FORMATS, read_detection
from oculi.types import SampleSet
from tests.data.detection_helpers import assert_same_boxes, make_detection_set, write_as

runner = CliRunner()
BOXES = 6


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> SampleSet:
    return make_detection_set(tmp_path_factory.mktemp("generated"))


@pytest.mark.parametrize(("first", "second"), list(itertools.permutations(DETECTION_FORMATS, 2)))
def test_round_trip(first: str, second: str, generated: SampleSet, tmp_path: Path) -> None:
    args = write_as(generated, first, tmp_path / "source")
    source = read_detection(**args)
    there = convert(args["path"], second, tmp_path / "there", annotations=args.get("annotations"))
    assert (there.images_in, there.boxes_in) == (there.images_out, there.boxes_out) == (len(generated), BOXES)
    back = convert(Path(there.target), first, tmp_path / "back", source_format=second)
    assert back.boxes_per_class_out == there.boxes_per_class_in
    assert_same_boxes(source, read_detection(Path(back.target), format=first))


def test_ledger_reports_difficult_for_yolo(generated: SampleSet, tmp_path: Path) -> None:
    args = write_as(generated, "voc", tmp_path / "voc")
    ledger = convert(args["path"], "yolo", tmp_path / "yolo")
    assert ledger.images_in == ledger.images_out == 4 and ledger.boxes_in == ledger.boxes_out == BOXES
    assert ledger.boxes_per_class_in == ledger.boxes_per_class_out == {"cat": 1, "dog": 3, "zebra": 2}
    assert [c.code for c in ledger.changes if c.level != "info"] == ["difficult_not_representable"]
    assert json.loads(json.dumps(ledger.to_dict()))["changes"][0]["code"]


@pytest.mark.parametrize("to", DETECTION_FORMATS)
def test_copy_images_copies_bytes(to: str, generated: SampleSet, tmp_path: Path) -> None:
    args = write_as(generated, "coco", tmp_path / "coco")
    ledger = convert(args["path"], to, tmp_path / "out", copy_images=True)
    back = read_detection(Path(ledger.target), format=to)
    originals = {s.image.name: s.image.read_bytes() for s in generated.samples}
    for sample in back.samples:
        assert sample.image.resolve().is_relative_to((tmp_path / "out").resolve())
        assert not sample.image.is_symlink()
        assert sample.image.read_bytes() == originals[sample.image.name]


def test_cli_convert(generated: SampleSet, tmp_path: Path) -> None:
    args = write_as(generated, "voc", tmp_path / "voc")
    result = runner.invoke(app, ["convert", str(args["path"]), "--to", "coco", str(tmp_path / "coco")],
                           terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "voc → coco" in result.output and "Wrote 4 images and 6 boxes" in result.output
    result = runner.invoke(app, ["convert", str(tmp_path / "coco"), "--to", "yolo", str(tmp_path / "y"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["boxes_out"] == BOXES


def test_cli_convert_help_and_bad_format() -> None:
    result = runner.invoke(app, ["convert", "--help"], terminal_width=200)
    assert result.exit_code == 0 and "Example: oculi data convert" in result.output
    result = runner.invoke(app, ["convert", "x", "--to", "tfrecord", "y"])
    assert result.exit_code != 0


def test_bees_to_coco_through_the_cli(shared_data: Path, tmp_path: Path) -> None:
    bees = shared_data / "bees"
    result = runner.invoke(app, ["convert", str(bees / "train.manifest"), "--to", "coco", str(tmp_path / "c"),
                                 "--image-root", f"s3://sagemaker-remars/datasets/na-bees/500={bees / 'images'}",
                                 "--json"])
    assert result.exit_code == 0, result.output
    ledger = json.loads(result.output)
    assert (ledger["images_out"], ledger["boxes_out"], ledger["boxes_per_class_out"]) == (400, 843, {"bee": 843})
