"""The algorithm contract: a hyperparameter model, data preparation, ``build_model``, a LightningModule and an
input spec. One engine (``oculi.engine``) trains every algorithm through this contract."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.utils.data import Dataset

from oculi.config import AUTO, Auto, HyperParameters, Range, parse_int_list
from oculi.errors import ConfigError, DataError
from oculi.types import SampleSet, Task


class TrainingHyperparameters(HyperParameters):
    """The hyperparameters every built-in algorithm shares: SageMaker's learning-rate schedule and early stopping,
    and oculi's precision, bad-image, hold-out, seed and data-loading settings."""

    # SageMaker's default epoch count (what ``epochs=auto`` means without ``max_runtime``)
    default_epochs: ClassVar[int] = 30

    lr_scheduler: Literal["auto", "step", "cosine", "constant", "warmup_cosine"] = Field(
        AUTO, description="oculi addition. auto = warmup_cosine when max_runtime is set, else step when "
        "lr_scheduler_step is set, else cosine decay to 0. warmup_cosine = linear warm-up, then cosine decay to 0 "
        "over the run — with max_runtime, over the steps the time budget allows (planned from measured step "
        "times, re-planned after every epoch).")
    max_runtime: float | None = Field(None, gt=0, description="oculi addition (SageMaker's StoppingCondition."
                                      "MaxRuntimeInSeconds; also `oculi train --max-runtime`). Seconds this run "
                                      "may train, data reading included. At the limit training stops at a step "
                                      "boundary with a checkpoint and the best epoch's model (job status "
                                      "Stopped/MaxRuntimeExceeded). With epochs=auto the epochs are planned to fit, "
                                      "and the run Completes within it.")
    ema: Literal["auto", "on", "off"] = Field(
        AUTO, description="oculi addition. on: validate and keep an exponential moving average of the weights "
        "(decay 0.998, warmed up over the first steps) instead of the last ones; the bundle stores the averaged "
        "weights. auto = off. Why: it did not pay for object detection (bench/detection_quality.py -p ema=on): bees "
        "in 5 minutes mAP@0.5 0.399 against 0.448 without; coco128 person in 15 minutes 0.278 against 0.284 "
        "(mAP@[.5:.95] 0.085 against 0.076).")
    lr_scheduler_step: list[int] = Field(default_factory=list, description="Epochs at which the learning rate "
                                         "is multiplied by lr_scheduler_factor, e.g. \"10,20\".")
    lr_scheduler_factor: float = Field(0.1, ge=0, le=1, description="Learning-rate multiplier at each step.")
    early_stopping: bool = Field(False, description="Stop when the objective metric stops improving.")
    early_stopping_min_epochs: int = Field(10, ge=0, description="Epochs before early stopping may stop.")
    early_stopping_patience: int = Field(5, ge=1, description="Epochs without improvement before stopping.")
    early_stopping_tolerance: float = Field(0.0, ge=0, le=1, description="Relative improvement of the objective "
                                            "metric that counts as better.")
    precision_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        AUTO, description="auto = bf16 autocast + channels_last on CPUs with bf16 support, float16 mixed precision "
        "on GPU, float32 otherwise. float32 turns mixed precision off.")
    skip_bad_images: bool = Field(False, description="oculi addition. Skip (and list) unreadable images, and "
                                  "labels whose class id is outside the classes, instead of stopping before "
                                  "training.")
    label_attribute: str | None = Field(None, description="oculi addition. The augmented-manifest attribute that "
                                        "holds the labels when the lines have several (SageMaker's AttributeNames); "
                                        "also `oculi train --label-attribute NAME`.")
    validation_fraction: float = Field(0.2, gt=0, lt=1, description="oculi addition. Share of the training data "
                                       "held out (seeded, stratified) when no validation channel is given.")
    seed: int = Field(0, ge=0, description="oculi addition. Seed for weights, shuffling, augmentation and the "
                      "hold-out: the same seed reproduces the same run on CPU.")
    num_workers: Range(int, ge=0) | Auto = Field(AUTO, description="oculi addition. Data-loading processes; "
                                                 "auto = min(2, CPU cores) (0 on one core).")
    checkpoint_interval: float = Field(300, ge=0, description="oculi addition. Seconds of training between "
                                       "checkpoints written part-way through an epoch (last.ckpt, resumed exactly), "
                                       "so a killed job redoes at most about this much; 0 = at epoch ends only.")
    instance_count: int = Field(1, ge=1, description="SageMaker's instance count: data-parallel training (DDP "
                                "through torchrun) on N instances. Alone it runs N processes on this machine; with "
                                "--nodes N, one per machine. Each instance trains mini_batch_size images per step "
                                "(split across its --devices), so the global batch is N × mini_batch_size.")

    @field_validator("lr_scheduler_step", mode="before")
    @classmethod
    def _steps(cls, value: object) -> object:
        return parse_int_list(value)

    @model_validator(mode="after")
    def _schedule(self) -> TrainingHyperparameters:
        if self.lr_scheduler in ("cosine", "poly") and self.max_runtime and self.epochs == AUTO:
            raise ValueError(f"`lr_scheduler={self.lr_scheduler}` decays over `epochs`, but `epochs` is auto with "
                             f"`max_runtime` ({self.max_runtime:g} s), which plans the epochs while training; pass "
                             "-p epochs=N, or leave lr_scheduler out (auto = warm-up + cosine planned over the "
                             "time budget).")
        if self.lr_scheduler in ("cosine", "constant", "warmup_cosine") and self.lr_scheduler_step:
            raise ValueError(f"`lr_scheduler={self.lr_scheduler}` conflicts with `lr_scheduler_step` "
                             f"({','.join(map(str, self.lr_scheduler_step))}); drop one of them.")
        if self.lr_scheduler == "step" and not self.lr_scheduler_step:
            raise ValueError("`lr_scheduler=step` needs `lr_scheduler_step`, e.g. -p lr_scheduler_step=10,20.")
        return self


