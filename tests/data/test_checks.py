"""The classification data check: every listed problem is caught and names its file (and line)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from oculi.data.channels import read_channel
from oculi.data.checks import check_classification, check_path, drop_bad_images
from oculi.data.formats.folders import read_folders
from oculi.types import Sample, SampleSet


def by_code(report, code: str):
    return [f for f in report.findings if f.code == code]


def rendered(report) -> str:
    out = io.StringIO()
    report.render(Console(file=out, width=200))
    return out.getvalue()


def test_bad_images_are_errors_naming_the_file(bad_folders: Path) -> None:
    report = check_path(bad_folders)
    broken = bad_folders / "broken"
    expected = {"truncated": "truncated.jpg", "not_an_image": "text.jpg", "unreadable": "empty.png"}
    for code, name in expected.items():
        [finding] = by_code(report, code)
        assert finding.level == "error" and finding.path == str(broken / name)
    assert report.bad_images == {broken / n for n in expected.values()}
    assert not report.ok and len(report.errors()) == 3
    assert report.counts == {"train": {"broken": 1, "good": 3}}
    assert report.num_images == {"train": 7}
    text = rendered(report)
    assert "cannot be trained on" in text and "-p skip_bad_images=true" in text and "truncated.jpg" in text


def test_drop_bad_images_makes_the_data_trainable(bad_folders: Path) -> None:
    sets = {"train": read_folders(bad_folders)}
    report = check_classification(sets)
    kept = drop_bad_images(sets, report)
    assert len(kept["train"]) == 4 and kept["train"].classes == sets["train"].classes
    assert check_classification(kept).ok
    assert (bad_folders / "broken" / "text.jpg").exists()  # user files are never touched


def test_bad_image_in_an_lst_names_the_line(bad_folders: Path) -> None:
    lst = bad_folders / "list.lst"
    lst.write_text("0\t0\tgood/g0.jpg\n1\t1\tbroken/truncated.jpg\n")
    report = check_path(lst)
    [finding] = by_code(report, "truncated")
    assert finding.path == str(bad_folders / "broken" / "truncated.jpg")
    assert f"listed at {lst}:2" in finding.message


def test_mode_conversions_and_exif_are_info(mode_folders: Path) -> None:
    report = check_path(mode_folders)
    assert report.ok, report.errors()
    converted = {Path(f.path).name: f.message for f in by_code(report, "converted_mode")}
    assert set(converted) == {"gray.png", "palette.png", "alpha.png", "cmyk.jpg", "deep.png"}
    assert "grayscale" in converted["gray.png"] and "16-bit" in converted["deep.png"]
    assert "CMYK" in converted["cmyk.jpg"] and "palette" in converted["palette.png"]
    [rotation] = by_code(report, "exif_rotation")
    assert rotation.path.endswith("rotated.jpg") and rotation.level == "info"
    assert "10×30" in rotation.message  # displayed size, after the rotation
    assert all(f.level == "info" for f in report.findings)
    assert report.size_range == {"min_width": 10, "max_width": 24, "min_height": 16, "max_height": 30}


def test_extension_mismatch_is_info(class_folders: Path) -> None:
    shutil.copy(class_folders / "dog" / "dog0.png", class_folders / "dog" / "really_png.jpg")
    report = check_path(class_folders)
    [finding] = by_code(report, "extension_mismatch")
    assert finding.level == "info" and finding.path.endswith("really_png.jpg")
    assert by_code(report, "duplicate_within_split")  # same bytes as dog0.png


def test_empty_training_class_is_one_error(class_folders: Path) -> None:
    (class_folders / "empty").mkdir()
    report = check_path(class_folders)
    [finding] = by_code(report, "empty_class")
    assert finding.level == "error" and finding.path == str(class_folders / "empty")
    assert not report.ok and report.counts["train"]["empty"] == 0


def test_class_whose_images_all_fail_is_empty(bad_folders: Path) -> None:
    shutil.rmtree(bad_folders / "good")
    (bad_folders / "broken" / "ok.jpg").unlink()
    report = check_path(bad_folders)
    assert by_code(report, "empty_class") and by_code(report, "no_images")


def test_manifest_class_without_images(tmp_path: Path, image_factory) -> None:
    image = image_factory(tmp_path / "a.jpg")
    meta = {"class-map": {"0": "cat", "1": "dog"}}
    path = tmp_path / "m.manifest"
    path.write_text(json.dumps({"source-ref": str(image), "class": 0, "class-metadata": meta}) + "\n")
    report = check_path(path)
    [finding] = by_code(report, "empty_class")
    assert "'dog'" in finding.message and finding.path == str(path)


def test_label_out_of_range(tmp_path: Path, image_factory) -> None:
    image = image_factory(tmp_path / "a.jpg")
    sample_set = SampleSet(
        [Sample(image, 0), Sample(image_factory(tmp_path / "b.jpg", seed=1), 5, "x.lst:2")], ["cat", "dog"]
    )
    report = check_classification({"train": sample_set})
    [finding] = by_code(report, "label_out_of_range")
    assert finding.level == "error" and finding.path.endswith("b.jpg") and "x.lst:2" in finding.message


def test_duplicates_across_and_within_splits(split_folders: Path) -> None:
    train_ant = split_folders / "train" / "ants" / "ants0.jpg"
    shutil.copy(train_ant, split_folders / "val" / "ants" / "copy.jpg")
    shutil.copy(train_ant, split_folders / "train" / "bees" / "also.jpg")
    report = check_path(split_folders)
    [across] = by_code(report, "duplicate_across_splits")
    assert across.level == "error"
    assert "ants0.jpg" in across.message and "copy.jpg" in across.message
    [within] = by_code(report, "duplicate_within_split")
    assert within.level == "warning" and "ants0.jpg" in within.message and "also.jpg" in within.message
    assert not report.ok


def test_class_mismatch_between_splits(split_folders: Path) -> None:
    sets = {"train": read_folders(split_folders / "train"), "validation": read_folders(split_folders / "val")}
    sets["validation"].classes = ["bees", "ants"]
    assert by_code(check_classification(sets), "class_mismatch")


def test_reader_findings_are_carried_over(lst_dataset: Path) -> None:
    with lst_dataset.open("a") as f:
        f.write("99\t0\timages/missing.jpg\n")
    report = check_path(lst_dataset)
    [missing] = by_code(report, "missing_image")
    assert missing.line == 7 and "-p skip_bad_images=true" in report.verdict()


def test_render_and_to_dict(split_folders: Path) -> None:
    report = check_path(split_folders, workers=1)
    assert report.ok
    text = rendered(report)
    assert "ants" in text and "validation" in text and "can be trained on" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["counts"]["validation"] == {"ants": 2, "bees": 2}
    assert data["num_images"] == {"train": 8, "validation": 4}


@pytest.fixture(scope="module")
def hymenoptera_report(shared_data: Path):
    root = shared_data / "hymenoptera" / "hymenoptera_data"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return check_path(root, workers=4)


def test_hymenoptera(hymenoptera_report) -> None:
    report = hymenoptera_report
    assert report.ok, report.errors()
    assert report.classes == ["ants", "bees"]
    assert report.counts == {"train": {"ants": 124, "bees": 121}, "validation": {"ants": 70, "bees": 83}}
    assert not report.bad_images
    gif = [f for f in report.findings if f.path.endswith("imageNotFound.gif")]
    assert [(f.level, f.code) for f in gif] == [("info", "converted_mode")]
    assert "GIF" in gif[0].message
    assert report.size_range["min_width"] >= 100 and report.size_range["max_width"] <= 2592
    # the .jpeg extension is an ordinary JPEG extension: nothing to report
    assert not any(f.path.endswith("formica.jpeg") for f in report.findings)


def test_read_channel_on_hymenoptera_split(shared_data: Path) -> None:
    train = shared_data / "hymenoptera" / "hymenoptera_data" / "train"
    if not train.is_dir():
        pytest.skip(f"{train} is absent")
    s = read_channel(train)
    assert s.classes == ["ants", "bees"] and len(s) == 245


def test_progress_bar_does_not_change_the_report(split_folders: Path) -> None:
    sets = {"train": read_folders(split_folders / "train")}
    assert check_classification(sets, progress=True).to_dict() == check_classification(sets).to_dict()
