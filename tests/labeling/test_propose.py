"""Every task's ``propose`` hook (pre-labels, confidence, uncertainty) on a tiny model of its first built-in
algorithm, and pre-labeling a job of that task with it: proposals the annotation kind accepts, the queue ordered by
uncertainty, segmentation proposals as full-size mask files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.algorithms import ALGORITHMS
from oculi.data.tasks import DATA_TASKS
from oculi.engine.training import train
from oculi.jobs.store import JobStore
from oculi.labeling import LabelingJob, jobs
from oculi.labeling.auto import default_algorithm
from oculi.labeling.kinds import KINDS
from oculi.labeling.masks import load_values, proposal_path
from oculi.tasks import TASKS, get_task, load_predictor

# the tiny configuration, one epoch
FAST = {"object-detection": {"epochs": "1", "image_shape": "96"}, "semantic-segmentation": {"epochs": "1"}}


# classification's proposals and queue are checked in test_auto.py (on a better-trained model)
@pytest.mark.parametrize("task", [t for t in TASKS if t != "classification"])
def test_propose_and_prelabel(task: str, tmp_path: Path) -> None:
    contract = get_task(task)
    assert contract.propose is not None, f"task {task} has no labeling proposals"
    name = default_algorithm(task)
    channels = DATA_TASKS.get(task).synthesize(tmp_path / "data", 0)
    hyperparameters = {**ALGORITHMS.get(name).tiny_hyperparameters, "checkpoint_interval": "0", **FAST.get(name, {})}
    result = train(name, channels, hyperparameters, output=tmp_path / "model", progress=False,
                   echo=lambda *_: None)
    images = sorted(p for p in (tmp_path / "data").rglob("*.png") if "annotation" not in str(p))[:4]
    predictor = load_predictor(result.model_dir, precision="float32")
    proposals = contract.propose(predictor, images, 0.3)
    assert len(proposals) == len(images)
    kind = KINDS.get(contract.annotation_kind)
    for image, proposal in zip(images, proposals, strict=True):
        assert 0.0 <= proposal.confidence <= 1.0 and 0.0 <= proposal.uncertainty <= 1.0
        kind.check(proposal.label, result.classes, False)  # a proposal is a label the page can save as it is
        if proposal.mask is not None:
            with Image.open(image) as opened:
                assert proposal.mask.shape == (opened.height, opened.width)
            assert int(proposal.mask.max()) < len(result.classes)
    folder = tmp_path / "to-label"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    classes = result.classes  # for segmentation "0" is already the background: no BACKGROUND added
    job = LabelingJob.create(f"pre-{task}", task, folder, classes)
    assert job.describe()["LabelCategoryConfig"]["labels"] == [{"label": c} for c in classes]
    assert job.prelabel(result.model_dir, threshold=0.3) == len(images)
    items = JobStore().labeling_items(f"pre-{task}")
    assert all(i["proposal"] is not None for i in items)
    first = jobs.next_item(f"pre-{task}", "alice")
    assert first["priority"] == max(i["priority"] for i in items)
    if kind.attribute_suffix == "-ref":
        row = JobStore().labeling_job(f"pre-{task}")
        values = load_values(proposal_path(jobs.output_dir(row), first["idx"]))
        assert values.shape == (first["proposal"]["height"], first["proposal"]["width"])
        assert np.isin(np.unique(values), np.arange(len(classes))).all()
