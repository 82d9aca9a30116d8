"""Labeling jobs in the store: Ground Truth's shapes and counters, the leased item queue, autosave, and the output
manifest read back by oculi's own readers (what `oculi train` reads)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oculi.errors import ConfigError, DataError, JobError
from oculi.jobs.store import JobStore
from oculi.labeling import LabelingJob, jobs
from oculi.labeling.masks import decode_runs, encode_runs, load_values, mask_path
from tests.helpers import make_class_folders

CLASSES = ["circle", "square", "stripes"]


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A flat folder of 9 generated images and their true class by file name."""
    source = make_class_folders(tmp_path / "classes", per_class=3, size=24, seed=4)
    flat = tmp_path / "flat"
    flat.mkdir()
    truth = {}
    for path in sorted(source.rglob("*.png")):
        shutil.copy(path, flat / path.name)
        truth[path.name] = path.parent.name
    return flat, truth


def _truth_of(item: dict, truth: dict[str, str]) -> dict:
    return {"classes": [CLASSES.index(truth[Path(item["source"]["image"]).name])]}


def test_create_describe_counters_and_status(images: tuple[Path, dict[str, str]]) -> None:
    flat, truth = images
    job = LabelingJob.create("shapes-1", "classification", flat, "circle,square,stripes",
                             instructions="Pick the shape.")
    described = job.describe()
    assert described["LabelingJobName"] == "shapes-1"
    assert described["LabelingJobStatus"] == "InProgress"
    assert described["LabelAttributeName"] == "shapes-1"
    assert [c["label"] for c in described["LabelCategoryConfig"]["labels"]] == CLASSES
    assert described["HumanTaskConfig"]["TaskDescription"] == "Pick the shape."
    assert described["LabelCounters"] == {"TotalLabeled": 0, "HumanLabeled": 0, "MachineLabeled": 0,
                                          "FailedNonRetryableError": 0, "Unlabeled": 9}
    manifest = Path(described["InputConfig"]["DataSource"]["S3DataSource"]["ManifestS3Uri"])
    assert len(manifest.read_text().splitlines()) == 9
    item = jobs.next_item("shapes-1", "alice")
    jobs.save_label("shapes-1", item["idx"], _truth_of(item, truth), "alice")
    counters = job.describe()["LabelCounters"]
    assert (counters["HumanLabeled"], counters["TotalLabeled"], counters["Unlabeled"]) == (1, 1, 8)
    assert [j["LabelingJobName"] for j in LabelingJob.list()] == ["shapes-1"]
    stopped = job.stop()
    assert stopped["LabelingJobStatus"] == "Stopped"
    assert len(Path(stopped["LabelingJobOutput"]["OutputDatasetS3Uri"]).read_text().splitlines()) == 1
    with pytest.raises(JobError, match="Stopped"):
        jobs.save_label("shapes-1", item["idx"], {"classes": [0]}, "alice")


def test_queue_hands_each_item_to_one_person(images: tuple[Path, dict[str, str]]) -> None:
    flat, _ = images
    jobs.create("queue-1", "classification", flat, CLASSES)
    a = jobs.next_item("queue-1", "alice")
    b = jobs.next_item("queue-1", "bob")
    assert a["idx"] != b["idx"]
    ahead = jobs.next_item("queue-1", "alice", exclude=(a["idx"],))  # the prefetched next image
    assert ahead["idx"] not in (a["idx"], b["idx"])
    for _ in range(3):  # reloads: alice gets back the image she holds, bob his
        assert jobs.next_item("queue-1", "alice")["idx"] == a["idx"]
        assert jobs.next_item("queue-1", "bob")["idx"] == b["idx"]
    store = JobStore()
    store.release_item("queue-1", a["idx"], "alice")  # a skipped image goes back to the queue
    assert jobs.next_item("queue-1", "carol")["idx"] == a["idx"]
    # an expired lease is free again
    taken = jobs.next_item("queue-1", "dave", lease_seconds=0.01)
    time.sleep(0.05)
    assert jobs.next_item("queue-1", "erin", exclude=tuple(range(taken["idx"]))).get("idx") == taken["idx"]


