"""The engine's named steps on every registered algorithm, without fitting: plan → prepare (the engine builds the
loaders from what the algorithm declares) → the bundle's metadata (dataset fingerprint for every task), the
``auto`` values printed, and the training losses reduced across DDP ranks."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from oculi.algorithms import ALGORITHMS, LoaderSpec
from oculi.artifacts import dataset_fingerprint
from oculi.engine.callbacks import EpochHistory
from oculi.engine.data_order import EpochSampler, ResumableLoader
from oculi.engine.training import Prepared, RunPlan, bundle_meta, plan_run, prepare
from oculi.types import BoxTarget, MaskTarget, Sample
from tests.helpers import TINY
from tests.segmentation.helpers import TINY as TINY_SEGMENTATION
from tests.segmentation.helpers import write_layout
from tests.test_detection_training import TINY_SSD, _shapes_coco


def _channels(algorithm: str, root: Path, tiny_split: dict[str, Path]) -> tuple[dict[str, Any], dict[str, str]]:
    """Generated data and tiny hyperparameters for ``algorithm`` (num_workers left at auto)."""
    if algorithm == "image-classification":
        return dict(tiny_split), {k: v for k, v in TINY.items() if k != "num_workers"}
    if algorithm == "object-detection":
        return ({"train": _shapes_coco(root / "train", 10, 1), "validation": _shapes_coco(root / "val", 4, 2)},
                {k: v for k, v in TINY_SSD.items() if k != "num_workers"} | {"mini_batch_size": "4"})
    write_layout(root, "train", 8, seed=1)
    write_layout(root, "validation", 4, seed=2)
    return ({"train": root / "train", "train_annotation": root / "train_annotation",
             "validation": root / "validation", "validation_annotation": root / "validation_annotation"},
            {k: v for k, v in TINY_SEGMENTATION.items() if k != "num_workers"})


@pytest.fixture(scope="module", params=ALGORITHMS.names())
def steps(request: pytest.FixtureRequest, tiny_split: dict[str, Path],
          tmp_path_factory: pytest.TempPathFactory) -> tuple[RunPlan, Prepared, list[str]]:
    """``(plan, prepared, printed lines)`` of each registered algorithm on generated data."""
    root = tmp_path_factory.mktemp(request.param)
    channels, hp = _channels(request.param, root / "data", tiny_split)
    run = plan_run(request.param, channels, hp, output=root / "model")
    lines: list[str] = []
    torch.manual_seed(0)
    return run, prepare(run, echo=lines.append), lines


def test_plan_reads_nothing_and_refuses_a_used_output(tmp_path: Path, tiny_split: dict[str, Path]) -> None:
    from oculi.errors import ConfigError

    run = plan_run("image-classification", tiny_split, TINY, output=tmp_path / "m")
    assert run.layout.world_size == 1 and run.checkpoint_dir == tmp_path / "m" / "checkpoints"
    assert not (tmp_path / "m").exists()
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds a model bundle"):
        plan_run("image-classification", tiny_split, TINY, output=tmp_path / "m")


def test_the_engine_builds_the_loaders_from_the_algorithms_declaration(steps) -> None:
    run, prepared, _ = steps
    data = prepared.data
    assert isinstance(data.train_data, LoaderSpec) and isinstance(data.val_data, LoaderSpec)
    assert data.train_data.shuffle and data.train_data.weights is None and not data.val_data.shuffle
    loader = prepared.train_loader
    assert isinstance(loader, ResumableLoader) and isinstance(loader.sampler, EpochSampler)
    assert loader.batch_size == run.layout.batch_per_device == prepared.hyperparameters.mini_batch_size
    assert loader.collate_fn is data.train_data.collate_fn or data.train_data.collate_fn is None
    assert loader.sampler.order(0) != loader.sampler.order(1)  # a new permutation each epoch
    assert sorted(loader.sampler.order(0)) == list(range(len(data.train)))
    val = prepared.val_loader
    assert val.batch_size == data.val_data.batch_size
    assert [i for batch in val.batch_sampler for i in batch] == list(range(len(data.validation)))  # in order
    images, _ = next(iter(loader))
    assert images.dtype == torch.uint8 and images.shape[0] == loader.batch_size


def test_balanced_sampling_is_drawn_by_the_engine(tmp_path: Path) -> None:
    from tests.helpers import make_class_folders

    root = tmp_path / "skewed"
    make_class_folders(root, per_class=2, seed=3, classes=("circle",))
    make_class_folders(root, per_class=10, seed=4, classes=("square",))
    run = plan_run("image-classification", {"train": root}, {**TINY, "balanced_sampling": "1",
                                                              "validation_fraction": "0.25"}, output=tmp_path / "m")
    prepared = prepare(run, echo=lambda _line: None)
    spec, sampler = prepared.data.train_data, prepared.train_loader.sampler
    targets = [s.target for s in prepared.data.train.samples]
    assert spec.weights is not None and sampler.weights is not None
    assert sampler.weights.tolist() == pytest.approx([1 / targets.count(t) for t in targets])
    drawn = [targets[i] for epoch in range(20) for i in sampler.order(epoch)]
    assert abs(drawn.count(0) / len(drawn) - 0.5) < 0.1  # the rare class is drawn about as often as the common one
    with pytest.raises(ValueError, match="one weight per sample"):
        LoaderSpec(spec.dataset, 4, weights=[1.0])


def test_num_workers_auto_is_resolved_and_printed(steps) -> None:
    _, prepared, lines = steps
    workers = prepared.hyperparameters.num_workers
    assert isinstance(workers, int)
    assert any(line.startswith(f"num_workers=auto → {workers} (") for line in lines), lines
    assert prepared.train_loader.num_workers == workers == prepared.val_loader.num_workers


def test_every_task_gets_a_dataset_fingerprint(steps) -> None:
    run, prepared, _ = steps
    history = EpochHistory(run.algorithm.metric, run.algorithm.metric_mode, run.output / "metrics.csv",
                           lambda _line: None)
    meta = bundle_meta(run, prepared, history)
    fingerprint = meta["dataset"]["fingerprint"]
    assert re.fullmatch(r"[0-9a-f]{16}", fingerprint), meta["dataset"]
    train, validation = prepared.data.train, prepared.data.validation
    assert fingerprint == dataset_fingerprint([train, validation])
    assert meta["task"] == run.algorithm.task and meta["dataset"]["train_images"] == len(train)
    # another label on one image changes it
    first = train.samples[0]
    if isinstance(first.target, BoxTarget):
        changed = replace(first.target, labels=tuple(1 - label for label in first.target.labels))
    elif isinstance(first.target, MaskTarget):
        changed = replace(first.target, lookup=tuple(reversed(range(256))))
    else:
        changed = (first.target + 1) % len(train.classes)
    relabelled = train.with_samples([Sample(first.image, changed, first.origin), *train.samples[1:]])
    assert dataset_fingerprint([relabelled, validation]) != fingerprint
    # the same samples elsewhere (another root folder) keep it
    moved = [Sample(Path("/elsewhere") / s.image.name, s.target, s.origin) for s in train.samples]
    assert dataset_fingerprint([train.with_samples(moved), validation]) == fingerprint


def test_training_losses_are_reduced_across_ranks(steps) -> None:
    """Every tensor an algorithm logs per training step is logged with ``sync_dist=True`` (the epoch value is the
    mean over DDP ranks); metric objects synchronise themselves."""
    _, prepared, _ = steps
    module = prepared.module
    logged: dict[str, dict[str, Any]] = {}

    def record(name: str, value: Any, **options: Any) -> None:
        logged[name] = {"tensor": isinstance(value, torch.Tensor), **options}

    module.log = record  # Lightning's logging entry point, observed; the step itself runs unchanged
    batch = next(iter(prepared.train_loader))
    loss = module.training_step(batch, 0)
    assert torch.isfinite(loss)
    assert "train:loss" in logged
    unsynced = [name for name, options in logged.items() if options["tensor"] and not options.get("sync_dist")]
    assert not unsynced, f"logged without sync_dist: {unsynced}"
