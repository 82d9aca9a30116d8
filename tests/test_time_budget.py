"""The time budget (``max_runtime``, SageMaker's StoppingCondition.MaxRuntimeInSeconds): epochs and a warm-up +
cosine schedule planned from measured step times, a hard limit that ends a job Stopped/MaxRuntimeExceeded with
its checkpoint and model, resume after it, and the ways to set it (CLI, Estimator, CreateTrainingJob)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from oculi.algorithms.optim import WarmupCosine
from oculi.artifacts import read_meta
from oculi.engine.callbacks import TimeBudget
from oculi.engine.training import train
from oculi.errors import ConfigError
from oculi.jobs import runner
from oculi.jobs.describe import describe
from tests.helpers import TINY
from tests.jobs.conftest import mini_data, spec, store  # noqa: F401 - fixtures

MINI_STEPS_PER_EPOCH = 1  # 12 training images, mini_batch_size 8, the last partial batch dropped


class ScheduleAtEnd(L.Callback):
    """Records the learning-rate schedule's length, position and rate when training ends."""

    def on_train_end(self, trainer, pl_module):  # noqa: ANN001, ANN201
        sched = trainer.lr_scheduler_configs[0].scheduler
        self.schedule = {"total_steps": sched.total_steps, "steps": sched.last_epoch,
                         "lr": sched.optimizer.param_groups[0]["lr"]}


def test_warmup_cosine_warms_up_decays_to_zero_and_can_be_replanned():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupCosine(opt, total_steps=200)
    assert sched.warmup_steps == 10  # a twentieth of the run (at most 50)
    rates = []
    for _ in range(200):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert rates[0] == pytest.approx(0.1) and rates[9] == pytest.approx(1.0)  # linear warm-up
    assert all(a >= b for a, b in zip(rates[9:], rates[10:], strict=False))  # then only down
    assert rates[-1] < 1e-3 and opt.param_groups[0]["lr"] == pytest.approx(0.0)
    sched.plan(400)  # a budget that turned out longer: the decay stretches from the current step
    assert sched.total_steps == 400 and 0.4 < sched.factor(sched.last_epoch) < 0.6
    state = sched.state_dict()
    again = WarmupCosine(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), total_steps=7)
    again.load_state_dict(state)  # a checkpoint keeps the plan
    assert (again.total_steps, again.warmup_steps) == (400, 10)


def test_a_budget_plans_the_epochs_and_the_schedule_and_completes_in_time(mini_data, tmp_path):  # noqa: F811
    lines: list[str] = []
    hp = {**{k: v for k, v in TINY.items() if k != "epochs"}, "max_runtime": "15"}
    end = ScheduleAtEnd()
    result = train("image-classification", mini_data, hp, output=tmp_path / "model", progress=False,
                   echo=lines.append, callbacks=[end])
    text = "\n".join(lines)  # every plan with its measured times: the message of any failure below
    assert "epochs=auto → as many as max_runtime=15 s allows" in text
    assert "lr_scheduler=auto → warmup_cosine" in text
    assert "time budget:" in text, text
    assert not result.stopped and result.budget["exceeded"] is False, text
    trained = len(result.history)
    assert result.budget["epochs"] == trained >= 1, text
    assert f"time budget: max_runtime 15 s allowed {trained} epoch(s)" in text
    assert result.seconds < 15 + 10, text  # the limit, plus writing the bundle (and a loaded machine)
    meta = read_meta(tmp_path / "model")
    assert meta["hyperparameters"]["epochs"] == trained  # the bundle records what the budget allowed
    assert meta["hyperparameters"]["lr_scheduler"] == "warmup_cosine"
    # the schedule was planned over exactly the steps trained: it ended at its last step (rate 0)
    assert end.schedule == {"total_steps": trained * MINI_STEPS_PER_EPOCH, "steps": trained * MINI_STEPS_PER_EPOCH,
                            "lr": pytest.approx(0.0, abs=1e-9)}, text


def test_max_runtime_ends_the_job_max_runtime_exceeded_with_its_model_then_resume_continues(
        store, tiny_split):  # noqa: F811 - the fixture
    # explicit epochs and cosine schedule: nothing is planned, the limit stops training part-way
    job = runner.submit(spec(tiny_split, epochs="1000", lr_scheduler="cosine", max_runtime="6"), store,
                        attached=True)
    lines: list[str] = []
    ended = runner.run_attached(job, store, echo=lines.append)
    text = "\n".join(lines)
    assert (ended["status"], ended["secondary_status"]) == ("Stopped", "MaxRuntimeExceeded"), text
    assert "max_runtime 6 s reached: checkpoint written" in text
    assert (Path(ended["model_dir"]) / "model.json").exists()  # SageMaker writes the model of a timed-out job too
    assert (Path(ended["job_dir"]) / "checkpoints" / "last.ckpt").exists()
    described = describe(ended, store)
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 6}
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert described["TrainingEndTime"] is not None
    at = ended["checkpoint"]
    assert at is not None and at["epoch"] < 1000

    runner.resume(job["name"], store=store, attached=True)  # another 6 s from the checkpoint
    lines.clear()
    again = runner.run_attached(store.get(job["name"]), store, echo=lines.append)
    text = "\n".join(lines)
    assert f"resumed from epoch {at['epoch']}, step {at['step']}" in text
    assert again["secondary_status"] == "MaxRuntimeExceeded", text
    assert again["checkpoint"]["step"] >= at["step"]  # (a loaded machine may spend the 6 s before a step)