def test_everything_labeled_completes_and_writes_ground_truth_lines(images: tuple[Path, dict[str, str]]) -> None:
    from oculi.data.formats.manifest import read_manifest

    flat, truth = images
    jobs.create("done-1", "classification", flat, CLASSES)
    seen = []
    while (item := jobs.next_item("done-1", "alice")) is not None:
        jobs.save_label("done-1", item["idx"], _truth_of(item, truth), "alice")
        seen.append(item["idx"])
    assert sorted(seen) == list(range(9))
    job = JobStore().labeling_job("done-1")
    assert job["status"] == "Completed"
    lines = [json.loads(t) for t in jobs.output_manifest(job).read_text().splitlines()]
    first = lines[0]
    meta = first["done-1-metadata"]
    assert meta["type"] == "groundtruth/image-classification"
    assert meta["human-annotated"] == "yes" and meta["job-name"] == "labeling-job/done-1"
    assert meta["class-name"] == truth[Path(first["source-ref"]).name]
    assert set(meta) >= {"confidence", "creation-date"}
    read = read_manifest(jobs.output_manifest(job))
    assert read.classes == sorted(set(truth.values()))
    assert {s.image.name: read.classes[s.target] for s in read.samples} == truth


def test_multilabel_lines(images: tuple[Path, dict[str, str]]) -> None:
    flat, _ = images
    jobs.create("multi-1", "classification", flat, CLASSES, multi_label=True)
    item = jobs.next_item("multi-1", "alice")
    jobs.save_label("multi-1", item["idx"], {"classes": [2, 0]}, "alice")
    with pytest.raises(ConfigError, match="indices 0–2"):
        jobs.save_label("multi-1", item["idx"], {"classes": [5]}, "alice")
    line = json.loads(jobs.export("multi-1").read_text())
    assert line["multi-1"] == [0, 2]
    assert line["multi-1-metadata"]["type"] == "groundtruth/image-classification-multilabel"
    assert line["multi-1-metadata"]["class-map"] == {"0": "circle", "2": "stripes"}
    with pytest.raises(ConfigError, match="single-label"):
        jobs.create("single-1", "classification", flat, CLASSES)
        item = jobs.next_item("single-1", "alice")
        jobs.save_label("single-1", item["idx"], {"classes": [0, 1]}, "alice")


def test_boxes_in_pixels_round_trip_through_the_detection_reader(tmp_path: Path) -> None:
    from oculi.data.formats.manifest import read_detection_manifest
    from oculi.data.synthetic import write_detection_data

    channels = write_detection_data(tmp_path / "det", count=4, size=(128, 96))
    # a COCO dataset as input: its boxes become pre-labels (proposals), not labels
    job = jobs.create("boxes-1", "detection", channels["train"], ["box", "disc"])
    assert job["spec"]["pre_labels"] == 4
    item = jobs.next_item("boxes-1", "alice")
    assert item["proposal"]["boxes"] and item["label"] is None
    label = {"boxes": [{"box": [10.5, 20.25, 60, 80], "label": 1}, {"box": [200, 5, 90, 30], "label": 0}],
             "width": 128, "height": 96}
    jobs.save_label("boxes-1", item["idx"], label, "alice")
    line = json.loads(jobs.export("boxes-1").read_text())
    assert line["boxes-1"]["image_size"] == [{"width": 128, "height": 96, "depth": 3}]
    assert line["boxes-1"]["annotations"][0] == {"class_id": 1, "left": 10.5, "top": 20.25, "width": 49.5,
                                                 "height": 59.75}
    assert line["boxes-1"]["annotations"][1]["left"] == 90 and line["boxes-1"]["annotations"][1]["width"] == 38
    assert line["boxes-1-metadata"]["type"] == "groundtruth/object-detection"
    assert len(line["boxes-1-metadata"]["objects"]) == 2
    read = read_detection_manifest(jobs.export("boxes-1"))
    target = read.samples[0].target
    assert [read.classes[i] for i in target.labels] == ["disc", "box"]
    assert np.allclose(target.boxes[0], (10.5, 20.25, 60, 80))