def check_channels(algorithm: str, channels: dict[str, Any], known: Iterable[str], train_hint: str) -> None:
    """Stop with a ConfigError when ``channels`` name one that ``algorithm`` does not use, or lack ``train``
    (``train_hint`` says what to pass instead)."""
    unknown = sorted(set(channels) - set(known))
    if unknown:
        raise ConfigError(f"channel(s) {', '.join(unknown)} are not used by {algorithm}; valid: "
                          f"{', '.join((*known, 'model'))}.")
    if "train" not in channels:
        raise ConfigError(f"no `train` channel; pass {train_hint}.")


def check_or_skip(sets: dict[str, SampleSet], hp: TrainingHyperparameters, progress: bool,
                  notes: list[str]) -> tuple[dict[str, SampleSet], Any]:
    """Run the data check; stop with its report (a DataError) unless every error is an unreadable image or a
    class id outside the classes and ``skip_bad_images`` is set, in which case those images and labels are left
    out and listed in ``notes``."""
    from oculi.data.checks import SKIPPABLE_CODES, SKIPPABLE_LABEL_CODES, check_classification, drop_bad_images

    report = check_classification(sets, progress=progress)
    if report.ok:
        return sets, report
    blocking = [f for f in report.errors() if f.code not in (*SKIPPABLE_CODES, *SKIPPABLE_LABEL_CODES)]
    if blocking or not hp.skip_bad_images:
        first = (blocking or report.errors())[0]
        raise DataError(f"The data cannot be trained on: {len(report.errors())} error(s), e.g. "
                        f"{first.location()}: {first.message}", report=report)
    skipped = sorted(str(p) for p in report.bad_images)
    if skipped:
        notes.append(f"skip_bad_images=true: skipped {len(skipped)} unreadable image(s): " + ", ".join(skipped))
    labels = [f.location() for f in report.errors() if f.code in SKIPPABLE_LABEL_CODES]
    if labels:
        notes.append(f"skip_bad_images=true: left out {len(labels)} label(s) whose class id is outside the classes: "
                     + ", ".join(labels))
    return drop_bad_images(sets, report), report


