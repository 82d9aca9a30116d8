"""Engine callbacks: per-epoch metric lines and history, best weights kept in memory, SageMaker-style early
stopping (relative tolerance, minimum epochs)."""

from __future__ import annotations

import copy
import csv
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch


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