def test_masks_round_trip_through_the_mask_manifest_reader(tmp_path: Path) -> None:
    from PIL import Image

    from oculi.data.formats.mask_manifest import read_mask_manifest
    from oculi.data.formats.masks import load_mask

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / "a.png")
    job = jobs.create("cells-1", "segmentation", folder, ["cell"])
    assert job["label_attribute"] == "cells-1-ref" and job["spec"]["categories"] == ["BACKGROUND", "cell"]
    values = np.zeros((30, 40), np.uint8)
    values[5:15, 10:30] = 1
    assert np.array_equal(decode_runs(encode_runs(values), 40, 30), values)
    with pytest.raises(DataError, match="40×30"):
        jobs.save_label("cells-1", 0, {"width": 40, "height": 30}, "alice", mask=values[:20])
    jobs.save_label("cells-1", 0, {"width": 40, "height": 30}, "alice", mask=values)
    assert np.array_equal(load_values(mask_path(jobs.output_dir(job), 0)), values)
    line = json.loads(jobs.export("cells-1").read_text())
    assert Path(line["cells-1-ref"]) == mask_path(jobs.output_dir(job), 0)
    meta = line["cells-1-ref-metadata"]
    assert meta["type"] == "groundtruth/semantic-segmentation"
    assert meta["internal-color-map"]["1"]["class-name"] == "cell"
    read = read_mask_manifest(jobs.export("cells-1"))
    assert read.classes == ["BACKGROUND", "cell"]
    assert np.array_equal(load_mask(read.samples[0].target), values.astype(np.int64))


def test_user_mistakes_are_named(tmp_path: Path, images: tuple[Path, dict[str, str]]) -> None:
    flat, _ = images
    with pytest.raises(DataError, match="does not exist"):
        jobs.create("x-1", "classification", tmp_path / "nowhere", CLASSES)
    with pytest.raises(ConfigError, match="repeats"):
        jobs.create("x-1", "classification", flat, "a,a")
    with pytest.raises(ConfigError, match="multi-label"):
        jobs.create("x-1", "detection", flat, CLASSES, multi_label=True)
    with pytest.raises(JobError, match="not valid"):
        jobs.create("bad name", "classification", flat, CLASSES)
    jobs.create("x-1", "classification", flat, CLASSES)
    with pytest.raises(JobError, match="already exists"):
        jobs.create("x-1", "classification", flat, CLASSES)
    with pytest.raises(JobError, match="oculi label list"):
        jobs.describe("nope")


def test_cli(images: tuple[Path, dict[str, str]]) -> None:
    from oculi.cli import app

    flat, _ = images
    runner = CliRunner()
    made = runner.invoke(app, ["label", "create", "cli-1", "--task", "classification", "--input", str(flat),
                               "--classes", "circle,square,stripes"])
    assert made.exit_code == 0, made.output
    assert "9 images" in made.output
    listed = runner.invoke(app, ["label", "list"])
    assert "cli-1" in listed.output and "InProgress" in listed.output
    described = runner.invoke(app, ["label", "describe", "cli-1"])
    assert json.loads(described.output)["LabelCounters"]["Unlabeled"] == 9
    exported = runner.invoke(app, ["label", "export", "cli-1"])
    assert exported.exit_code == 0 and "output.manifest" in exported.output
    assert runner.invoke(app, ["label", "stop", "cli-1"]).exit_code == 0
    assert JobStore().labeling_job("cli-1")["status"] == "Stopped"


