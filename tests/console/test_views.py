"""The console draws each task through the task registry: every registered task names a drawing module the console
ships, and its ``view_labels`` turns a sample of its generated data into the JSON that module draws."""

from __future__ import annotations

import json

import pytest

from oculi.console.app import STATIC
from oculi.data.tasks import recognise
from oculi.tasks import TASKS


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_has_a_view_the_console_ships(name, tmp_path):
    contract = TASKS.get(name)
    module = STATIC / "views" / f"{contract.view}.js"
    assert module.is_file(), f"task {name} names view {contract.view!r} but {module} is missing"
    text = module.read_text()
    assert "export async function drawLabels" in text and "export async function drawAnswer" in text
    channels = contract.data.synthesize(tmp_path, 0)
    # the generated data's root (split layouts, masks) or its train channel (one annotation file), as recognised
    path = next(p for p in (tmp_path, channels["train"]) if recognise(p).name == name)
    sets = contract.data.read_splits(path)
    train = sets["train"]
    labels = contract.view_labels(train.samples[0].target, train.classes)
    json.dumps(labels)  # what the page embeds
    assert labels and all(value not in (None, [], "") for value in labels.values()), labels