def hold_out(sets: dict[str, SampleSet], hp: TrainingHyperparameters,
             notes: list[str]) -> tuple[SampleSet, SampleSet]:
    """``(train, validation)``: the validation channel, or a seeded stratified part of train (said in ``notes``)."""
    from oculi.data.split import stratified_split

    if "validation" in sets:
        return sets["train"], sets["validation"]
    train, validation = stratified_split(sets["train"], hp.validation_fraction, hp.seed)
    notes.append(f"no validation channel: held out {len(validation)} of {len(train) + len(validation)} training "
                 f"images ({hp.validation_fraction:.0%}, stratified, seed {hp.seed}) for validation")
    return train, validation


def checked_split(sets: dict[str, SampleSet], hp: TrainingHyperparameters, progress: bool,
                  notes: list[str]) -> tuple[SampleSet, SampleSet, Any]:
    """``(train, validation, report)``: :func:`check_or_skip`, then :func:`hold_out`."""
    sets, report = check_or_skip(sets, hp, progress, notes)
    train, validation = hold_out(sets, hp, notes)
    return train, validation, report


def with_resolved(hp: HyperParameters, updates: dict[str, Any]) -> Any:
    """``hp`` with the resolved ``auto`` values in ``updates``, its cross-field rules run again on them."""
    hp = hp.model_copy(update=updates)
    return type(hp).model_validate(hp.model_dump(), context={"resolved": True})


BUDGET_EPOCHS = 10_000  # epochs=auto with max_runtime: the trainer's bound until the time budget plans the real count


def resolve_common(hp: TrainingHyperparameters, train: SampleSet, classes: list[str], notes: list[str],
                   default_schedule: str = "cosine") -> dict[str, Any]:
    """Resolve the shared ``auto`` values (num_classes from the data, epochs, lr_scheduler, num_workers,
    precision_dtype) and check num_classes / num_training_samples against the data; returns the updates, notes
    what it did. ``default_schedule``: what ``lr_scheduler=auto`` means without ``max_runtime`` and
    ``lr_scheduler_step`` (the algorithm's SageMaker default)."""
    up: dict[str, Any] = {}
    num_classes = getattr(hp, "num_classes", None)
    if num_classes is None:
        up["num_classes"] = len(classes)
        notes.append(f"num_classes=auto → {len(classes)} (from the data)")
    elif num_classes != len(classes):
        raise ConfigError(f"`num_classes` is {num_classes} but the training data has {len(classes)} classes "
                          f"({', '.join(classes[:10])}{' …' if len(classes) > 10 else ''}). Pass "
                          f"-p num_classes={len(classes)} or leave it out.")
    samples = getattr(hp, "num_training_samples", None)
    if samples is not None and samples != len(train):
        notes.append(f"warning: num_training_samples={samples} but {len(train)} images train (oculi uses the real "
                     "count)")
    if hp.epochs == AUTO:
        up["epochs"] = BUDGET_EPOCHS if hp.max_runtime else hp.default_epochs
        notes.append(f"epochs=auto → as many as max_runtime={hp.max_runtime:g} s allows (planned from measured "
                     "step times)" if hp.max_runtime else f"epochs=auto → {hp.default_epochs}")
    if hp.lr_scheduler == AUTO:
        up["lr_scheduler"] = ("step" if hp.lr_scheduler_step else "warmup_cosine" if hp.max_runtime
                              else default_schedule)
        why = " (warm-up, then cosine decay planned over the time budget)" if up["lr_scheduler"] == \
            "warmup_cosine" else ""
        notes.append(f"lr_scheduler=auto → {up['lr_scheduler']}{why}")
    if hp.num_workers == AUTO:
        cores = os.cpu_count() or 1
        up["num_workers"] = 0 if cores < 2 else min(2, cores)
        notes.append(f"num_workers=auto → {up['num_workers']} ({cores} CPU core{'s' if cores > 1 else ''})")
    if hp.ema == AUTO:
        up["ema"] = "off"
        notes.append("ema=auto → off")
    if hp.precision_dtype == AUTO:
        from oculi.precision import auto_precision

        up["precision_dtype"] = auto_precision()
        notes.append(f"precision_dtype=auto → {up['precision_dtype']}")
    return up


