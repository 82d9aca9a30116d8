"""Object detection quality on real data under a CPU budget, the curve over time included.

``--dataset bees`` (default): the seeds' own task, ../shared/data/bees (AWS's Ground Truth bee labeling job, 400
images, one class): a seeded 320/80 train/validation split of the manifest's lines, written as manifests.
``--dataset coco-person``: the ``person`` boxes of ../shared/data/coco128 (many small, crowded people; other
classes' boxes dropped, images without a person kept as negatives): a seeded 102/26 split of the 128 images (two
label files without an image are left out), written as COCO JSON.

Trains ``object-detection`` (efficientnet-lite0 with its shipped ImageNet weights unless ``-p`` says otherwise)
and prints validation mAP at IoU 0.5 after every epoch with the elapsed training time, then the kept (best) epoch
and ``oculi evaluate``'s mAP@0.5 and mAP@[.5:.95] of the bundle on the validation split.
``--nms 0.45,0.5,0.6`` then re-evaluates the bundle with each NMS IoU threshold (post-processing only, no
retraining). ``--write-yolo DIR`` only writes the split as YOLO folders ``DIR/train`` and ``DIR/validation``
(images copied) for ``bench/yolo_baseline.py``.

Usage: .venv/bin/python bench/detection_quality.py [--dataset bees] [--epochs 20] [-p max_runtime=900 …]
       [--nms 0.45,0.5,0.6]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

import oculi
from oculi.data.detection import read_detection
from oculi.data.formats.coco import write_coco
from oculi.data.formats.yolo import write_yolo
from oculi.engine.training import train
from oculi.tasks import load_predictor
from oculi.types import BoxTarget, SampleSet

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BEES_PREFIX = "s3://sagemaker-remars/datasets/na-bees/500"


def bees_split(data: Path, folder: Path, seed: int) -> dict[str, Path]:
    """Shuffle the bees manifest's 400 lines with ``seed``; write 320 to ``train.manifest`` and 80 to
    ``validation.manifest`` in ``folder``."""
    lines = [line for line in (data / "bees" / "train.manifest").read_text().splitlines() if line.strip()]
    random.Random(seed).shuffle(lines)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"train": folder / "train.manifest", "validation": folder / "validation.manifest"}
    paths["train"].write_text("\n".join(lines[80:]) + "\n")
    paths["validation"].write_text("\n".join(lines[:80]) + "\n")
    return paths


def person_only(sample_set: SampleSet) -> SampleSet:
    """Keep only the ``person`` boxes (class 0 of COCO); every image stays, as a negative when it has none."""
    person = sample_set.classes.index("person")
    samples = []
    for sample in sample_set.samples:
        t = sample.target
        keep = [i for i, label in enumerate(t.labels) if label == person]
        target = BoxTarget(tuple(t.boxes[i] for i in keep), (0,) * len(keep), tuple(t.difficult[i] for i in keep),
                           t.width, t.height)
        samples.append(replace(sample, target=target))
    return SampleSet(samples, ["person"], task="detection", format=sample_set.format, source=sample_set.source)


def coco_person_split(data: Path, folder: Path, seed: int) -> dict[str, Path]:
    """Seeded 102/26 split of coco128's person boxes, written as ``train.json`` / ``validation.json``."""
    people = person_only(read_detection(data / "coco128" / "object_detection"))
    samples = sorted(people.samples, key=lambda s: s.image.name)
    random.Random(seed).shuffle(samples)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, part in (("train", samples[26:]), ("validation", samples[:26])):
        paths[name] = folder / f"{name}.json"
        write_coco(SampleSet(part, ["person"], task="detection"), paths[name])
    return paths


def main() -> int:
    """Split, train, print the mAP curve."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("bees", "coco-person"), default="bees")
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--seed", type=int, default=0, help="split seed")
    parser.add_argument("--epochs", type=int, help="default 20, or with -p max_runtime=… as many as the budget "
                        "allows (epochs=auto)")
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--nms", type=lambda v: [float(x) for x in v.split(",")], default=[],
                        help="after training, re-evaluate the bundle at each of these NMS IoU thresholds, e.g. "
                        "0.45,0.5,0.6")
    parser.add_argument("--write-yolo", type=Path, help="only write the split as YOLO folders under this folder")
    args = parser.parse_args()
    needed = args.data / ("bees/train.manifest" if args.dataset == "bees" else "coco128/object_detection")
    if not needed.exists():
        print(f"{needed} not found; pass --data PATH (the folder holding bees/ and coco128/)")
        return 1
    work = Path(tempfile.mkdtemp(prefix=f"oculi-{args.dataset}-"))
    split = (bees_split if args.dataset == "bees" else coco_person_split)(args.data, work / "split", args.seed)
    roots = {BEES_PREFIX: args.data / "bees" / "images"}
    if args.write_yolo:
        for name, path in split.items():
            write_yolo(read_detection(path, image_roots=roots), args.write_yolo / name, copy_images=True)
            print(args.write_yolo / name)
        return 0
    params = {"base_network": "efficientnet-lite0"}
    params.update(kv.split("=", 1) for kv in args.params)
    if args.epochs or "max_runtime" not in params:
        params["epochs"] = str(args.epochs or 20)
    sizes = {name: len(read_detection(path, image_roots=roots)) for name, path in split.items()}
    print(f"CPU cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"{args.dataset}, split seed {args.seed}: {sizes['train']} train / {sizes['validation']} validation; "
          f"hyperparameters {params}\n", flush=True)
    start = time.perf_counter()
    result = train("object-detection", split, params, output=work / "model", image_roots=roots, progress=False,
                   echo=lambda line: print("   ", line, flush=True))
    wall = time.perf_counter() - start
    history = json.loads((work / "model" / "model.json").read_text()).get("history", [])
    print("\nepoch  elapsed_s  validation:mAP@0.5")
    elapsed = 0.0
    for row in history:
        elapsed += float(row.get("seconds", 0))
        print(f"{row['epoch']:>5}  {elapsed:>9.0f}  {row.get('validation:mAP', float('nan')):.4f}")
    print(f"\nbest epoch {result.best_epoch}: validation:mAP {result.metrics['validation:mAP']:.4f}; "
          f"wall time {wall:.0f} s (data check and final save included); bundle {work / 'model'}")
    report = oculi.evaluate(work / "model", split["validation"], image_roots=roots, progress=False)
    print(f"oculi evaluate on the validation split (full-size images, the bundle as served): mAP@0.5 "
          f"{report.metrics['mAP_50']:.4f}, mAP@[.5:.95] {report.metrics['mAP_50_95']:.4f}")
    if args.nms:
        predictor = load_predictor(work / "model", "cpu", precision="float32")
        for iou in args.nms:
            predictor.model.nms_thresh = iou
            report = oculi.evaluate(predictor, split["validation"], image_roots=roots, progress=False)
            print(f"  at nms_threshold {iou}: mAP@0.5 {report.metrics['mAP_50']:.4f}, mAP@[.5:.95] "
                  f"{report.metrics['mAP_50_95']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
