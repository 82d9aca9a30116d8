"""Engine callbacks: per-epoch metric lines and history, best weights kept in memory, SageMaker-style early
stopping (relative tolerance, minimum epochs)."""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from oculi.algorithms.optim import WarmupCosine
from oculi.errors import ConfigError


def _value(metrics: dict[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    if v is None:
        return None
    v = float(v.item() if isinstance(v, torch.Tensor) else v)
    return None if math.isnan(v) else v


class EpochHistory(L.Callback):
    """Records every epoch's metrics (``history``), writes them to ``metrics.csv`` and prints one line per
    epoch through ``echo``. Tracks the best epoch by ``monitor`` and keeps a CPU copy of its weights."""

    def __init__(self, monitor: str, mode: str, csv_path: Path, echo: Callable[[str], None]) -> None:
        self.monitor, self.mode = monitor, mode
        self.csv_path = csv_path
        self.echo = echo
        self.history: list[dict[str, float]] = []
        self.best_value: float | None = None
        self.best_loss: float | None = None
        self._improved = False
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def _better(self, value: float, loss: float | None) -> bool:
        if self.best_value is None:
            return True
        if value == self.best_value:  # a tie on the objective goes to the lower validation loss
            return loss is not None and self.best_loss is not None and loss < self.best_loss
        return value > self.best_value if self.mode == "max" else value < self.best_value

    # on_validation_end runs after the LightningModule's own on_validation_epoch_end has logged its metrics
    # (detection logs validation:mAP there); callbacks' on_validation_epoch_end would see the previous epoch's.
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = _value(trainer.callback_metrics, self.monitor)
        loss = _value(trainer.callback_metrics, "validation:loss")
        self._improved = value is not None and self._better(value, loss)
        if self._improved:
            self.best_value, self.best_loss, self.best_epoch = value, loss, trainer.current_epoch + 1
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in pl_module.model.state_dict().items()}

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: _value(trainer.callback_metrics, k) for k in trainer.callback_metrics}
        row: dict[str, float] = {"epoch": trainer.current_epoch + 1}
        row.update({k: v for k, v in sorted(metrics.items()) if v is not None and ":" in k})
        row["seconds"] = round(time.perf_counter() - self._start, 2)
        self.history.append(row)
        if trainer.is_global_zero:  # with DDP every rank keeps the history; one writes it
            self._write()
        parts = [f"{k} {v:.4f}" for k, v in row.items() if k not in ("epoch", "seconds")]
        best = self._improved and self.best_epoch == row["epoch"]
        self.echo(f"epoch {int(row['epoch'])}/{trainer.max_epochs}  " + "  ".join(parts)
                  + f"  ({row['seconds']:.1f} s){'  ← best' if best else ''}")

    def _write(self) -> None:
        keys: list[str] = []
        for row in self.history:
            keys += [k for k in row if k not in keys]
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        with self.csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)

    # Saved in checkpoints so a resumed run keeps the earlier epochs' rows and the best epoch's weights.
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "best_value": self.best_value, "best_loss": self.best_loss,
                "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])
        self.best_value, self.best_loss = state["best_value"], state["best_loss"]
        self.best_epoch, self.best_state = state["best_epoch"], state["best_state"]

    def best_model_state(self, pl_module: L.LightningModule) -> dict[str, torch.Tensor]:
        """The best epoch's weights (or the current ones when no epoch was validated)."""
        return self.best_state if self.best_state is not None else copy.deepcopy(pl_module.model.state_dict())


