"""`oculi data check|split|sample` through typer's CliRunner on the data sub-app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli.data import app
from oculi.data.formats.folders import read_folders
from oculi.data.formats.manifest import read_manifest
from oculi.errors import ConfigError

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], terminal_width=200)


@pytest.mark.parametrize("command", ["check", "split", "sample"])
def test_help_has_an_example(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0 and f"Example: oculi data {command}" in result.output


def test_check_trainable_data_exits_0(split_folders: Path) -> None:
    result = invoke("check", split_folders)
    assert result.exit_code == 0, result.output
    assert "can be trained on" in result.output and "validation" in result.output


def test_check_bad_data_exits_1(bad_folders: Path) -> None:
    result = invoke("check", bad_folders)
    assert result.exit_code == 1
    assert "truncated.jpg" in result.output and "skip_bad_images=true" in result.output


def test_check_json(bad_folders: Path) -> None:
    result = invoke("check", bad_folders, "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False
    assert {f["code"] for f in report["findings"]} >= {"truncated", "not_an_image", "unreadable"}


def test_check_channels(split_folders: Path) -> None:
    result = invoke(
        "check",
        "--channel",
        f"train={split_folders / 'train'}",
        "--channel",
        f"validation={split_folders / 'val'}",
    )
    assert result.exit_code == 0, result.output


def test_check_image_root(manifest_class_id: Path, tmp_path: Path) -> None:
    moved = tmp_path / "downloaded"
    (manifest_class_id.parent / "images").rename(moved)
    assert invoke("check", manifest_class_id).exit_code == 1
    result = invoke("check", manifest_class_id, "--image-root", f"s3://my-bucket/data={moved}")
    assert result.exit_code == 0, result.output


def test_check_usage_errors(split_folders: Path) -> None:
    both = invoke("check", split_folders, "--channel", f"train={split_folders}")
    assert isinstance(both.exception, ConfigError) and "not both" in str(both.exception)
    assert isinstance(invoke("check").exception, ConfigError)
    unknown = invoke("check", "--channel", f"trian={split_folders}")
    assert isinstance(unknown.exception, ConfigError) and "Did you mean 'train'" in str(unknown.exception)


def test_split_writes_two_manifests(class_folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    result = invoke("split", class_folders, "--fraction", "0.4", "--seed", "3", "--output", out)
    assert result.exit_code == 0, result.output
    train, validation = read_manifest(out / "train.manifest"), read_manifest(out / "validation.manifest")
    assert train.classes == validation.classes == ["cat", "dog", "fish"]
    assert len(train) + len(validation) == len(read_folders(class_folders))
    assert dict(validation.class_counts()) == {0: 2, 1: 1, 2: 1}
    assert str(out / "train.manifest") in result.output and str(out / "validation.manifest") in result.output


def test_split_rejects_bad_fraction_and_bad_labels(
    class_folders: Path, lst_dataset: Path, tmp_path: Path
) -> None:
    result = invoke("split", class_folders, "--fraction", "1.5", "--output", tmp_path / "x")
    assert isinstance(result.exception, ConfigError) and "`fraction` got 1.5" in str(result.exception)
    with lst_dataset.open("a") as f:
        f.write("99\t0\timages/missing.jpg\n")
    result = invoke("split", lst_dataset, "--fraction", "0.2", "--output", tmp_path / "y")
    assert "oculi data check" in str(result.exception) and not (tmp_path / "y").exists()


def test_sample_writes_a_manifest(class_folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "subset.manifest"
    result = invoke("sample", class_folders, "--fraction", "0.02", "--output", out)
    assert result.exit_code == 0, result.output
    subset = read_manifest(out)
    assert dict(subset.class_counts()) == {0: 1, 1: 1, 2: 1}
    assert f"Wrote 3 of 11 images to {out}" in result.output
