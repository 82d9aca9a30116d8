"""A dataset root in SageMaker's segmentation layout is trained with every channel it holds (as the data check
reads it): validation/ is the validation set, not 20 % held out of train, and the channels found are printed."""

from __future__ import annotations

from pathlib import Path

from oculi.data.checks import check_path
from oculi.engine.training import train
from tests.segmentation.helpers import TINY, write_label_map, write_layout


def _root(tmp_path: Path, validation: bool = True) -> Path:
    root = tmp_path / "layout"
    write_layout(root, "train", 8, seed=1, encode=lambda c: c * 3)
    if validation:
        write_layout(root, "validation", 3, seed=2, encode=lambda c: c * 3)
    (root / "label_map").mkdir()
    write_label_map(root, {"scale": "3"})
    (root / "label_map" / "validation_label_map.json").unlink()  # SageMaker needs only train_label_map.json
    return root


def test_training_on_the_root_uses_its_validation_channel(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert check_path(root).num_images == {"train": 8, "validation": 3}
    lines: list[str] = []
    result = train("semantic-segmentation", {"train": root}, TINY, output=tmp_path / "m", progress=False,
                   echo=lines.append, stop_requested=lambda: True)
    text = "\n".join(lines)
    assert "training on 8 images, validating on 3" in text, text
    assert "held out" not in text
    (found,) = [line for line in lines if "channels found" in line]
    for name in ("train (train/)", "train_annotation (train_annotation/)", "validation (validation/)",
                 "validation_annotation (validation_annotation/)", "label_map (label_map/: train_label_map.json)"):
        assert name in found, found
    assert result.classes == ["0", "1", "2"]


def test_a_root_without_validation_says_so_and_holds_out(tmp_path: Path) -> None:
    root = _root(tmp_path, validation=False)
    lines: list[str] = []
    train("semantic-segmentation", {"train": root}, TINY, output=tmp_path / "m", progress=False,
          echo=lines.append, stop_requested=lambda: True)
    (found,) = [line for line in lines if "channels found" in line]
    assert "no validation there" in found and "validation (" not in found
    assert any("held out" in line for line in lines)
