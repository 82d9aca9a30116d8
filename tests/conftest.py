"""Shared fixtures: tiny generated image datasets and the location of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SHARED_DATA, make_class_folders


@pytest.fixture(scope="session")
def tiny_split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{"train": folder, "validation": folder}`` of the three generated classes."""
    root = tmp_path_factory.mktemp("tiny")
    return {"train": make_class_folders(root / "train", per_class=16, seed=1),
            "validation": make_class_folders(root / "validation", per_class=6, seed=2)}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or a skip when it is absent (e.g. on a user's machine)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA
