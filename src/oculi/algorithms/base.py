"""The algorithm contract: a hyperparameter model, data preparation, ``build_model``, a LightningModule and an
input spec. One engine (``oculi.engine``) trains every algorithm through this contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
from torch import nn
from torch.utils.data import DataLoader

from oculi.config import HyperParameters
from oculi.types import SampleSet, Task


@dataclass
class PreparedData:
    """What an algorithm's ``prepare`` hands the engine: checked sample sets, loaders, resolved
    hyperparameters and the notes to print (auto values resolved, hold-out made, images skipped …)."""

    train: SampleSet
    validation: SampleSet
    classes: list[str]
    hyperparameters: HyperParameters
    train_loader: DataLoader
    val_loader: DataLoader
    notes: list[str] = field(default_factory=list)
    report: Any = None
    fingerprint: str = ""


class Algorithm(ABC):
    """A built-in algorithm. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    task: ClassVar[Task]
    summary: ClassVar[str]
    hyperparameters: ClassVar[type[HyperParameters]]
    metric: ClassVar[str]  # the SageMaker objective metric, e.g. "validation:accuracy"
    metric_mode: ClassVar[str] = "max"

    @abstractmethod
    def prepare(self, channels: dict[str, Any], hp: HyperParameters, *, init_meta: dict[str, Any] | None,
                image_roots: dict[str, Path] | None, progress: bool) -> PreparedData:
        """Read and check the channels, resolve data-dependent ``auto`` values, build the loaders."""

    @abstractmethod
    def build_model(self, hp: HyperParameters, classes: list[str], *, pretrained: bool) -> nn.Module:
        """The network for ``hp``; ``pretrained`` loads the ImageNet/backbone weights the hyperparameters ask
        for (never when rebuilding a saved bundle)."""

    @abstractmethod
    def lightning_module(self, model: nn.Module, data: PreparedData) -> L.LightningModule:
        """Wrap ``model`` with its loss, metrics and optimiser for the engine."""

    @abstractmethod
    def input_spec(self, hp: HyperParameters) -> dict[str, Any]:
        """Preprocessing a bundle records for inference (sizes, mean/std, resize mode)."""

    def check_init_model(self, hp: HyperParameters, classes: list[str], meta: dict[str, Any]) -> None:
        """Raise a ConfigError when an ``--init-model`` bundle cannot start this training (another algorithm,
        other classes); algorithms add their own architecture checks."""
        from oculi.errors import ConfigError

        if meta.get("algorithm") != self.name:
            raise ConfigError(f"--init-model is a {meta.get('algorithm')} bundle; it cannot start {self.name} "
                              "training.")
        if list(meta["classes"]) != list(classes):
            raise ConfigError(f"--init-model has classes {meta['classes']} but the data has {classes}; incremental "
                              "training needs the same classes in the same order.")

    def model_from_meta(self, meta: dict[str, Any]) -> nn.Module:
        """Rebuild the (untrained) network a bundle's ``model.json`` describes."""
        hp = self.hyperparameters.model_validate(meta["hyperparameters"], context={"resolved": True})
        return self.build_model(hp, list(meta["classes"]), pretrained=False)