def test_mask_dataset_labels_become_mask_proposals(tmp_path: Path) -> None:
    from oculi.data.synthetic import write_segmentation_data
    from oculi.labeling.masks import proposal_path

    write_segmentation_data(tmp_path / "seg", count=3, size=(64, 48))
    job = jobs.create("seg-pre", "segmentation", tmp_path / "seg", ["0", "1", "2"])  # the dataset's class names
    items = JobStore().labeling_items("seg-pre")
    assert len(items) == 3 + 2  # train and validation images
    for item in items:
        image = Path(item["source"]["image"])
        truth = np.asarray(Image.open(image.parent.parent / f"{image.parent.name}_annotation" / image.name))
        proposal = load_values(proposal_path(jobs.output_dir(job), item["idx"]))
        assert item["proposal"] == {"width": 64, "height": 48}
        assert np.array_equal(proposal, truth)


def test_chained_s3_manifest_keeps_its_lines_and_trains_on_local_files(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / "images" / "a.jpg")
    earlier = {"source-ref": "s3://bucket/photos/a.jpg", "old": 1, "old-metadata": {"class-name": "x"}}
    (tmp_path / "input.manifest").write_text(json.dumps(earlier) + "\n")
    job = jobs.create("chain-1", "classification", tmp_path / "input.manifest", CLASSES, label_attribute="new")
    jobs.save_label("chain-1", 0, {"classes": [1]}, "alice")
    line = json.loads(jobs.export("chain-1").read_text())
    assert {k: line[k] for k in earlier} == earlier  # Ground Truth's chaining: the input line plus the new label
    assert line["new"] == 1 and line["new-metadata"]["class-name"] == "square"
    local = json.loads(jobs.write_manifest(tmp_path / "local.manifest", JobStore().labeling_items("chain-1"), job,
                                           local=True).read_text())
    assert local["source-ref"] == str((tmp_path / "images" / "a.jpg").resolve())


def test_labels_in_another_tools_format_become_pre_labels(shared_data: Path) -> None:
    from oculi.tasks import get_task

    via = shared_data / "format-fixtures" / "via" / "via_bbox.json"  # read by the data layer's VIA reader
    read = get_task("detection").data.read_splits(via)["train"]
    job = jobs.create("via-1", "detection", via, read.classes)
    assert job["spec"]["pre_labels"] == len(read.samples)
    by_image = {s.image.resolve(): s.target for s in read.samples}
    for item in JobStore().labeling_items("via-1"):
        target = by_image[Path(item["source"]["image"]).resolve()]
        assert [b["box"] for b in item["proposal"]["boxes"]] == [[round(float(v), 2) for v in box]
                                                               for box in target.boxes]
        assert [b["label"] for b in item["proposal"]["boxes"]] == list(target.labels)


def test_cli_auto_says_what_an_unmet_target_takes(tmp_path: Path) -> None:
    from oculi.cli import app
    from oculi.labeling.auto import items_to_certify
    from tests.helpers import TINY

    source = make_class_folders(tmp_path / "classes", per_class=5, size=24, seed=5)
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(source.rglob("*.png")):
        shutil.copy(path, flat / path.name)
    truth = {p.name: p.parent.name for p in source.rglob("*.png")}
    runner = CliRunner()
    assert runner.invoke(app, ["label", "create", "cli-auto", "--task", "classification", "--input", str(flat),
                               "--classes", ",".join(CLASSES)]).exit_code == 0
    for item in JobStore().labeling_items("cli-auto")[:12]:
        jobs.save_label("cli-auto", item["idx"], _truth_of(item, truth), "alice")
    hyperparameters = [arg for key, value in TINY.items() for arg in ("-p", f"{key}={value}")]
    ran = runner.invoke(app, ["label", "auto", "cli-auto", "--auto-label-accuracy", "0.99", "--holdout", "0.5",
                              *hyperparameters])
    assert ran.exit_code == 0, ran.output
    record = jobs.describe("cli-auto")["AutomatedLabeling"][0]
    assert record["threshold"] is None and 3 <= record["held_out"] <= 9  # about half of the 12 human labels
    text = " ".join(ran.output.split())
    assert f"no confidence met the 0.99 target on {record['held_out']} held-out human labels" in text
    assert f"at least {items_to_certify(0.99)} right in a row" in text and "all 3 images sent to people" in text
