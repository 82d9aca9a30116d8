"""``train()``: one flow for every registered algorithm, in named steps —

1. :func:`plan_run`: resolve the hyperparameters, read the ``--init-model`` metadata, pick the output folder and the
   process layout (the jobs layer runs this step alone to check a job at submit time);
2. :func:`prepare`: read and check the data, build the loaders from the algorithm's declaration, build the model
   (ImageNet / ``--init-model`` weights) and its LightningModule;
3. :func:`build_trainer`: callbacks and the Lightning ``Trainer``;
4. :func:`fit`: train (resuming at the checkpoint's exact data position), Ctrl-C and stop requests included;
5. :func:`write_bundle`: the model bundle with the best epoch's weights (:func:`bundle_meta` is its model.json)."""

from __future__ import annotations

import logging
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
from oculi.settings import oculi_home

if TYPE_CHECKING:
    import lightning as L
    from torch.utils.data import DataLoader

    from oculi.algorithms.base import Algorithm, PreparedData
    from oculi.config import HyperParameters
    from oculi.engine.callbacks import EpochHistory, GracefulStop, ResumeNotice, TimeBudget
    from oculi.engine.data_order import ResumableLoader
    from oculi.engine.distributed import Distributed, Plan


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
    # with max_runtime: {"max_runtime": s, "epochs": the epochs the budget allowed (planned, or trained when not
    # planned), "exceeded": whether the limit stopped training (SageMaker's MaxRuntimeExceeded)}
    budget: dict[str, Any] | None = None


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

    The steps, each its own function: :func:`plan_run` → (:func:`oculi.engine.distributed.launch` when the run
    needs torchrun) → :func:`prepare` → :func:`build_trainer` → :func:`fit` → :func:`write_bundle`.

    Returns a :class:`TrainResult`; raises ConfigError / DataError with what to fix."""
    from oculi.engine import distributed as ddp
    from oculi.engine.callbacks import CallbackFactory

    started, clock = time.perf_counter(), time.monotonic()
    _quiet_lightning()
    run = plan_run(algorithm, channels, hyperparameters, recipe=recipe, output=output, init_model=init_model,
                   overwrite=overwrite, checkpoint_dir=checkpoint_dir, distributed=distributed)
    if run.layout.needs_launch:
        objects = [c for c in callbacks if not isinstance(c, CallbackFactory)]
        if objects:
            raise ConfigError(f"{type(objects[0]).__name__} is a callback object, which cannot reach the torchrun "
                              "processes of a distributed run; pass an oculi.engine.callbacks.CallbackFactory.")
        echo(run.layout.describe(run.hyperparameters.mini_batch_size))
        return ddp.launch(run.layout, algorithm=algorithm, channels=run.channels, hyperparameters=hyperparameters,
                          recipe=recipe, output=run.output, init_model=run.init_path, image_roots=image_roots,
                          overwrite=overwrite, echo=echo, checkpoint_dir=run.checkpoint_dir, resume_from=resume_from,
                          restart_schedule=restart_schedule, stop_requested=stop_requested,
                          callbacks=[c for c in callbacks if isinstance(c, CallbackFactory)])
    if not run.layout.is_global_zero:
        echo, progress = (lambda _line: None), False
    run.output.mkdir(parents=True, exist_ok=True)

    prepared = prepare(run, image_roots=image_roots, progress=progress, echo=echo)
    setup = build_trainer(run, prepared, progress=progress, echo=echo, stop_requested=stop_requested,
                          resume_from=resume_from, restart_schedule=restart_schedule, callbacks=callbacks,
                          started=clock)
    interrupted = fit(setup, prepared, resume_from=resume_from)
    meta = write_bundle(run, prepared, setup, echo=echo)
    warnings_ = run.algorithm.after_training(prepared.module, meta["metrics"], meta["classes"])
    for line in warnings_:
        echo(line)

    history = setup.history
    # a stop request that arrived during validation ends through Lightning's own SIGTERM handling instead
    stopper = setup.stopper
    stopped = interrupted and stopper is not None and (stopper.requested or bool(stop_requested and stop_requested()))
    budget = _budget_summary(setup, stopped, echo)
    if interrupted and not stopped:
        kept = f"the best epoch so far ({history.best_epoch})" if history.best_epoch else "the initial weights"
        echo(f"interrupted after {len(history.history)} epoch(s); the bundle in {run.output} holds {kept}")
        raise KeyboardInterrupt
    seconds = time.perf_counter() - started
    return TrainResult(model_dir=run.output, metrics=meta["metrics"], best_epoch=history.best_epoch,
                       history=history.history, hyperparameters=meta["hyperparameters"], classes=meta["classes"],
                       seconds=seconds, notes=[*prepared.data.notes, *warnings_], stopped=stopped,
                       resumed_from=setup.notice.resumed_from if setup.notice else None,
                       checkpoint=stopper.saved if stopper else None, budget=budget)


def _budget_summary(setup: TrainerSetup, stopped: bool, echo: Callable[[str], None]) -> dict[str, Any] | None:
    """What the time budget allowed (None without ``max_runtime``), said in one line."""
    budget = setup.budget
    if budget is None:
        return None
    trained = len(setup.history.history)
    exceeded = stopped and budget.exceeded
    epochs = budget.planned if budget.planned is not None and not exceeded else trained
    if exceeded:
        echo(f"max_runtime {budget.max_runtime:g} s reached after {trained} complete epoch(s): training stopped "
             "(MaxRuntimeExceeded); the checkpoint and the best epoch's model are written")
    else:
        partial = f" (the last one partial: {budget.last_steps} steps)" if budget.last_steps else ""
        echo(f"time budget: max_runtime {budget.max_runtime:g} s allowed {epochs} epoch(s){partial}")
    return {"max_runtime": budget.max_runtime, "epochs": epochs, "exceeded": exceeded}


@dataclass
class RunPlan:
    """What :func:`plan_run` decides before any data is read: the algorithm, its hyperparameters (``auto`` values
    not resolved yet), the data channels, the ``--init-model`` bundle, where outputs and checkpoints go, and the
    process layout (single process, or DDP ranks)."""

    algorithm: Algorithm
    hyperparameters: HyperParameters
    channels: dict[str, Any]
    init_path: Path | None
    init_meta: dict[str, Any] | None
    output: Path
    checkpoint_dir: Path
    layout: Plan


def plan_run(algorithm: str, channels: Mapping[str, Any], hyperparameters: Mapping[str, Any] | None = None, *,
             recipe: Mapping[str, Any] | None = None, output: Path | str | None = None,
             init_model: Path | str | None = None, overwrite: bool = False,
             checkpoint_dir: Path | str | None = None, distributed: Distributed | None = None) -> RunPlan:
    """Step 1, plan: look the algorithm up, validate the hyperparameters (one ConfigError listing every problem),
    read the ``--init-model`` bundle's metadata, pick the output folder (refusing one that holds a bundle unless
    ``overwrite``) and the process layout. Reads no data and writes nothing."""
    from oculi.algorithms import get_algorithm
    from oculi.artifacts import read_meta, resolve_bundle_path
    from oculi.config import resolve
    from oculi.engine import distributed as ddp

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
    return RunPlan(algorithm=algo, hyperparameters=hp, channels=channels, init_path=init_path, init_meta=init_meta,
                   output=out, checkpoint_dir=ckpt_dir, layout=layout)


@dataclass
class Prepared:
    """What :func:`prepare` hands on: the algorithm's checked data (with the resolved hyperparameters), the
    loaders the engine built from its :class:`~oculi.algorithms.base.LoaderSpec` s, the Lightning precision and the
    LightningModule around the network."""

    data: PreparedData
    train_loader: ResumableLoader
    val_loader: DataLoader
    precision: str
    module: L.LightningModule

    @property
    def hyperparameters(self) -> Any:
        """The resolved hyperparameters (no ``auto`` left)."""
        return self.data.hyperparameters


def prepare(run: RunPlan, *, image_roots: dict[str, Path] | None = None, progress: bool = False,
            echo: Callable[[str], None] = print) -> Prepared:
    """Step 2, prepare: seed everything, let the algorithm read and check the data and resolve its ``auto``
    values (each printed), build the training loader (exactly resumable, this rank's shard) and the validation
    loader, build the network (ImageNet or ``--init-model`` weights) in the memory format of the precision policy,
    and wrap it in the algorithm's LightningModule."""
    import lightning as L

    from oculi.artifacts import load_state, read_weights
    from oculi.engine.data_order import training_loader, validation_loader
    from oculi.precision import lightning_precision, memory_format

    algo, layout = run.algorithm, run.layout
    L.seed_everything(run.hyperparameters.seed, workers=True, verbose=False)
    data = algo.prepare(run.channels, run.hyperparameters, init_meta=run.init_meta, image_roots=image_roots,
                        progress=progress)
    hp = data.hyperparameters
    workers = int(hp.num_workers)
    train_loader = training_loader(data.train_data, seed=hp.seed, num_workers=workers,
                                   batch_size=layout.batch_per_device, rank=layout.rank, world_size=layout.world_size)
    val_loader = validation_loader(data.val_data, seed=hp.seed, num_workers=workers)
    for note in data.notes:
        echo(note)
    counts = data.train.class_counts()
    echo(f"training on {len(data.train)} images, validating on {len(data.validation)}; class histogram: "
         + ", ".join(f"{name} {counts.get(i, 0)}" for i, name in enumerate(data.classes)))

    model = algo.build_model(hp, data.classes, pretrained=run.init_meta is None)
    if run.init_meta is not None and run.init_path is not None:
        algo.check_init_model(hp, data.classes, run.init_meta)
        load_state(model, read_weights(run.init_path), f"--init-model {run.init_path}")
        echo(f"incremental training from {run.init_path}")
    precision = lightning_precision(str(hp.precision_dtype))
    model = memory_format(model, str(hp.precision_dtype))
    return Prepared(data=data, train_loader=train_loader, val_loader=val_loader, precision=precision,
                    module=algo.lightning_module(model, data))


@dataclass
class TrainerSetup:
    """The Lightning ``Trainer`` of a run and the oculi callbacks the later steps read: the per-epoch history
    (best epoch and its weights), the stop-request handler and the resume notice (None when not used)."""

    trainer: L.Trainer
    history: EpochHistory
    stopper: GracefulStop | None
    notice: ResumeNotice | None
    budget: TimeBudget | None = None


def build_trainer(run: RunPlan, prepared: Prepared, *, progress: bool = False, echo: Callable[[str], None] = print,
                  stop_requested: Callable[[], bool] | None = None, resume_from: Path | str | None = None,
                  restart_schedule: bool = False, callbacks: Sequence[Any] = (),
                  started: float | None = None) -> TrainerSetup:
    """Step 3, build the trainer: the callbacks (data position and random state for exact resume, the time budget
    of ``max_runtime`` counted from ``started`` — a ``time.monotonic()`` reading, default now —, per-epoch
    history, best/last/periodic checkpoints, early stopping, stop requests and the time limit, resume notice, a
    progress bar on a terminal, then the caller's ``callbacks`` — objects or :class:`CallbackFactory`) and the
    ``Trainer`` with the precision and process layout of the run."""
    import lightning as L

    from oculi.config import AUTO
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
        TimeBudget,
        WeightEMA,
    )
    from oculi.engine.data_order import DataPosition

    algo, hp, out, ckpt_dir = run.algorithm, prepared.hyperparameters, run.output, run.checkpoint_dir
    history = EpochHistory(algo.metric, algo.metric_mode, out / "metrics.csv", echo)
    extra = [made for c in callbacks for made in (c.build() if isinstance(c, CallbackFactory) else [c])]
    budget = None
    if getattr(hp, "max_runtime", None):
        auto_epochs = run.hyperparameters.epochs == AUTO  # the epochs are the budget's to plan
        budget = TimeBudget(hp.max_runtime, time.monotonic() if started is None else started,
                            cap=None if auto_epochs else hp.epochs,
                            plan_epochs=auto_epochs or hp.lr_scheduler == "warmup_cosine", echo=echo)
    made: list[L.Callback] = [
        DataPosition(prepared.train_loader),
        *([budget] if budget else []),  # before the history: an epoch's line shows the epochs planned after it
        history,
        *([WeightEMA()] if getattr(hp, "ema", "off") == "on" else []),  # after the history (see WeightEMA)
        RandomState([prepared.train_loader]),
        L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=algo.metric,
                                            mode=algo.metric_mode, save_last=True, enable_version_counter=False),
    ]
    show_bar = progress and sys.stdout.isatty()  # in logs the per-epoch lines say it all
    if show_bar:
        made.append(EpochProgressBar())
    frequency = getattr(hp, "checkpoint_frequency", None)
    if frequency:
        made.append(L.pytorch.callbacks.ModelCheckpoint(
            dirpath=ckpt_dir, filename="epoch-{epoch}", every_n_epochs=frequency, save_top_k=-1,
            enable_version_counter=False))
    if getattr(hp, "checkpoint_interval", 0):
        made.append(PeriodicCheckpoint(ckpt_dir / "last.ckpt", hp.checkpoint_interval))
    if getattr(hp, "early_stopping", False):
        made.append(RelativeEarlyStopping(algo.metric, algo.metric_mode, hp.early_stopping_min_epochs,
                                          hp.early_stopping_patience, hp.early_stopping_tolerance, echo))
    stopper = None
    if budget is not None:
        def should_stop() -> bool:
            return bool(stop_requested and stop_requested()) or budget.should_stop()

        stopper = GracefulStop(should_stop, ckpt_dir / "last.ckpt", echo, reason=lambda: (
            f"max_runtime {budget.max_runtime:g} s reached" if budget.exceeded else "stop requested"))
    elif stop_requested:
        stopper = GracefulStop(stop_requested, ckpt_dir / "last.ckpt", echo)
    if stopper:
        made.append(stopper)
    notice = ResumeNotice(echo, restart_schedule) if resume_from else None
    if notice:
        made.append(notice)
    made += extra
    trainer = L.Trainer(
        max_epochs=hp.epochs, **run.layout.trainer_options(), precision=prepared.precision, callbacks=made,
        logger=False, enable_model_summary=False, num_sanity_val_steps=0, enable_progress_bar=show_bar,
        default_root_dir=out, log_every_n_steps=1, plugins=[AtomicCheckpointIO()],
    )
    length = (f"as many epochs as max_runtime {hp.max_runtime:g} s allows" if budget and budget.cap is None
              else f"{hp.epochs} epoch(s)" + (f" at most, within max_runtime {hp.max_runtime:g} s" if budget else ""))
    echo(f"training {algo.name} for {length}, precision {hp.precision_dtype}, output {out}")
    return TrainerSetup(trainer=trainer, history=history, stopper=stopper, notice=notice, budget=budget)