class RelativeEarlyStopping(L.Callback):
    """SageMaker's early stopping: after ``min_epochs``, stop when ``monitor`` has not improved by more than
    ``tolerance`` (relative) for ``patience`` epochs."""

    def __init__(self, monitor: str, mode: str, min_epochs: int, patience: int, tolerance: float,
                 echo: Callable[[str], None]) -> None:
        self.monitor, self.mode = monitor, mode
        self.min_epochs, self.patience, self.tolerance = min_epochs, patience, tolerance
        self.echo = echo
        self.best: float | None = None
        self.wait = 0

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait = state["best"], state["wait"]

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = _value(trainer.callback_metrics, self.monitor)
        if value is None:
            return
        if self.best is None:
            improved = True
        elif self.mode == "max":
            improved = value > self.best * (1 + self.tolerance) if self.best > 0 else value > self.best
        else:
            improved = value < self.best * (1 - self.tolerance)
        if improved:
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        epoch = trainer.current_epoch + 1
        if epoch >= self.min_epochs and self.wait >= self.patience:
            self.echo(f"early stopping after epoch {epoch}: {self.monitor} has not improved by more than "
                      f"{self.tolerance:.0%} for {self.patience} epochs (best {self.best:.4f})")
            trainer.should_stop = True


class EpochProgressBar(L.pytorch.callbacks.TQDMProgressBar):
    """Lightning's tqdm bar, counting epochs from 1 like the per-epoch lines ("epoch 3/10")."""

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")


class StopTraining(KeyboardInterrupt):
    """Raised at a step boundary after a stop request: Lightning shuts down as on Ctrl-C (no more steps, no
    validation) and :func:`oculi.engine.training.train` writes the bundle of the best epoch so far."""


class GracefulStop(L.Callback):
    """Stops training at the next step boundary once ``should_stop()`` is true (a job's ``stop``, SIGTERM),
    after writing a resumable checkpoint to ``path``. ``should_stop`` is called after every optimizer step, so it
    must be cheap (the jobs layer rate-limits its store look-ups). Under DDP the ranks agree after every step (one
    small all-reduce): when any rank is asked to stop, all of them checkpoint and stop at the same step.

    A stop asked at an epoch's last step waits for that epoch's validation and epoch-end checkpoint, and ends the
    run as the next epoch starts: a checkpoint taken between the last step and the validation would resume past
    the validation (Lightning does not run it again), losing that epoch's metrics and its chance to be the best."""

    def __init__(self, should_stop: Callable[[], bool], path: Path, echo: Callable[[str], None],
                 reason: Callable[[], str] = lambda: "stop requested") -> None:
        self.should_stop, self.path, self.echo, self.reason = should_stop, path, echo, reason
        self.requested = False
        self.at_epoch_end = False
        self.saved: dict[str, int] | None = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.requested:
            return
        wanted = bool(self.should_stop())
        if trainer.world_size > 1:  # every rank must stop at the same step, or the others wait in an all-reduce
            wanted = trainer.strategy.reduce_boolean_decision(wanted, all=False)
        if not wanted:
            return
        self.requested = True
        if batch_idx + 1 >= trainer.num_training_batches:
            self.at_epoch_end = True  # the last epoch simply completes
            return
        trainer.save_checkpoint(self.path, weights_only=False)
        self.saved = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        self.echo(f"{self.reason()}: checkpoint written at epoch {trainer.current_epoch + 1}, step "
                  f"{trainer.global_step} ({self.path})")
        raise StopTraining

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.at_epoch_end:
            return
        self.saved = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        self.echo(f"{self.reason()}: checkpoint written at the end of epoch {trainer.current_epoch}, step "
                  f"{trainer.global_step} ({self.path})")
        raise StopTraining


