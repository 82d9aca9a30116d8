"""Model-assisted labeling on generated data: pre-labels and the uncertainty queue from a model bundle, automated
labeling whose machine labels meet the accuracy target on held-back truth, and the label → train → evaluate round
trip on the output manifest as Ground Truth writes it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from oculi.errors import ConfigError, JobError
from oculi.jobs.store import JobStore
from oculi.labeling import LabelingJob, jobs
from oculi.labeling.auto import accuracy_lower_bound, items_to_certify, machine_accuracy, pick_threshold
from tests.helpers import TINY, make_class_folders

CLASSES = ["circle", "square", "stripes"]


def _flat(root: Path, per_class: int, seed: int) -> tuple[Path, dict[str, str]]:
    source = make_class_folders(root / "classes", per_class=per_class, seed=seed)
    flat = root / "flat"
    flat.mkdir()
    truth = {}
    for path in sorted(source.rglob("*.png")):
        shutil.copy(path, flat / path.name)
        truth[path.name] = path.parent.name
    return flat, truth


def test_pick_threshold_trusts_an_accuracy_only_as_far_as_its_sample_allows() -> None:
    assert accuracy_lower_bound(7, 7) == pytest.approx(7 / (7 + 1.645**2))  # 0.72: 7 of 7 certifies little
    assert accuracy_lower_bound(51, 51) < 0.95 <= accuracy_lower_bound(52, 52)  # 0.95 takes 52 of 52
    assert accuracy_lower_bound(0, 0) == 0.0
    assert (items_to_certify(0.8), items_to_certify(0.95)) == (11, 52)
    confidences = [1 - i / 100 for i in range(16)]
    correct = [True] * 12 + [False] * 4
    assert pick_threshold(confidences, correct, 0.95) == (None, None, 0)
    assert pick_threshold(confidences, correct, 0.8) == pytest.approx((0.89, 1.0, 12))  # the lowest that holds
    assert pick_threshold(confidences[:6], correct[:6], 0.8) == (None, None, 0)  # 6 of 6: too few to tell
    assert pick_threshold(confidences, [False] * 16, 0.5) == (None, None, 0)
    many = [1 - i / 100 for i in range(70)]
    assert pick_threshold(many, [True] * 60 + [False] * 10, 0.95) == pytest.approx((0.41, 1.0, 60))


def _pre_labels_and_uncertainty_queue(tmp_path: Path, classifier: Path) -> None:
    from oculi.tasks import load_predictor

    flat, _ = _flat(tmp_path / "pre", per_class=3, seed=7)
    job = LabelingJob.create("pre-1", "classification", flat, CLASSES)
    assert job.prelabel(classifier) == 9
    items = JobStore().labeling_items("pre-1")
    predictor = load_predictor(classifier, precision="float32")
    for item in items:
        probs = sorted(predictor.predict(item["source"]["image"]).probabilities, reverse=True)
        assert item["priority"] == pytest.approx(1 - (probs[0] - probs[1]), abs=1e-4)
        assert item["proposal"]["classes"] and item["state"] == "unlabeled"
    most_uncertain = max(items, key=lambda i: (i["priority"], -i["idx"]))
    assert jobs.next_item("pre-1", "alice")["idx"] == most_uncertain["idx"]
    with pytest.raises(ConfigError, match="same classes"):
        LabelingJob.create("pre-2", "classification", flat, ["a", "b", "c"]).prelabel(classifier)
    with pytest.raises(ConfigError, match="classification model"):
        LabelingJob.create("pre-3", "detection", flat, CLASSES).prelabel(classifier)


def test_automated_labeling_meets_the_target_on_held_back_truth(tmp_path: Path) -> None:
    import oculi

    flat, truth = _flat(tmp_path, per_class=30, seed=3)
    job = LabelingJob.create("auto-1", "classification", flat, CLASSES)
    store = JobStore()
    items = store.labeling_items("auto-1")
    expected = {i["idx"]: {"classes": [CLASSES.index(truth[Path(i["source"]["image"]).name])]} for i in items}
    with pytest.raises(JobError, match="at least 10"):
        job.auto_label(accuracy=0.9)
    with pytest.raises(ConfigError, match="no finite sample proves an accuracy of 1"):
        job.auto_label(accuracy=1.0)
    for item in items[::2]:  # people label half
        jobs.save_label("auto-1", item["idx"], expected[item["idx"]], "alice")
    target = 0.8
    # half the human labels held out: a 0.8 target needs at least 11 right in a row to be certified
    record = job.auto_label(accuracy=target, holdout=0.5, hyperparameters={**TINY, "epochs": "10"})
    assert record["machine_labeled"] > 0, {k: record[k] for k in ("held_out", "held_out_accuracy", "measured_on")}
    accuracy, count = machine_accuracy(expected, "auto-1")
    assert count == record["machine_labeled"]
    assert accuracy >= target, (accuracy, record)
    counters = job.describe()["LabelCounters"]
    assert counters["MachineLabeled"] == record["machine_labeled"]
    assert counters["HumanLabeled"] == len(items[::2])
    assert counters["Unlabeled"] == record["sent_to_people"]
    assert store.find(record["training_job"])["status"] == "Completed"  # an ordinary training job
    described = job.describe()
    assert described["AutomatedLabeling"][0]["measured_accuracy"] >= target
    lines = [json.loads(t) for t in job.export().read_text().splitlines()]
    machine = [x for x in lines if x["auto-1-metadata"]["human-annotated"] == "no"]
    assert len(machine) == record["machine_labeled"]
    assert all(x["auto-1-metadata"]["confidence"] >= record["threshold"] for x in machine)
    # the output manifest trains and evaluates as it is
    model = tmp_path / "model"
    oculi.train("image-classification", {"train": str(job.export())}, TINY, output=model, progress=False,
                echo=lambda *_: None)
    report = oculi.evaluate(model, job.export(), progress=False)
    assert report.num_images == counters["TotalLabeled"]
    assert 0.0 <= report.metrics["accuracy"] <= 1.0

    # the round's model pre-labels another job: proposals, and the queue ordered by its uncertainty (margin)
    _pre_labels_and_uncertainty_queue(tmp_path, Path(record["model"]))