def fit(setup: TrainerSetup, prepared: Prepared, *, resume_from: Path | str | None = None) -> bool:
    """Step 4, fit: put the training loader at the checkpoint's data position (when resuming) and run
    ``trainer.fit``. Returns True when it was interrupted (Ctrl-C, a stop request, SIGTERM) rather than finished;
    the trainer's state then holds the last completed step."""
    from oculi.engine.data_order import restore_position

    if resume_from:
        restore_position(prepared.train_loader, resume_from)
    trainer = setup.trainer
    try:
        trainer.fit(prepared.module, prepared.train_loader, prepared.val_loader, ckpt_path=resume_from,
                    weights_only=True)
    except SystemExit:  # Lightning turns Ctrl-C into a graceful shutdown and sys.exit(1)
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left it ignored
        return True
    return False


def bundle_meta(run: RunPlan, prepared: Prepared, history: EpochHistory,
                planned_epochs: int | None = None) -> dict[str, Any]:
    """The ``model.json`` of a run: algorithm, task, resolved hyperparameters (``epochs``: the ``planned_epochs``
    of a time budget, when it planned them), classes, input spec, the best epoch's metrics and the per-epoch
    history, and the dataset (fingerprint of the training and validation samples, image counts, class
    histogram)."""
    from oculi.artifacts import dataset_fingerprint

    algo, data = run.algorithm, prepared.data
    hp = prepared.hyperparameters
    if planned_epochs is not None:
        hp = hp.model_copy(update={"epochs": planned_epochs})
    best = next((row for row in history.history if row["epoch"] == history.best_epoch), {})
    counts = data.train.class_counts()
    return {
        "algorithm": algo.name,
        "task": algo.task,
        "hyperparameters": hp.model_dump(mode="json"),
        "classes": data.classes,
        "input": algo.input_spec(hp),
        "metrics": {k: v for k, v in best.items() if k not in ("epoch", "seconds")},
        "best_epoch": history.best_epoch,
        "history": history.history,
        "dataset": {"fingerprint": dataset_fingerprint([data.train, data.validation]),
                    "train_images": len(data.train), "validation_images": len(data.validation),
                    "class_counts": {name: counts.get(i, 0) for i, name in enumerate(data.classes)},
                    "channels": {name: str(Path(value).resolve()) for name, value in run.channels.items()
                                 if isinstance(value, (str, Path))}},
        "init_model": str(run.init_path) if run.init_path else None,
    }


def write_bundle(run: RunPlan, prepared: Prepared, setup: TrainerSetup, *,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Step 5, write the bundle: check that DDP replicas ended equal, load the best epoch's weights into the
    network (contiguous, CPU, eval mode) and — on rank 0 — save ``model.json`` + ``weights.safetensors`` to the
    output folder. Returns the metadata written."""
    import torch

    from oculi.artifacts import load_state, save_bundle
    from oculi.engine import distributed as ddp

    module, history = prepared.module, setup.history
    model = module.model
    ddp.check_replicas(run.layout, setup.trainer.global_step, model, run.output, echo)
    load_state(model, history.best_model_state(module), "best epoch weights")
    model = model.to(memory_format=torch.contiguous_format).cpu().eval()
    planned = None
    if setup.budget is not None and setup.budget.cap is None:  # epochs=auto: record what the budget allowed
        planned = setup.budget.planned or max(1, len(history.history))
    meta = bundle_meta(run, prepared, history, planned)
    if run.layout.is_global_zero:
        save_bundle(run.output, meta, model)
    return meta
