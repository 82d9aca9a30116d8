"""Optimisers and learning-rate schedules by SageMaker's names, shared by every algorithm's LightningModule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


def build_optimizer(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], hp: Any) -> torch.optim.Optimizer:
    """The optimiser ``hp.optimizer`` names (sgd, nag, adam, rmsprop, adadelta, adagrad) at ``hp.learning_rate``
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
    if name == "adam":
        betas = (float(getattr(hp, "beta_1", 0.9)), float(getattr(hp, "beta_2", 0.999)))
        return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
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


def build_schedule(optimizer: torch.optim.Optimizer, hp: Any, total_steps: int) -> dict[str, Any] | None:
    """Lightning's ``lr_scheduler`` entry for ``hp.lr_scheduler``: ``step`` multiplies the rate by
    ``lr_scheduler_factor`` at the epochs in ``lr_scheduler_step``; ``cosine`` decays it to 0 over
    ``total_steps`` optimiser steps; ``poly`` multiplies it by ``(1 - step / total_steps) ** 0.9`` (DeepLab's
    schedule, SageMaker segmentation's default); ``constant`` (or none) keeps it."""
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
