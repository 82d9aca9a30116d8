"""Automated labeling on ../shared/data/bees (prints the figures; not part of the test run).

The bees' Ground Truth manifest (400 images) is split once: the last ``--test`` images are the test set, the first
``--human`` of the rest are labelled by "people" (their Ground Truth boxes saved as human labels), the others are
left to the machine with their true boxes held back. One round of automated labeling at ``--accuracy`` (a training
job of object-detection with ``--budget`` seconds of ``max_runtime``) labels what it is sure of; the figures are
how many it labels and how many of those match the held-back truth (every box at IoU ≥ 0.5, same class). Then two
models with the same budget and hyperparameters: one on human + machine labels (the job's output manifest), one on
all the training images' human labels; mAP@0.5 of both on the test set.

Usage: python bench/labeling_bees.py [--human 50] [--test 50] [--budget 60] [--accuracy 0.95]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the round and the two trainings; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--human", type=int, default=50)
    parser.add_argument("--test", type=int, default=50)
    parser.add_argument("--budget", type=int, default=60, help="max_runtime seconds of each training")
    parser.add_argument("--accuracy", type=float, default=0.95)
    parser.add_argument("-p", "--hyperparameter", action="append", default=[], help="key=value for every training")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="oculi-bees-"))
    os.environ["OCULI_HOME"] = str(home)
    sys.path.insert(0, str(ROOT))
    import oculi
    from oculi.config import parse_assignments
    from oculi.jobs.store import JobStore
    from oculi.labeling import LabelingJob, jobs
    from oculi.labeling.auto import machine_accuracy
    from tests.helpers import SHARED_DATA

    bees = SHARED_DATA / "bees"
    lines = (bees / "train.manifest").read_text().splitlines()
    (home / "images").symlink_to(bees / "images")
    train_lines, test_lines = lines[: -args.test], lines[-args.test:]
    for name, chosen in (("train.manifest", train_lines), ("test.manifest", test_lines)):
        (home / name).write_text("\n".join(chosen) + "\n")
    hyperparameters = {"max_runtime": str(args.budget), **parse_assignments(args.hyperparameter)}
    job = LabelingJob.create("bees-auto", "detection", home / "train.manifest", ["bee"])  # GT boxes → proposals
    store = JobStore()
    items = store.labeling_items("bees-auto")
    truth = {i["idx"]: i["proposal"] for i in items}
    for item in items[: args.human]:
        jobs.save_label("bees-auto", item["idx"], truth[item["idx"]], "bench")
    started = time.perf_counter()
    record = job.auto_label(accuracy=args.accuracy, hyperparameters=hyperparameters, min_human=min(10, args.human))
    machine_acc, machine_n = machine_accuracy({k: v for k, v in truth.items() if k >= args.human}, "bees-auto")
    print(json.dumps({k: record[k] for k in ("threshold", "measured_accuracy", "measured_on", "machine_labeled",
                                              "sent_to_people")}))
    print(f"automated labeling from {args.human} human labels: {machine_n} of {len(items) - args.human} images "
          f"machine-labeled at the {args.accuracy} target, {machine_acc:.3f} of them right on the held-back truth "
          f"({time.perf_counter() - started:.0f} s)")
    scores = {}
    roots = {"s3://sagemaker-remars/datasets/na-bees/500": bees / "images"}  # the manifests' S3 image references
    runs = (("human + machine", job.export(), "bees-auto"), ("all human", home / "train.manifest", "bees-500"))
    for label, manifest, attribute in runs:
        out = home / label.replace(" ", "").replace("+", "-")
        oculi.train("object-detection", {"train": str(manifest)}, {**hyperparameters, "label_attribute": attribute},
                    output=out, progress=False, echo=lambda *_: None, image_roots=roots)
        report = oculi.evaluate(out, home / "test.manifest", progress=False, image_roots=roots)
        scores[label] = report.metrics["mAP_50"]
        print(f"mAP@0.5 on {args.test} test images, trained on {label} labels ({args.budget} s budget): "
              f"{scores[label]:.3f}")


if __name__ == "__main__":
    main()
