"""Optimisers and learning-rate schedules by SageMaker's names, shared by every algorithm's LightningModule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], hp: Any) -> torch.optim.Optimizer:
    """The optimiser ``hp.optimizer`` names (sgd, nag, adam, adamw, rmsprop, adadelta, adagrad) at ``hp.learning_rate``
    with the algorithm's momentum / weight decay / betas / eps / gamma where it has them. ``params``: parameters,
    or torch parameter groups (dicts; a group's own ``lr`` overrides ``hp.learning_rate``)."""
    lr = float(hp.learning_rate)
    weight_decay = float(getattr(hp, "weight_decay", 0.0))
    eps = float(getattr(hp, "eps", 1e-8))
    name = hp.optimizer
    if name in ("sgd", "nag"):
        momentum = float(getattr(hp, "momentum", 0.0))
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=name == "nag" and momentum > 0)
    if name in ("adam", "adamw"):
        betas = (float(getattr(hp, "beta_1", 0.9)), float(getattr(hp, "beta_2", 0.999)))
        kind = torch.optim.AdamW if name == "adamw" else torch.optim.Adam  # adamw: decoupled weight decay
        return kind(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "rmsprop":
        # Segmentation names the squared-gradient decay gamma1 and the momentum gamma2 (SageMaker's names).
        alpha = float(getattr(hp, "gamma1", getattr(hp, "gamma", 0.9)))
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                   momentum=float(getattr(hp, "gamma2", 0.0)))
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, weight_decay=weight_decay)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")  # the hyperparameter model rejects it first


WARMUP_STEPS = 50  # warmup_cosine: linear warm-up over at most this many steps (and at most a twentieth of the run)


class WarmupCosine(torch.optim.lr_scheduler.LRScheduler):
    """Per optimiser step: the rate rises linearly over ``warmup_steps``, then decays along a cosine to 0 at
    ``total_steps``. :meth:`plan` changes the run's length while training (the engine's time budget re-plans
    from measured step times); both lengths are saved in checkpoints with the scheduler's state."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.total_steps = max(1, int(total_steps))
        self.warmup_steps = min(WARMUP_STEPS, max(1, self.total_steps // 20))
        super().__init__(optimizer)

    def plan(self, total_steps: int) -> None:
        """Make the run ``total_steps`` long (at least the steps already taken); the warm-up keeps its
        length unless the run became too short for it. The optimiser's rates follow at once (the next step
        uses the new plan's rate)."""
        self.total_steps = max(int(total_steps), self.last_epoch, 1)
        self.warmup_steps = min(self.warmup_steps, max(1, self.total_steps // 20))
        for group, rate in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = rate

    def factor(self, step: int) -> float:
        """The multiplier of the initial rates at optimiser step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min(1.0, (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]


def build_schedule(optimizer: torch.optim.Optimizer, hp: Any, total_steps: int) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` entry for ``hp.lr_scheduler``: ``step`` multiplies the rate by
    ``lr_scheduler_factor`` at the epochs in ``lr_scheduler_step``; ``cosine`` decays it to 0 over
    ``total_steps`` optimiser steps; ``poly`` multiplies it by ``(1 - step / total_steps) ** 0.9`` (DeepLab's
    schedule, SageMaker segmentation's default); ``warmup_cosine`` is :class:`WarmupCosine` over ``total_steps``
    (which a time budget re-plans); ``constant`` (or none) keeps it."""
    if hp.lr_scheduler == "warmup_cosine":
        return {"scheduler": WarmupCosine(optimizer, total_steps), "interval": "step"}
    if hp.lr_scheduler == "step":
        sched = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(hp.lr_scheduler_step),
                                                     gamma=hp.lr_scheduler_factor)
        return {"scheduler": sched, "interval": "epoch"}
    if hp.lr_scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
        return {"scheduler": sched, "interval": "step"}
    if hp.lr_scheduler == "poly":
        sched = torch.optim.lr_scheduler.PolynomialLR(optimizer, total_iters=max(1, total_steps), power=0.9)
        return {"scheduler": sched, "interval": "step"}
    return None