def test_the_ways_to_set_a_budget_and_the_conflicts_they_refuse(store, tiny_split):  # noqa: F811
    from oculi.algorithms import get_algorithm
    from oculi.config import resolve
    from oculi.serving.estimator import Estimator

    segmentation = get_algorithm("semantic-segmentation").hyperparameters
    with pytest.raises(ConfigError, match="`lr_scheduler=poly` decays over `epochs`.*-p epochs=N"):
        resolve(segmentation, {"lr_scheduler": "poly", "max_runtime": "60"})
    assert resolve(segmentation, {"lr_scheduler": "poly", "max_runtime": "60", "epochs": "5"}).epochs == 5
    assert Estimator("image-classification", max_run=900).hyperparameters["max_runtime"] == "900"
    with pytest.raises(ConfigError, match="same setting"):
        Estimator("image-classification", {"max_runtime": "60"}, max_run=900)
    with pytest.raises(ConfigError, match="built-in algorithms"):
        Estimator(entry_point="train.py", max_run=900)
    with pytest.raises(ConfigError, match="max_runtime.*greater than 0|`max_runtime` got"):
        runner.submit(spec(tiny_split, max_runtime="0"), store)
    from typer.testing import CliRunner

    from oculi.cli import app

    given = CliRunner().invoke(app, ["train", "image-classification", "--train", str(tiny_split["train"]),
                                     "--max-runtime", "30", "-p", "max_runtime=60"])
    assert isinstance(given.exception, ConfigError)  # the entry point turns it into a message and exit code
    assert "--max-runtime 30 conflicts with -p max_runtime=60" in str(given.exception)


def _trainer(batches: int) -> SimpleNamespace:
    """The few attributes of a Lightning trainer the time budget reads and sets."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return SimpleNamespace(num_training_batches=batches, world_size=1, current_epoch=0, should_stop=False,
                           sanity_checking=False,
                           fit_loop=SimpleNamespace(max_epochs=1000),
                           lr_scheduler_configs=[SimpleNamespace(scheduler=WarmupCosine(opt, total_steps=7))])


def test_the_plan_ends_with_a_partial_epoch_instead_of_leaving_the_rest_of_the_budget_unused():
    lines: list[str] = []
    budget = TimeBudget(100.0, time.monotonic(), cap=None, plan_epochs=True, echo=lines.append)
    trainer = _trainer(batches=10)
    budget.step_seconds, budget.overhead = [1.0] * 5, 2.0  # 1 s steps, 2 s of validation: 12 s epochs
    budget._plan(trainer, 1, 0.0, 12.0, "12 s per epoch")
    # at the end of epoch 1, 97 s usable (3 % margin): 8 more whole epochs (96 s); 1 s left holds no partial one
    assert (budget.planned, budget.last_steps) == (9, None), lines
    assert trainer.fit_loop.max_epochs == 9 and trainer.lr_scheduler_configs[0].scheduler.total_steps == 90

    # a budget whose remainder holds half an epoch: the last epoch is cut to the steps that fit
    budget = TimeBudget(60.0, time.monotonic(), cap=None, plan_epochs=True, echo=lines.append)
    budget.step_seconds, budget.overhead = [1.0] * 5, 2.0
    trainer = _trainer(batches=10)
    budget._plan(trainer, 1, 0.0, 12.0, "12 s per epoch")  # ~58.2 s: 4 more whole epochs, then 10 − 2 s of steps
    assert (budget.planned, budget.last_steps) == (6, 8), lines
    assert trainer.lr_scheduler_configs[0].scheduler.total_steps == 58
    assert "6 epoch(s), the last 8 of 10 steps" in lines[-1]

    trainer.current_epoch = 5  # in the partial epoch: the run ends after its 8th step, then validates
    budget.last_step, budget.epoch_seconds = None, [12.0] * 5
    for batch_idx in range(8):
        budget.on_train_batch_end(trainer, None, None, None, batch_idx)
        assert trainer.should_stop is (batch_idx == 7)
    assert (budget.planned, budget.last_steps) == (6, 8)
    budget.on_validation_end(trainer, None)  # the partial epoch's validation ends the run: no plan after it
    assert (budget.planned, budget.last_steps, budget.total_steps) == (6, 8, 58)
    # an explicit epochs count (cap) that fits is planned whole
    capped = TimeBudget(60.0, time.monotonic(), cap=3, plan_epochs=True, echo=lines.append)
    capped.step_seconds, capped.overhead = [1.0] * 5, 2.0
    capped._plan(_trainer(batches=10), 1, 0.0, 12.0, "12 s per epoch")
    assert (capped.planned, capped.last_steps) == (3, None)


def test_a_run_slower_than_planned_ends_its_epoch_early_with_validation_instead_of_hitting_the_limit():
    budget = TimeBudget(100.0, time.monotonic() - 95.0, cap=None, plan_epochs=True, echo=lambda _: None)
    trainer = _trainer(batches=10)
    budget.planned, budget.overhead, budget.step_seconds = 20, 2.0, [1.0] * 5  # 5 s left, 2 s validation
    budget.last_step = time.monotonic()
    budget.on_train_batch_end(trainer, None, None, None, 3)  # 5 s left > 2 + 2·1: go on
    assert trainer.should_stop is False
    budget.deadline = time.monotonic() + 3.5  # now only validation and one more step fit
    budget.on_train_batch_end(trainer, None, None, None, 4)
    assert trainer.should_stop is True and (budget.planned, budget.last_steps) == (1, 5)
