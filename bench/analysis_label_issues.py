"""Data audit on hymenoptera with known problems: 5 % of the training labels flipped at random and 10 training
photos re-encoded (resized to 70 %, JPEG quality 60) and placed in val.

Prints precision and recall of the flipped labels found (out-of-fold: ``--folds`` short trainings as jobs) and of
the leaked duplicates, with the wall time (fold trainings included); then the same cleanlab step fed in-sample
predictions of one model trained on everything (``--model``), for comparison.

Usage: .venv/bin/python bench/analysis_label_issues.py [--folds 3] [-p image_shape=3,128,128] [--data PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image

from oculi.analysis.audit import audit
from oculi.analysis.labels import FOLD_HYPERPARAMETERS
from oculi.data.formats.manifest import write_manifest
from oculi.engine.training import train
from oculi.types import Sample, SampleSet

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "hymenoptera_data"


def prepare(source: Path, root: Path, seed: int) -> tuple[Path, Path, set[str], set[str]]:
    """Copy hymenoptera, write train/val manifests with 5 % flipped training labels and 10 leaked copies;
    returns the two manifests and the flipped and leaked files."""
    rng = random.Random(seed)
    classes = ["ants", "bees"]
    sets = {}
    for split in ("train", "val"):
        samples = []
        for index, name in enumerate(classes):
            for f in sorted((source / split / name).iterdir()):
                if f.suffix.lower() in (".jpg", ".jpeg"):
                    (root / split / name).mkdir(parents=True, exist_ok=True)
                    shutil.copy(f, root / split / name / f.name)
                    samples.append(Sample(root / split / name / f.name, index))
        sets[split] = samples
    flipped = set(rng.sample(range(len(sets["train"])), round(0.05 * len(sets["train"]))))
    train_samples = [Sample(s.image, 1 - s.target) if n in flipped else s for n, s in enumerate(sets["train"])]
    leaked = set()
    for n in rng.sample(sorted(set(range(len(train_samples))) - flipped), 10):
        s = train_samples[n]
        img = Image.open(s.image).convert("RGB")
        copy = root / "val" / f"copy_{s.image.name}"
        img.resize((int(img.width * 0.7), int(img.height * 0.7))).save(copy, quality=60)
        sets["val"].append(Sample(copy, s.target))
        leaked.add(str(copy))
    train_manifest = write_manifest(SampleSet(train_samples, classes), root / "train.manifest")
    val_manifest = write_manifest(SampleSet(sets["val"], classes), root / "val.manifest")
    return train_manifest, val_manifest, {str(train_samples[n].image) for n in flipped}, leaked


def score(report, kind: str, truth: set[str]) -> str:
    """Precision / recall of the flagged findings of ``kind`` against ``truth``."""
    got = {f.file for f in report.findings if f.kind == kind}
    hits = len(got & truth)
    return f"{kind}: flagged {len(got)}, true {hits}/{len(truth)} → precision {hits / max(len(got), 1):.2f}, " \
           f"recall {hits / len(truth):.2f}"


def main() -> int:
    """Run the out-of-fold audit and the in-sample comparison and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("-p", "--hyperparameter", action="append", default=[])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    hp = dict(item.split("=", 1) for item in args.hyperparameter)
    work = Path(tempfile.mkdtemp(prefix="oculi-audit-bench-"))
    os.environ.setdefault("OCULI_HOME", str(work / "home"))
    train_manifest, val_manifest, flipped, leaked = prepare(args.data, work / "data", args.seed)
    channels = [f"train={train_manifest}", f"validation={val_manifest}"]
    print(f"{len(flipped)} flipped training labels, {len(leaked)} leaked copies; fold hyperparameters "
          f"{ {**FOLD_HYPERPARAMETERS, **hp} }", flush=True)
    start = time.perf_counter()
    report = audit(channels, work / "oof", folds=args.folds, hyperparameters=hp, progress=False)
    print(f"out-of-fold ({args.folds} folds), wall time {time.perf_counter() - start:.0f} s")
    print("  " + score(report, "label_issue", flipped))
    print("  " + score(report, "leakage", leaked), flush=True)
    start = time.perf_counter()
    full = train("image-classification", {"train": train_manifest, "validation": val_manifest},
                 {**FOLD_HYPERPARAMETERS, **hp}, output=work / "full", progress=False, echo=lambda *_: None)
    in_sample = audit(channels, work / "in-sample", model=full.model_dir, progress=False)
    print(f"in-sample (one model on everything), wall time {time.perf_counter() - start:.0f} s")
    print("  " + score(in_sample, "label_issue", flipped), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
