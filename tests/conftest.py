"""Shared fixtures: tiny generated image datasets, a classifier trained on them, and the location of
../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, TINY, make_class_folders


@pytest.fixture(autouse=True)
def oculi_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test keeps oculi's state (job store, job folders) in a fresh temp folder, never in ~/.oculi."""
    home = tmp_path_factory.mktemp("oculi-home")
    monkeypatch.setenv("OCULI_HOME", str(home))
    monkeypatch.delenv("OCULI_DATABASE_URL", raising=False)
    return home


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"train": folder, "validation": folder}`` of the three generated classes."""
    root = tmp_path_factory.mktemp("tiny")
    return {"train": make_class_folders(root / "train", per_class=16, seed=1),
            "validation": make_class_folders(root / "validation", per_class=6, seed=2)}


@pytest.fixture(scope="session")
def classifier(tiny_split: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch ResNet-20 image-classification bundle (32×32 inputs) of the three generated classes; tests
    that change a bundle copy it first."""
    from oculi.engine.training import train

    out = tmp_path_factory.mktemp("classifier") / "model"
    train("image-classification", tiny_split, TINY, output=out, progress=False, echo=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip when it is absent (e.g. on a user's machine)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