class TimeBudget(L.Callback):
    """SageMaker's ``MaxRuntimeInSeconds`` for the built-in algorithms: ``max_runtime`` seconds from ``started``
    (a ``time.monotonic()`` reading at the start of the run, so data reading counts).

    - **Limit.** :meth:`should_stop` (polled by :class:`GracefulStop` after every step) says yes once the time is
      up: training stops at that step boundary with a checkpoint, the bundle holds the best epoch, and
      ``exceeded`` is set (the job ends Stopped/MaxRuntimeExceeded). Writing them happens after the limit, as in
      SageMaker's 120 s after SIGTERM.
    - **Plan** (``plan_epochs``: epochs=auto, or a :class:`~oculi.algorithms.optim.WarmupCosine` schedule).
      After ``MEASURE_STEPS`` timed steps (the first step of an epoch, which waits for the loader, is not timed)
      the training steps that fit in the time left are planned — the median step time, plus each epoch's
      overhead (validation, checkpoints; guessed at a third of a step per validation batch until measured) —
      keeping ``MARGIN`` of the time left free and capped by ``cap`` (an explicit ``epochs``): whole epochs, then
      a **partial last epoch** of the steps that still fit (at least ``MIN_PART`` of an epoch; it ends with its
      validation like any other), so a short budget is not left a fraction of an epoch unused. The trainer's
      ``max_epochs`` and every ``WarmupCosine``'s length follow. After every epoch the plan is made again from
      the measured epoch time (the mean of the last ``WINDOW`` epochs, end to end; after the first epoch, which
      also paid for warm-up, its timed steps and its validation): it is shortened as soon as the planned steps
      would not fit, and lengthened when more than ``SLACK`` of the remaining steps more would fit, so a long
      schedule does not jitter. Should steps run slower than planned, an epoch ends early (validated, as the
      partial one) once the time left only covers its validation and one more step.
      A run that plans thus completes within the limit. Under DDP rank 0 plans and the others take its plan."""

    MEASURE_STEPS = 5
    MARGIN = 0.03
    WINDOW = 3
    SLACK = 0.1
    MIN_PART = 0.2

    def __init__(self, max_runtime: float, started: float, *, cap: int | None, plan_epochs: bool,
                 echo: Callable[[str], None]) -> None:
        self.max_runtime, self.deadline = float(max_runtime), started + float(max_runtime)
        self.cap, self.plan_epochs, self.echo = cap, plan_epochs, echo
        self.exceeded = False
        self.planned: int | None = None  # epochs of the current plan
        self.last_steps: int | None = None  # steps of its last epoch when that one is partial
        self.total_steps: int | None = None  # training steps of the current plan
        self.overhead: float | None = None  # seconds an epoch spends besides its training steps
        self.plans = 0  # plans made by this run (a resumed run plans again, for its own time)
        self.step_seconds: list[float] = []
        self.epoch_seconds: list[float] = []
        self.last_step: float | None = None
        self.last_epoch_end = time.monotonic()
        self.validation_started = self.last_epoch_end
        self.validation_seconds = 0.0

    def should_stop(self) -> bool:
        """Whether the time is up (then ``exceeded`` stays set)."""
        self.exceeded = self.exceeded or time.monotonic() >= self.deadline
        return self.exceeded

    def state_dict(self) -> dict[str, Any]:
        return {"planned": self.planned, "last_steps": self.last_steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.planned, self.last_steps = state["planned"], state.get("last_steps")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last_epoch_end = time.monotonic()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last_step = None

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        now = time.monotonic()
        if self.last_step is not None:
            self.step_seconds.append(now - self.last_step)
        self.last_step = now
        if not self.plan_epochs:
            return
        if len(self.step_seconds) == self.MEASURE_STEPS and not self.epoch_seconds:
            step = self._median_step()
            batches = sum(trainer.num_val_batches) if isinstance(trainer.num_val_batches, list) else 0
            self.overhead = step * batches / 3
            epoch = step * trainer.num_training_batches + self.overhead
            finish = step * (trainer.num_training_batches - batch_idx - 1) + self.overhead
            self._plan(trainer, trainer.current_epoch + 1, finish, epoch,
                       f"{step:.2f} s per step, about {epoch:.1f} s per epoch with validation")
        if self._end_epoch_now(trainer, batch_idx, now):
            trainer.should_stop = True  # Lightning validates this epoch, then ends the run
            self.planned = trainer.current_epoch + 1
            self.last_steps = batch_idx + 1 if batch_idx + 1 < trainer.num_training_batches else None

    def _end_epoch_now(self, trainer: L.Trainer, batch_idx: int, now: float) -> bool:
        """Whether the run ends with this step (then validated): the planned partial last epoch is done, or the
        time left covers only the epoch's validation and one more step."""
        if self.planned is None or trainer.current_epoch + 1 < self.planned:
            late = False  # whole epochs to go: a slow one is the re-plan's business
        else:
            late = bool(self.last_steps and batch_idx + 1 >= self.last_steps)
        if self.overhead is not None and self.step_seconds and batch_idx + 1 < trainer.num_training_batches:
            late = late or self.deadline - now < self.overhead + 2 * self._median_step()
        if trainer.world_size > 1:
            late = trainer.strategy.reduce_boolean_decision(late, all=False)
        return late

    # Planned at the epoch's validation end, before the checkpoint callbacks save last.ckpt (they run after every
    # other callback), so the checkpoint holds the new plan.
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        now = time.monotonic()
        self.validation_seconds = now - self.validation_started
        self.epoch_seconds.append(now - self.last_epoch_end)
        self.last_epoch_end = now
        if not self.plan_epochs or trainer.should_stop:  # nothing to plan when this epoch ends the run
            return
        recent = self.epoch_seconds[1:][-self.WINDOW:]
        if recent:
            epoch = sum(recent) / len(recent)
        elif len(self.step_seconds) >= 2:  # the first epoch also paid for warm-up: count its steps instead
            epoch = self._median_step() * trainer.num_training_batches + self.validation_seconds
        else:
            epoch = self.epoch_seconds[0]
        if self.step_seconds:
            self.overhead = max(self.validation_seconds, epoch - self._median_step() * trainer.num_training_batches)
        self._plan(trainer, trainer.current_epoch + 1, 0.0, epoch, f"{epoch:.1f} s per epoch measured")

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validation_started = time.monotonic()

    def _median_step(self) -> float:
        return sorted(self.step_seconds)[len(self.step_seconds) // 2]  # the median: one slow step is noise

    def _plan(self, trainer: L.Trainer, done: int, finish: float, epoch: float, how: str) -> None:
        """Plan the run's steps: ``done`` epochs (the current one included) that end ``finish`` seconds from
        now, then as many ``epoch``-second epochs as fit in the time left, then a partial one if it is worth it."""
        batches = trainer.num_training_batches
        now_left = self.deadline - time.monotonic()
        left = now_left - finish - self.MARGIN * now_left
        whole = max(0, int(left // max(epoch, 1e-6)))
        part = 0
        if self.step_seconds and self.overhead is not None:
            part = int((left - whole * epoch - self.overhead) // max(self._median_step(), 1e-6))
            part = part if self.MIN_PART * batches <= part < batches else 0
        fits, last = done + whole + (1 if part else 0), part or None
        if self.cap is not None and fits >= self.cap:
            fits, last = self.cap, None
        steps = (fits - 1) * batches + (last or batches)
        if self.plans and self.total_steps is not None and self.total_steps <= steps <= self.total_steps + int(
                self.SLACK * (self.total_steps - (done - 1) * batches)):
            fits, last, steps = self.planned, self.last_steps, self.total_steps  # still fits, not worth a change
        if trainer.world_size > 1:
            fits, last = trainer.strategy.broadcast((fits, last), src=0)
            steps = (fits - 1) * batches + (last or batches)
        if self.plans and (fits, last) == (self.planned, self.last_steps):
            return
        first = not self.plans
        self.planned, self.last_steps, self.total_steps, self.plans = fits, last, steps, self.plans + 1
        trainer.fit_loop.max_epochs = fits
        for config in trainer.lr_scheduler_configs:
            if isinstance(config.scheduler, WarmupCosine):
                config.scheduler.plan(steps)
        capped = " (the epochs given)" if self.cap is not None and fits == self.cap else ""
        partial = f", the last {last} of {batches} steps" if last else ""
        self.echo(f"time budget{'' if first else ' re-planned'}: {how}; {self.deadline - time.monotonic():.0f} s of "
                  f"max_runtime {self.max_runtime:g} s left → {fits} epoch(s){partial}{capped}, {steps} steps")


class PeriodicCheckpoint(L.Callback):
    """Writes the resumable checkpoint ``path`` part-way through an epoch once ``interval`` seconds have passed
    since the last one (an epoch end counts), so a killed run redoes at most about that much training: a mid-epoch
    checkpoint resumes exactly (:mod:`oculi.engine.data_order`). Under DDP the ranks agree after every step (one
    small all-reduce: due when any rank's clock says so), since every rank takes part in writing a checkpoint."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path, self.interval = path, interval
        self.last = time.monotonic()
        self.saved = 0

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last = time.monotonic()  # last.ckpt is written at the epoch's end

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        due = time.monotonic() - self.last >= self.interval and batch_idx + 1 < trainer.num_training_batches
        if trainer.world_size > 1:
            due = trainer.strategy.reduce_boolean_decision(due, all=False)
        if due:
            trainer.save_checkpoint(self.path, weights_only=False)
            self.saved += 1
            self.last = time.monotonic()


class RandomState(L.Callback):
    """Puts the random-number state in every checkpoint and restores it on resume, so a resumed run draws the same
    random numbers as an uninterrupted one: torch (CPU, CUDA), numpy, Python ``random``, and the ``generator`` of
    each training DataLoader (its workers' base seed comes from there). The data order and augmentations are
    resumed by :mod:`oculi.engine.data_order`. Under DDP every rank's state is gathered into the checkpoint (rank 0
    writes it) and each rank restores its own."""

    def __init__(self, loaders: list[Any]) -> None:
        self.generators = [g for g in (getattr(dl, "generator", None) for dl in loaders) if g is not None]

    def state_dict(self) -> dict[str, Any]:
        own = self._own_state()
        if torch.distributed.is_available() and torch.distributed.is_initialized() \
                and torch.distributed.get_world_size() > 1:  # every rank saves a checkpoint at the same points
            ranks: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(ranks, own)
            return {"ranks": ranks}
        return own

    def load_state_dict(self, state: dict[str, Any]) -> None:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        world = torch.distributed.get_world_size() if distributed else 1
        saved = len(state["ranks"]) if "ranks" in state else 1
        if saved != world:
            raise ConfigError(f"The checkpoint was written by a run of {saved} process(es) and is resumed by "
                              f"{world}; resume it with the same layout (instance_count / --devices / --nodes).")
        self._restore(state["ranks"][torch.distributed.get_rank()] if "ranks" in state else state)

    def _own_state(self) -> dict[str, Any]:
        import random

        import numpy as np

        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            # plain types only: checkpoints load with weights_only=True
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype("int64")), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached": float(cached)},
            "loaders": [g.get_state() for g in self.generators],
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        import random

        import numpy as np

        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype("uint32"), n["pos"], n["has_gauss"], n["cached"]))
        for g, s in zip(self.generators, state["loaders"], strict=False):
            g.set_state(s)
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class ResumeNotice(L.Callback):
    """Says where a resumed run continues ("resumed from epoch E, step S"); with ``restart_schedule`` (a finished
    run extended to more epochs) a step-wise cosine schedule starts a new decay from the initial learning rate
    over the remaining steps, since the old one has already decayed to zero."""

    def __init__(self, echo: Callable[[str], None], restart_schedule: bool = False) -> None:
        self.echo, self.restart_schedule = echo, restart_schedule
        self.resumed_from: dict[str, int] | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.resumed_from = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        self.echo(f"resumed from epoch {trainer.current_epoch}, step {trainer.global_step}")
        if not self.restart_schedule:
            return
        remaining = max(1, int(trainer.estimated_stepping_batches) - trainer.global_step)
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR):
                sched.T_max, sched.last_epoch = remaining, 0
                for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
                    group["lr"] = base
                sched._last_lr = list(sched.base_lrs)
                self.echo(f"learning-rate schedule restarted: cosine decay from {sched.base_lrs[0]:g} over the "
                          f"{remaining} remaining steps")


class WeightEMA(L.Callback):
    """An exponential moving average of the network's weights (``ema=on``): after every optimiser step the
    average moves towards the weights by ``1 - d`` with ``d = min(decay, (1 + n) / (10 + n))`` after ``n``
    steps (the short-run warm-up of TensorFlow's ExponentialMovingAverage, so a run of a few dozen steps averages
    over its last few rather than its random start). Validation — and so the best epoch's weights the bundle
    keeps — uses the average: it is copied into the network for validation and the trained weights are put back
    afterwards, so the optimiser never sees it. Integer buffers (batch-norm counters) are copied, not averaged.
    Saved in checkpoints (resume continues the same average). Place it after :class:`EpochHistory`, whose
    ``on_validation_end`` keeps the best weights before this one restores the trained ones."""

    def __init__(self, decay: float = 0.998) -> None:
        self.decay = decay
        self.updates = 0
        self.average: dict[str, torch.Tensor] | None = None
        self._trained: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in pl_module.model.state_dict().items()}
        else:  # restored from a checkpoint: onto the network's device
            device = next(pl_module.model.parameters()).device
            self.average = {k: v.to(device) for k, v in self.average.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        assert self.average is not None
        self.updates += 1
        weight = 1 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in pl_module.model.state_dict().items():
            if value.is_floating_point():
                self.average[key].lerp_(value.detach().to(self.average[key].dtype), weight)
            else:
                self.average[key].copy_(value)

    @torch.no_grad()
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.average is None or trainer.sanity_checking:
            return
        state = pl_module.model.state_dict()
        self._trained = {k: v.detach().clone() for k, v in state.items()}
        for key, value in state.items():
            value.copy_(self.average[key])

    @torch.no_grad()
    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._trained is None:
            return
        for key, value in pl_module.model.state_dict().items():
            value.copy_(self._trained[key])
        self._trained = None

    def state_dict(self) -> dict[str, Any]:
        average = None if self.average is None else {k: v.detach().cpu() for k, v in self.average.items()}
        return {"updates": self.updates, "average": average}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates, self.average = state["updates"], state["average"]


@dataclass(frozen=True)
class CallbackFactory:
    """Callbacks made inside the training process by an importable function: ``target`` is
    ``"package.module:function"``, called with ``kwargs`` (plain JSON values), returning a list of callbacks.
    Unlike callback objects, a factory crosses into the processes torchrun starts for a distributed run, where
    each rank builds its own (the jobs layer reports progress to the store this way)."""

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def build(self) -> list[L.Callback]:
        """Import ``target`` and call it with ``kwargs``."""
        import importlib

        module, _, name = self.target.partition(":")
        return list(getattr(importlib.import_module(module), name)(**self.kwargs))


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold SIGINT for the duration of the block (main thread only) and deliver it again afterwards."""
    import os
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if arrived:
            os.kill(os.getpid(), signal.SIGINT)


class AtomicCheckpointIO(L.pytorch.plugins.io.TorchCheckpointIO):
    """Checkpoints written to a temporary file in the same folder, flushed to disk, then renamed over the old one
    (``os.replace`` is atomic): a crash mid-write leaves the previous checkpoint intact, never a truncated one.
    Loading uses ``weights_only=True``: a checkpoint holds only tensors and plain values. A Ctrl-C arriving during
    the write is held until the write has finished (a KeyboardInterrupt inside ``torch.save`` would surface as a
    zip-writer RuntimeError instead of an interrupt)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        import os
        import tempfile

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with _sigint_held(), os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_checkpoint(self, path: Any, map_location: Any | None = None, weights_only: bool | None = None) -> Any:
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)
