"""Fixtures of the analysis tests: copies of real and generated data with injected problems whose truth is
known, and the audit of flipped labels (whose fold model, an ImageNet EfficientNet-Lite0 fine-tuned briefly, the
search tests reuse as their embedding model)."""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance, ImageFilter

from tests.helpers import COLOURS, SHARED_DATA, make_class_folders

HYMENOPTERA = SHARED_DATA / "hymenoptera" / "hymenoptera_data"
# Fold trainings for the tests: the default transfer set-up (frozen ImageNet Lite0) at 64 px, three epochs.
FOLD_TEST = {"image_shape": "3,64,64", "epochs": "3", "num_workers": "0"}


@dataclass
class Injected:
    """A dataset copy and the files of each injected problem (absolute paths as str)."""

    root: Path
    truth: dict[str, set[str]]


def hymenoptera_copy(root: Path, per_class: int = 40, val_per_class: int = 15, seed: int = 0) -> Injected:
    """``root/{train,val}/{ants,bees}`` with the first hymenoptera photos, then: 5 resized JPEG re-encodings of
    training photos (every other one also cropped by 4 % a side) placed in val (leakage), 4 training photos
    blurred and 5 darkened in place."""
    if not HYMENOPTERA.is_dir():
        pytest.skip(f"real data folder {HYMENOPTERA} is absent")
    rng = random.Random(seed)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for name in ("ants", "bees"):
            (root / split / name).mkdir(parents=True)
            for f in sorted((HYMENOPTERA / split / name).glob("*.jpg"))[:count]:
                shutil.copy(f, root / split / name / f.name)
    picked = rng.sample(sorted((root / "train").rglob("*.jpg")), 14)
    truth: dict[str, set[str]] = {"leakage": set(), "blurry": set(), "dark": set()}
    for n, f in enumerate(picked[:5]):
        img = Image.open(f).convert("RGB")
        if n % 2:
            img = img.crop((img.width * 0.04, img.height * 0.04, img.width * 0.96, img.height * 0.96))
        copy = root / "val" / f.parent.name / f"copy_{f.stem}.jpg"
        img.resize((int(img.width * 0.7), int(img.height * 0.7))).save(copy, quality=60)
        truth["leakage"].add(str(copy))
    for f in picked[5:9]:
        Image.open(f).convert("RGB").filter(ImageFilter.GaussianBlur(4)).save(f, quality=90)
        truth["blurry"].add(str(f))
    for f in picked[9:]:
        ImageEnhance.Brightness(Image.open(f).convert("RGB")).enhance(0.15).save(f, quality=90)
        truth["dark"].add(str(f))
    return Injected(root, truth)


def flipped_copy(root: Path, flips: int = 6, seed: int = 0) -> Injected:
    """The generated three-class folders (20 per class) with ``flips`` images moved to another class folder."""
    make_class_folders(root, per_class=20, seed=1)
    rng = random.Random(seed)
    truth: set[str] = set()
    for f in rng.sample(sorted(root.rglob("*.png")), flips):
        other = rng.choice([c for c in COLOURS if c != f.parent.name])
        moved = root / other / f"flipped_{f.name}"
        f.rename(moved)
        truth.add(str(moved))
    return Injected(root, {"label_issue": truth})


@dataclass
class LabelAudit:
    """The audit of :func:`flipped_copy` data and where its state lives."""

    data: Injected
    report: object
    output: Path
    home: Path


@pytest.fixture(scope="session")
def label_audit(tmp_path_factory: pytest.TempPathFactory) -> LabelAudit:
    """Audit generated data with 6 flipped labels, 2 folds (its own OCULI_HOME, so the fold jobs stay there)."""
    from oculi.analysis.audit import audit

    home = tmp_path_factory.mktemp("label-audit-home")
    data = flipped_copy(tmp_path_factory.mktemp("flipped") / "train")
    output = tmp_path_factory.mktemp("label-audit") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OCULI_HOME", str(home))
        report = audit([data.root], output, folds=2, hyperparameters=FOLD_TEST, progress=False,
                       echo=lambda _line: None)
    return LabelAudit(data, report, output, home)
