"""``train()``: one flow for every registered algorithm — resolve hyperparameters, read and check the data, build
the model (ImageNet / ``--init-model`` weights), fit with Lightning, write the model bundle with the best epoch."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oculi.errors import ConfigError

if TYPE_CHECKING:
    from oculi.engine.distributed import Distributed


@dataclass
class TrainResult:
    """What a finished training returns: where the bundle is, the best epoch's metrics and the history."""

    model_dir: Path
    metrics: dict[str, float]
    best_epoch: int | None
    history: list[dict[str, float]]
    hyperparameters: dict[str, Any]
    classes: list[str]
    seconds: float
    notes: list[str] = field(default_factory=list)
    stopped: bool = False  # a stop request (job stop, SIGTERM) ended training early; the bundle holds the best epoch
    resumed_from: dict[str, int] | None = None  # {"epoch", "step"} a resumed run continued from
    checkpoint: dict[str, int] | None = None  # {"epoch", "step"} of the stop checkpoint, when stopped


def oculi_home() -> Path:
    """Where oculi keeps state: ``$OCULI_HOME`` or ``~/.oculi``."""
    return Path(os.environ.get("OCULI_HOME", "~/.oculi")).expanduser()


def default_output(algorithm: str) -> Path:
    """A fresh output folder for a run: ``$OCULI_HOME/runs/<algorithm>-YYYY-MM-DD-HH-MM-SS-mmm``."""
    stamp = datetime.now().strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    return oculi_home() / "runs" / f"{algorithm}-{stamp}"


def _quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.accelerators.cuda",
                 "lightning.fabric.utilities.seed", "lightning.pytorch.trainer.connectors.signal_connector"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*number of training batches.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")


def _split_channels(channels: Mapping[str, Any], init_model: Path | str | None) -> tuple[dict[str, Any], Path | None]:
    channels = dict(channels)
    model_channel = channels.pop("model", None)
    if model_channel is not None and init_model is not None:
        raise ConfigError("Both --init-model and a `model` channel are given; they are the same thing, pass one.")
    init = model_channel if model_channel is not None else init_model
    return channels, (Path(init).expanduser() if init is not None else None)


