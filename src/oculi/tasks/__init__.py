"""The task registry: one :class:`~oculi.tasks.base.TaskContract` per task (classification, detection,
segmentation), registered here explicitly. Every algorithm names its task (``Algorithm.task``); consumers look the
contract up — :func:`get_task`, :func:`task_of` — instead of branching on the name.

Also the entry points that need a bundle's task: :func:`load_predictor` (``oculi.load_model``) and
:func:`evaluate` (``oculi.evaluate``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from oculi.artifacts import ModelBundle, load_bundle
from oculi.inference.predictor import Predictor
from oculi.registry import Registry
from oculi.tasks.base import PredictOptions, TaskContract
from oculi.types import SampleSet

TASKS: Registry[TaskContract] = Registry("task", list_command="oculi algorithms list")


def _register_builtins() -> None:
    from oculi.tasks import classification, detection, segmentation

    for module in (classification, detection, segmentation):
        TASKS.register(module.CONTRACT.name, module.CONTRACT)


_register_builtins()


def get_task(name: str | None) -> TaskContract:
    """The contract of task ``name`` (None — a bundle written before tasks were recorded — is classification);
    an unknown name lists the registered ones."""
    return TASKS.get(name or "classification")


def task_of(item: ModelBundle | Predictor | dict[str, Any]) -> TaskContract:
    """The contract of a loaded bundle, a predictor or a bundle's ``model.json`` dict."""
    meta = item if isinstance(item, dict) else item.bundle.meta if isinstance(item, Predictor) else item.meta
    return get_task(meta.get("task"))


def predictor_for(bundle: ModelBundle, device: str | torch.device = "cpu", runtime: str = "torch",
                  precision: str = "auto") -> Predictor:
    """The predictor of ``bundle``'s task (see :func:`load_predictor`)."""
    return task_of(bundle).predictor(bundle, device, runtime, precision)


def load_predictor(path: str | Path, device: str | torch.device = "cpu", runtime: str = "torch",
                   precision: str = "auto") -> Predictor:
    """Load a bundle folder, a job output folder or a ``model.tar.gz`` as the predictor of its task.

    ``runtime``: ``torch`` (default) or ``onnx`` (needs ``model.onnx`` from ``oculi export MODEL --format onnx``;
    CPU only). ``precision`` (torch runtime): ``auto`` (default; bf16 autocast + channels_last where the CPU has
    native bf16), ``float32`` or ``bfloat16``. Raises :class:`~oculi.errors.ConfigError` for unknown or conflicting
    values and :class:`~oculi.errors.ArtifactError` for a bad bundle or a missing or stale ``model.onnx``."""
    return predictor_for(load_bundle(Path(path)), device, runtime, precision)


def evaluate(model: str | Path | Predictor, data: str | Path | SampleSet, *, output: Path | None = None,
             top_k: int | None = None, image_roots: dict[str, Path] | None = None, batch_size: int = 32,
             progress: bool = True, label_attribute: str | None = None) -> Any:
    """Evaluate a model bundle on labelled data with its task's evaluator and return its report (``metrics``;
    ``write(folder)``).

    ``model``: a bundle folder, a job output folder, a ``model.tar.gz`` or a loaded :class:`Predictor` (a path
    loads in float32, as training validates, on the GPU when one is present). ``data``: a dataset of the model's
    task in any format oculi reads, or a :class:`SampleSet`. ``output``: write the report folder there. ``top_k``:
    classification only. ``image_roots`` maps a manifest's S3 prefixes to local folders; ``label_attribute`` names
    its label attribute when the lines have several. Raises
    :class:`~oculi.errors.ConfigError` for a bad ``batch_size`` or an option the task does not take, and
    :class:`~oculi.errors.DataError` for data that does not fit the model."""
    from oculi.errors import ConfigError

    if batch_size < 1:
        raise ConfigError(f"`batch_size` got {batch_size}; expected an integer ≥ 1 (e.g. 32).")
    if isinstance(model, Predictor):
        predictor = model
    else:
        predictor = load_predictor(model, "cuda" if torch.cuda.is_available() else "cpu", precision="float32")
    if not isinstance(data, SampleSet):
        data = Path(data)
    return task_of(predictor).evaluate(predictor, data, output=output, top_k=top_k, image_roots=image_roots,
                                       batch_size=batch_size, progress=progress, label_attribute=label_attribute)


__all__ = ["TASKS", "PredictOptions", "TaskContract", "evaluate", "get_task", "load_predictor", "predictor_for",
           "task_of"]