@dataclass
class ExportPlan:
    """How a network is exported to ONNX and checked (see :mod:`oculi.export.onnx`): its output names, dynamic
    axes, the traced example input, the normalised ``float32 [B, 3, H, W]`` inputs compared between PyTorch and
    onnxruntime, and optionally ``final_check(predictor, onnx_runtime) → (name, summary, problems)``, a check of
    the whole predictor (decoding, postprocessing) with either runtime, recorded under ``name`` in the report
    (``summary["result"]``: what it found, in words)."""

    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    example: Any
    samples: list[Any]
    final_check: Callable[[Any, Any], tuple[str, dict[str, Any], list[str]]] | None = None


@dataclass
class LoaderSpec:
    """What an algorithm declares about one split's data; the engine builds the DataLoader from it
    (:mod:`oculi.engine.data_order`: seeded, exactly resumable order, DDP shards, worker processes from
    ``num_workers``, the batch split across devices).

    ``dataset[i]`` is one sample in the sample vocabulary (e.g. ``(uint8 [3, H, W] image, target)``), augmented
    with torch's random generator (the engine seeds it per sample). ``batch_size``: images per step of one
    instance. ``collate_fn`` joins a list of samples into a batch (None = torch's default stacking). Sampling:
    ``weights`` (one non-negative weight per sample) draws ``len(dataset)`` samples per epoch with replacement
    (``balanced_sampling``); otherwise ``shuffle`` gives a new permutation each epoch, or the dataset's order."""

    dataset: Dataset
    batch_size: int
    collate_fn: Callable[[list[Any]], Any] | None = None
    shuffle: bool = False
    weights: Sequence[float] | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != len(self):
            raise ValueError(f"LoaderSpec: {len(self.weights)} sampling weights for {len(self)} samples (one "
                             "weight per sample).")


@dataclass
class PreparedData:
    """What an algorithm's ``prepare`` hands the engine: checked sample sets, the resolved hyperparameters, what
    to load for training and validation (:class:`LoaderSpec`; the engine builds the loaders) and the notes to print
    (auto values resolved, hold-out made, images skipped …)."""

    train: SampleSet
    validation: SampleSet
    classes: list[str]
    hyperparameters: HyperParameters
    train_data: LoaderSpec
    val_data: LoaderSpec
    notes: list[str] = field(default_factory=list)
    report: Any = None


class Algorithm(ABC):
    """A built-in algorithm. Subclasses set the class attributes and implement the abstract methods."""

    name: ClassVar[str]
    task: ClassVar[Task]
    summary: ClassVar[str]
    hyperparameters: ClassVar[type[HyperParameters]]
    metric: ClassVar[str]  # the SageMaker objective metric, e.g. "validation:accuracy"
    metric_mode: ClassVar[str] = "max"
    # the tiny configuration: the same code path at sizes that train in seconds on CPU (contract tests, demos)
    tiny_hyperparameters: ClassVar[dict[str, str]] = {}
    # other networks on the same contract, each a name → the overrides of tiny_hyperparameters selecting it
    # (e.g. detection's {"ssd": {"network": "ssd"}} beside its default FCOS); the contract tests run every one
    tiny_variants: ClassVar[dict[str, dict[str, str]]] = {}
    # an algorithm-specific ONNX export plan, ``(model, input spec) → ExportPlan``; None = the task's plan
    export_plan: ClassVar[Callable[[nn.Module, dict[str, Any]], ExportPlan] | None] = None

    @abstractmethod
    def prepare(self, channels: dict[str, Any], hp: HyperParameters, *, init_meta: dict[str, Any] | None,
                image_roots: dict[str, Path] | None, progress: bool) -> PreparedData:
        """Read and check the channels, resolve data-dependent ``auto`` values, declare what the engine loads
        (:class:`LoaderSpec` per split)."""

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

    def after_training(self, module: L.LightningModule, metrics: dict[str, float], classes: list[str]) -> list[str]:
        """Warnings about the trained model — the best epoch's ``metrics`` — printed after training (e.g. no
        better than a trivial baseline); none by default."""
        return []

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