def train(
    algorithm: str,
    channels: Mapping[str, Any],
    hyperparameters: Mapping[str, Any] | None = None,
    *,
    recipe: Mapping[str, Any] | None = None,
    output: Path | str | None = None,
    init_model: Path | str | None = None,
    image_roots: dict[str, Path] | None = None,
    progress: bool = True,
    overwrite: bool = False,
    echo: Callable[[str], None] = print,
    checkpoint_dir: Path | str | None = None,
    resume_from: Path | str | None = None,
    restart_schedule: bool = False,
    stop_requested: Callable[[], bool] | None = None,
    callbacks: Sequence[Any] = (),
    distributed: Distributed | None = None,
) -> TrainResult:
    """Train ``algorithm`` on named ``channels`` (``{"train": path, "validation": path, …}``; ``model`` = an
    earlier bundle for incremental training, same as ``init_model``) and write the model bundle to ``output``.

    ``hyperparameters`` override ``recipe``, which overrides the defaults; values may be SageMaker strings.
    Checkpoints go to ``checkpoint_dir`` (default ``output/checkpoints``): ``last.ckpt`` after every epoch and every
    ``checkpoint_interval`` seconds within one, written atomically. ``resume_from`` continues from such a
    checkpoint (weights, optimizer, schedule, RNG and data order, epoch/step, history); ``restart_schedule``
    starts a new cosine decay when a finished run is extended.
    ``stop_requested()`` is polled after every step: when true, a checkpoint is written and training stops
    (``TrainResult.stopped``). A stop part-way through an epoch resumes exactly: the rest of the epoch sees the
    same samples in the same order with the same augmentations (:mod:`oculi.engine.data_order`). ``callbacks`` are
    extra Lightning callbacks or :class:`~oculi.engine.callbacks.CallbackFactory` (the only kind that reaches the
    processes of a distributed run; the jobs layer's progress reporting is one).

    ``-p instance_count=N`` or ``distributed`` (nodes, devices, rendezvous) train with DDP through torchrun
    (:mod:`oculi.engine.distributed`); only rank 0 prints and writes. Checkpoints, resume and stop requests work
    the same way there: the ranks agree on the step to stop at, and rank 0 writes one checkpoint with every
    rank's random state.

    Returns a :class:`TrainResult`; raises ConfigError / DataError with what to fix."""
    import lightning as L
    import torch

    from oculi.algorithms import get_algorithm
    from oculi.artifacts import load_state, read_meta, read_weights, resolve_bundle_path, save_bundle
    from oculi.config import resolve
    from oculi.engine import distributed as ddp
    from oculi.engine.callbacks import (
        AtomicCheckpointIO,
        CallbackFactory,
        EpochHistory,
        EpochProgressBar,
        GracefulStop,
        PeriodicCheckpoint,
        RandomState,
        RelativeEarlyStopping,
        ResumeNotice,
    )
    from oculi.engine.data_order import DataPosition, restore_position, resumable
    from oculi.precision import lightning_precision

    started = time.perf_counter()
    _quiet_lightning()
    algo = get_algorithm(algorithm)
    hp = resolve(algo.hyperparameters, recipe, hyperparameters, algorithm=algo.name)
    channels, init_path = _split_channels(channels, init_model)
    init_meta = None
    if init_path is not None:
        init_path = resolve_bundle_path(init_path)
        init_meta = read_meta(init_path)

    out = Path(output).expanduser() if output else default_output(algo.name)
    if (out / "model.json").exists() and not overwrite:
        raise ConfigError(f"{out} already holds a model bundle; pass another --output folder (or --overwrite).")
    layout = ddp.plan(getattr(hp, "instance_count", 1), hp.mini_batch_size, distributed)
    ckpt_dir = Path(checkpoint_dir).expanduser() if checkpoint_dir else out / "checkpoints"
    if layout.needs_launch:
        objects = [c for c in callbacks if not isinstance(c, CallbackFactory)]
        if objects:
            raise ConfigError(f"{type(objects[0]).__name__} is a callback object, which cannot reach the torchrun "
                              "processes of a distributed run; pass an oculi.engine.callbacks.CallbackFactory.")
        echo(layout.describe(hp.mini_batch_size))
        return ddp.launch(layout, algorithm=algorithm, channels=channels, hyperparameters=hyperparameters,
                          recipe=recipe, output=out, init_model=init_path, image_roots=image_roots,
                          overwrite=overwrite, echo=echo, checkpoint_dir=ckpt_dir, resume_from=resume_from,
                          restart_schedule=restart_schedule, stop_requested=stop_requested,
                          callbacks=[c for c in callbacks if isinstance(c, CallbackFactory)])
    if not layout.is_global_zero:
        echo, progress = (lambda _line: None), False
    out.mkdir(parents=True, exist_ok=True)

    L.seed_everything(hp.seed, workers=True, verbose=False)
    data = algo.prepare(channels, hp, init_meta=init_meta, image_roots=image_roots, progress=progress)
    hp = data.hyperparameters
    data.train_loader = resumable(data.train_loader, seed=hp.seed, batch_size=layout.batch_per_device,
                                  rank=layout.rank, world_size=layout.world_size)
    for note in data.notes:
        echo(note)
    counts = data.train.class_counts()
    echo(f"training on {len(data.train)} images, validating on {len(data.validation)}; class histogram: "
         + ", ".join(f"{name} {counts.get(i, 0)}" for i, name in enumerate(data.classes)))

    model = algo.build_model(hp, data.classes, pretrained=init_meta is None)
    if init_meta is not None and init_path is not None:
        algo.check_init_model(hp, data.classes, init_meta)
        load_state(model, read_weights(init_path), f"--init-model {init_path}")
        echo(f"incremental training from {init_path}")
    precision = lightning_precision(str(hp.precision_dtype))
    if precision != "32-true":
        model = model.to(memory_format=torch.channels_last)
    module = algo.lightning_module(model, data)

    history = EpochHistory(algo.metric, algo.metric_mode, out / "metrics.csv", echo)
    extra_callbacks = [made for c in callbacks for made in (c.build() if isinstance(c, CallbackFactory) else [c])]
    callbacks: list[L.Callback] = [
        DataPosition(data.train_loader),
        history,
        RandomState([data.train_loader]),
        L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=algo.metric,
                                            mode=algo.metric_mode, save_last=True, enable_version_counter=False),
    ]
    show_bar = progress and sys.stdout.isatty()  # in logs the per-epoch lines say it all
    if show_bar:
        callbacks.append(EpochProgressBar())
    frequency = getattr(hp, "checkpoint_frequency", None)
    if frequency:
        callbacks.append(L.pytorch.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir, filename="epoch-{epoch}", every_n_epochs=frequency, save_top_k=-1,
            enable_version_counter=False))
    if getattr(hp, "checkpoint_interval", 0):
        callbacks.append(PeriodicCheckpoint(ckpt_dir / "last.ckpt", hp.checkpoint_interval))
    if getattr(hp, "early_stopping", False):
        callbacks.append(RelativeEarlyStopping(algo.metric, algo.metric_mode, hp.early_stopping_min_epochs,
                                               hp.early_stopping_patience, hp.early_stopping_tolerance, echo))
    stopper = GracefulStop(stop_requested, ckpt_dir / "last.ckpt", echo) if stop_requested else None
    if stopper:
        callbacks.append(stopper)
    notice = ResumeNotice(echo, restart_schedule) if resume_from else None
    if notice:
        callbacks.append(notice)
    callbacks += extra_callbacks
    trainer = L.Trainer(
        max_epochs=hp.epochs, **layout.trainer_options(), precision=precision, callbacks=callbacks,
        logger=False, enable_model_summary=False, num_sanity_val_steps=0, enable_progress_bar=show_bar,
        default_root_dir=out, log_every_n_steps=1, plugins=[AtomicCheckpointIO()],
    )
    echo(f"training {algo.name} for {hp.epochs} epoch(s), precision {hp.precision_dtype}, output {out}")
    if resume_from:
        restore_position(data.train_loader, resume_from)
    interrupted = False
    try:
        trainer.fit(module, data.train_loader, data.val_loader, ckpt_path=resume_from, weights_only=True)
    except SystemExit:  # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1)
        if not trainer.interrupted:
            raise
        interrupted = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left it ignored

    model = module.model
    ddp.check_replicas(layout, trainer.global_step, model, out, echo)
    load_state(model, history.best_model_state(module), "best epoch weights")
    model = model.to(memory_format=torch.contiguous_format).cpu().eval()
    best = next((row for row in history.history if row["epoch"] == history.best_epoch), {})
    metrics = {k: v for k, v in best.items() if k not in ("epoch", "seconds")}
    meta = {
        "algorithm": algo.name,
        "task": algo.task,
        "hyperparameters": hp.model_dump(mode="json"),
        "classes": data.classes,
        "input": algo.input_spec(hp),
        "metrics": metrics,
        "best_epoch": history.best_epoch,
        "history": history.history,
        "dataset": {"fingerprint": data.fingerprint, "train_images": len(data.train),
                    "validation_images": len(data.validation),
                    "class_counts": {name: counts.get(i, 0) for i, name in enumerate(data.classes)}},
        "init_model": str(init_path) if init_path else None,
    }
    if layout.is_global_zero:
        save_bundle(out, meta, model)
    # a stop request that arrived during validation ends through Lightning's own SIGTERM handling instead
    stopped = interrupted and stopper is not None and (stopper.requested or bool(stop_requested and stop_requested()))
    if interrupted and not stopped:
        kept = f"the best epoch so far ({history.best_epoch})" if history.best_epoch else "the initial weights"
        echo(f"interrupted after {len(history.history)} epoch(s); the bundle in {out} holds {kept}")
        raise KeyboardInterrupt
    seconds = time.perf_counter() - started
    return TrainResult(model_dir=out, metrics=metrics, best_epoch=history.best_epoch, history=history.history,
                       hyperparameters=meta["hyperparameters"], classes=data.classes, seconds=seconds,
                       notes=data.notes, stopped=stopped, resumed_from=notice.resumed_from if notice else None,
                       checkpoint=stopper.saved if stopper else None)
