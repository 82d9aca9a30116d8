"""Exact mid-epoch resume: a run stopped part-way through an epoch and resumed from its checkpoint trains on the
same batches (same images, same order, same augmentations) as an uninterrupted run and ends with the same weights
and validation metrics; and the resumable sampler on its own (order per epoch, shards, skipping)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from oculi.engine.data_order import EpochSampler, sample_seed
from oculi.engine.training import train
from tests.helpers import TINY

# random crops, flips and colour changes: the augmentations must be replayed exactly too
HP = {**TINY, "epochs": "2", "augmentation_type": "crop_color_transform"}
STEPS_PER_EPOCH = 6  # 48 training images, mini_batch_size 8


class Batches(L.Callback):
    """Records, for every training step: (epoch, labels, checksum of the augmented images)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, list[int], float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: ANN001, ANN201
        images, labels = batch
        self.seen.append((trainer.current_epoch, labels.tolist(), float(images.double().sum())))


class StopAtStep:
    """``stop_requested`` that says yes after ``step`` optimizer steps (it is asked once per step)."""

    def __init__(self, step: int) -> None:
        self.step, self.asked = step, 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.asked >= self.step


@pytest.mark.parametrize("stop_step", [STEPS_PER_EPOCH + 2, STEPS_PER_EPOCH], ids=["mid-epoch", "epoch-last-step"])
def test_stop_then_resume_equals_an_uninterrupted_run(stop_step, tiny_split, tmp_path):
    """A stop two batches into the second epoch, or at the first epoch's last step: that one waits for the
    epoch's validation and checkpoint, so no epoch loses its validation metrics."""
    quiet = {"progress": False, "echo": lambda _line: None}
    reference = Batches()
    uninterrupted = train("image-classification", tiny_split, HP, output=tmp_path / "reference",
                          callbacks=[reference], **quiet)

    before, after = Batches(), Batches()
    stopped = train("image-classification", tiny_split, HP, output=tmp_path / "run", checkpoint_dir=tmp_path / "ck",
                    stop_requested=StopAtStep(stop_step), callbacks=[before], **quiet)
    assert stopped.stopped and stopped.checkpoint == {"epoch": 1, "step": stop_step}
    lines: list[str] = []
    resumed = train("image-classification", tiny_split, HP, output=tmp_path / "run", overwrite=True,
                    checkpoint_dir=tmp_path / "ck", resume_from=tmp_path / "ck" / "last.ckpt", callbacks=[after],
                    progress=False, echo=lines.append)
    assert f"resumed from epoch 1, step {stop_step}" in lines

    # the stopped run's batches then the resumed run's are the uninterrupted run's, one for one
    assert len(after.seen) == 2 * STEPS_PER_EPOCH - stop_step
    assert before.seen + after.seen == reference.seen
    # so the weights and the validation metrics are the same: tolerance 1e-6 (they are bit-identical on one
    # machine; the tolerance allows for float formatting only)
    for key in ("validation:accuracy", "validation:loss"):
        assert abs(resumed.history[-1][key] - uninterrupted.history[-1][key]) <= 1e-6, key
        assert abs(resumed.metrics[key] - uninterrupted.metrics[key]) <= 1e-6, key
        assert [round(h[key], 6) for h in resumed.history] == [round(h[key], 6) for h in uninterrupted.history]
    # the epoch's training-set averages cover only the steps after the resume (Lightning does not checkpoint
    # running means), so they are not compared


class CrashAtStep(L.Callback):
    """Fails the run as a crash would, just before optimizer step ``step + 1``: nothing more is written."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):  # noqa: ANN001, ANN201
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


def test_a_crash_mid_epoch_resumes_from_the_periodic_checkpoint_exactly(tiny_split, tmp_path):
    quiet = {"progress": False, "echo": lambda _line: None}
    uninterrupted = train("image-classification", tiny_split, HP, output=tmp_path / "reference", **quiet)
    crash_step = STEPS_PER_EPOCH + 3
    # checkpoint_interval=0.000001: a checkpoint after every step (in the middle of an epoch)
    hp = {**HP, "checkpoint_interval": "0.000001"}
    with pytest.raises(Exception) as crash:  # noqa: PT011 - whatever wraps it, the cause is our crash
        train("image-classification", tiny_split, hp, output=tmp_path / "run", checkpoint_dir=tmp_path / "ck",
              callbacks=[CrashAtStep(crash_step)], **quiet)
    assert "simulated crash" in repr(crash.value) + repr(crash.value.__cause__)
    saved = torch.load(tmp_path / "ck" / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["global_step"] == crash_step  # no step lost, though the crash came mid-epoch
    lines: list[str] = []
    resumed = train("image-classification", tiny_split, hp, output=tmp_path / "run", overwrite=True,
                    checkpoint_dir=tmp_path / "ck", resume_from=tmp_path / "ck" / "last.ckpt", progress=False,
                    echo=lines.append)
    assert f"resumed from epoch 1, step {crash_step}" in lines
    for key in ("validation:accuracy", "validation:loss"):
        assert abs(resumed.metrics[key] - uninterrupted.metrics[key]) <= 1e-6, key


def test_epoch_sampler_orders_shards_and_skips():
    one = EpochSampler(10, seed=7)
    one.set_epoch(3)
    whole = [i for i, _ in one]
    assert sorted(whole) == list(range(10)) and whole == EpochSampler(10, seed=7).order(3)
    assert EpochSampler(10, seed=7).order(4) != whole  # a new order each epoch, from seed + epoch only
    # two ranks: disjoint halves of the same (padded) order, interleaved as DistributedSampler does
    ranks = [EpochSampler(9, seed=7, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(3)
    shards = [[i for i, _ in r] for r in ranks]
    order = ranks[0].order(3)
    assert len(order) == 10 and shards == [order[0::2], order[1::2]] and len(ranks[0]) == 5
    # resume part-way: the rest of the same epoch, with the same per-sample seeds; the length stays the epoch's
    resumed = EpochSampler(10, seed=7)
    resumed.resume(3, 4)
    rest = list(resumed)
    assert [i for i, _ in rest] == whole[4:] and len(resumed) == 10
    assert rest[0][1] == sample_seed(7, 3, 4)
    assert [i for i, _ in resumed] == whole  # the skip applies once; the next pass is a whole epoch
    # weighted draws with replacement (balanced_sampling): seeded per epoch too
    weighted = EpochSampler(4, seed=1, weights=torch.tensor([1.0, 0.0, 0.0, 1.0]), num_samples=8)
    draws = [i for i, _ in weighted]
    assert len(draws) == 8 and set(draws) <= {0, 3} and draws == [i for i, _ in weighted]
