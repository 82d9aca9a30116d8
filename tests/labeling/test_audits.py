"""An audit's suspects sent to a labeling job (``oculi data audit --send-to-labeling``, ``oculi label
add-from-audit``): created with the items' labels as pre-labels, no duplicates on a second send, a clear error for a
job of other classes, a Completed job reopened; and the audit recorded in the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oculi.analysis.audit import audit
from oculi.cli import app
from oculi.errors import ConfigError
from oculi.jobs.store import JobStore
from oculi.labeling import jobs
from oculi.labeling.audits import AUDIT, list_audits, read_audit, send_to_labeling, suspects
from tests.data.detection_helpers import make_detection_set
from tests.helpers import make_class_folders

CLASSES = ["circle", "square", "stripes"]


def leaky_folders(root: Path) -> Path:
    """``root/{train,val}/<class>`` of generated images, with 2 training images copied into val (leakage, one
    as another class: a wrong label) and one resized copy within train (a near duplicate)."""
    make_class_folders(root / "train", per_class=8, seed=1)
    make_class_folders(root / "val", per_class=3, seed=2)
    shutil.copy(root / "train" / "circle" / "circle_000.png", root / "val" / "circle" / "leak_circle.png")
    shutil.copy(root / "train" / "square" / "square_001.png", root / "val" / "stripes" / "leak_square.png")
    Image.open(root / "train" / "stripes" / "stripes_002.png").resize((48, 48)).save(
        root / "train" / "stripes" / "copy_stripes.png")
    return root


@pytest.fixture
def audited(tmp_path: Path) -> Path:
    """The output folder of an audit (no label step) of :func:`leaky_folders`."""
    data = leaky_folders(tmp_path / "data")
    audit([data], tmp_path / "audit", labels=False, progress=False, echo=lambda _line: None)
    return tmp_path / "audit"


def test_send_creates_a_job_with_pre_labels_and_a_second_send_adds_nothing(audited: Path) -> None:
    found = suspects(read_audit(audited))
    assert {f["kind"] for f in found} >= {"leakage", "near_duplicate"}
    assert {Path(f["file"]).name for f in found} >= {"leak_circle.png", "leak_square.png"}
    result = send_to_labeling("shapes-relabel", audited)
    assert result["created"] and result["queued"] == len(found) == result["suspects"]
    assert result["status"] == "InProgress" and result["missing"] == 0
    job = JobStore().labeling_job("shapes-relabel")
    assert job["task"] == "classification" and job["spec"]["categories"] == CLASSES
    items = {Path(i["source"]["image"]).name: i for i in JobStore().labeling_items("shapes-relabel")}
    assert len(items) == len(found)
    # the labels the dataset gives them are the pre-labels: the labeler corrects the wrong one
    assert items["leak_circle.png"]["proposal"] == {"classes": [CLASSES.index("circle")]}
    assert items["leak_square.png"]["proposal"] == {"classes": [CLASSES.index("stripes")]}
    assert all(i["state"] == "unlabeled" for i in items.values())

    again = send_to_labeling("shapes-relabel", audited)
    assert again["queued"] == 0 and not again["created"]
    assert len(JobStore().labeling_items("shapes-relabel")) == len(found)
    # the audit is recorded once per output folder, with both sends
    (record,) = JobStore().registered(AUDIT)
    assert record["location"] == str(audited.resolve()) and record["info"]["counts"]["leakage"] >= 2
    assert [s["queued"] for s in record["info"]["sent"]] == [len(found), 0]
    assert list_audits(location=audited.parent / "data")[0]["name"] == record["name"]
    assert list_audits(location=audited) == []


def test_a_job_of_other_classes_is_refused_and_a_completed_one_reopens(audited: Path, tmp_path: Path) -> None:
    other = make_class_folders(tmp_path / "other", per_class=2, classes=("circle", "square"))
    jobs.create("two-shapes", "classification", other, ["circle", "square"])
    with pytest.raises(ConfigError) as refused:
        send_to_labeling("two-shapes", audited)
    message = str(refused.value)
    assert "its classes are circle, square" in message and "circle, square, stripes" in message
    assert "two-shapes-audit" in message

    first = make_class_folders(tmp_path / "first", per_class=1)
    jobs.create("shapes", "classification", first, CLASSES)
    for item in JobStore().labeling_items("shapes"):
        jobs.save_label("shapes", item["idx"], {"classes": [0]}, "alice")
    assert jobs.next_item("shapes", "alice") is None and JobStore().labeling_job("shapes")["status"] == "Completed"
    result = send_to_labeling("shapes", audited)
    assert result["queued"] == result["suspects"] > 0 and result["status"] == "InProgress"
    counts = JobStore().label_counts("shapes")
    assert counts == {"human": 3, "unlabeled": result["queued"]}
    assert [i["idx"] for i in JobStore().labeling_items("shapes")] == list(range(3 + result["queued"]))


def test_detection_suspects_keep_their_boxes_as_pre_labels(tmp_path: Path) -> None:
    from oculi.data.formats.coco import write_coco

    sample_set = make_detection_set(tmp_path / "det")
    first = sample_set.samples[0]
    copy = first.image.with_name("a_copy.png")
    shutil.copy(first.image, copy)
    sample_set.samples.append(type(first)(copy, first.target, origin=str(copy)))
    write_coco(sample_set, tmp_path / "det" / "annotations.json")
    audit([tmp_path / "det" / "annotations.json"], tmp_path / "audit", labels=False, progress=False,
          echo=lambda _line: None)
    with pytest.raises(ConfigError, match="unreadable files cannot be shown"):
        send_to_labeling("boxes", tmp_path / "audit", kinds=["exact_duplicate", "unreadable"])
    result = send_to_labeling("boxes", tmp_path / "audit", kinds=["exact_duplicate"])
    assert result["queued"] == 1
    (item,) = JobStore().labeling_items("boxes")
    assert Path(item["source"]["image"]).name in ("a.png", "a_copy.png")
    proposal = item["proposal"]
    assert (proposal["width"], proposal["height"]) == (64, 48)
    assert sorted(b["label"] for b in proposal["boxes"]) == [0, 1] and proposal["boxes"][0]["box"][2] == 30.0


def test_segmentation_suspects_get_their_masks_as_proposals(tmp_path: Path, monkeypatch) -> None:
    from oculi.data import synthetic
    from oculi.labeling.masks import load_values, proposal_path

    monkeypatch.chdir(tmp_path)  # relative channels: audit.json names absolute files, read again from anywhere
    synthetic.write_segmentation_data(Path("seg"), count=8)
    shutil.copy("seg/train/000.png", "seg/validation/leak_000.png")
    shutil.copy("seg/train_annotation/000.png", "seg/validation_annotation/leak_000.png")
    audit(["seg"], Path("out"), labels=False, progress=False, echo=lambda _line: None)
    monkeypatch.chdir(tmp_path / "seg")
    result = send_to_labeling("masks", tmp_path / "out")
    assert (result["queued"], result["missing"]) == (1, 0)
    job = JobStore().labeling_job("masks")
    (item,) = JobStore().labeling_items("masks")
    assert item["source"]["image"] == str(tmp_path / "seg" / "validation" / "leak_000.png")
    truth = np.array(Image.open(tmp_path / "seg" / "train_annotation" / "000.png"))
    assert (load_values(proposal_path(jobs.output_dir(job), item["idx"])) == truth).all()


def test_cli_audit_sends_to_labeling_and_add_from_audit(tmp_path: Path) -> None:
    data = leaky_folders(tmp_path / "data")
    out = tmp_path / "audit"
    result = CliRunner().invoke(app, ["data", "audit", str(data), "-o", str(out), "--no-labels", "--no-progress",
                                      "--send-to-labeling", "shapes-fix"])
    assert result.exit_code == 0, result.output
    queued = len(JobStore().labeling_items("shapes-fix"))
    assert f"queued {queued} suspect" in result.output and "/labeling/shapes-fix" in result.output
    assert "/audits/" in result.output
    again = CliRunner().invoke(app, ["label", "add-from-audit", "shapes-fix", str(out)])
    assert again.exit_code == 0 and "queued 0 suspect" in again.output, again.output
    wrong = CliRunner().invoke(app, ["label", "add-from-audit", "shapes-fix", str(out), "--kinds", "nonsense"])
    assert isinstance(wrong.exception, ConfigError) and "unknown finding kind" in str(wrong.exception)
