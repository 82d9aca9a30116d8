"""The local runner: submit a training job, run it attached (in this process) or detached (in a child process that
outlives the CLI), queue jobs so at most ``OCULI_MAX_PARALLEL_JOBS`` run at once, stop, resume, wait, and find
workers that died.

Queue: a new job is ``InProgress/Pending``. :func:`dispatch` (run by ``oculi train --detach``, by every worker when
it finishes, by every ``oculi jobs`` command and by the control-plane server) takes the queue lock, marks dead
workers' jobs ``Failed``, and starts a worker (``python -m oculi.jobs.worker NAME``) for the oldest pending jobs
while fewer than the limit are active. No process sits waiting for a slot.

Folders: ``$OCULI_HOME/jobs/<name>/`` holds ``logs/train.log``, ``checkpoints/`` (``last.ckpt`` after every
epoch, every ``checkpoint_interval`` seconds and at a stop) and ``output/model/`` (the model bundle, unless
``--output`` named another folder).

Kinds of job: a built-in algorithm in the worker process; a distributed one (``-p instance_count=N``, ``--devices``,
``--nodes``) whose worker starts torchrun and its ranks; and script mode, whose worker runs the user's script as a
child process with SageMaker's ``SM_*`` contract (:mod:`oculi.jobs.script`). Script folders: ``model/``
(``SM_MODEL_DIR``), ``output/`` (``SM_OUTPUT_DIR``), ``input/config/`` and ``metrics.csv`` under ``--output`` (else
the job folder), and ``checkpoints/`` (``SM_CHECKPOINT_DIR``) in the job folder, kept across resumes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oculi.errors import ConfigError, DataError, JobError, OculiError
from oculi.jobs import status as S
from oculi.jobs.store import JobStore, check_name, generate_name
from oculi.processes import is_alive, process_token, reap_children, start_background  # noqa: F401 - re-exported
from oculi.settings import oculi_home, settings

WORKER_DIED = "worker process died"
STOP_POLL_SECONDS = 1.0  # how often a running job looks in the store for a stop request (SIGTERM is immediate)


@dataclass
class JobSpec:
    """What a training job is asked to do. Paths are stored as given (absolute after :func:`submit`).

    ``entry_point`` / ``source_dir`` / ``metric_definitions`` are script mode (SageMaker's "bring your own
    script"): when ``entry_point`` is set the worker runs :func:`oculi.jobs.script.run_script` instead of a
    built-in algorithm. ``distributed`` holds the ``--nodes`` / ``--devices`` / rendezvous options
    (:class:`oculi.engine.distributed.Distributed` as a dict). ``tags`` are SageMaker-style key/value tags (a
    tuning job's trials carry ``{"TuningJob": NAME, "TrialNumber": N}``); ``callbacks`` are extra
    :class:`~oculi.engine.callbacks.CallbackFactory` specs ``{"target": "module:function", "kwargs": {…}}`` built
    in the training process (a tuning job's early stopping)."""

    algorithm: str | None = None
    channels: dict[str, str] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] | None = None
    name: str | None = None
    output: str | None = None
    init_model: str | None = None
    image_roots: dict[str, str] | None = None
    entry_point: str | None = None
    source_dir: str | None = None
    metric_definitions: list[Any] | None = None
    distributed: dict[str, Any] | None = None
    tags: dict[str, Any] | None = None
    callbacks: list[dict[str, Any]] | None = None

    def base_name(self) -> str:
        """The default job name's prefix: the algorithm, or the script's name."""
        if self.algorithm:
            return self.algorithm
        return Path(self.entry_point or "script").stem.replace("_", "-")


def max_parallel() -> int:
    """``OCULI_MAX_PARALLEL_JOBS`` (default 1: on CPU two trainings only slow each other down)."""
    return settings().max_parallel_jobs


def job_dir(name: str) -> Path:
    """``$OCULI_HOME/jobs/<name>``."""
    return oculi_home() / "jobs" / name


def checkpoint_dir(job: dict[str, Any]) -> Path:
    """The job's checkpoint folder (``SM_CHECKPOINT_DIR`` for a script)."""
    return Path(job["job_dir"]) / "checkpoints"


def checkpoint_path(job: dict[str, Any]) -> Path:
    """The built-in algorithms' resumable checkpoint, ``checkpoints/last.ckpt``."""
    return checkpoint_dir(job) / "last.ckpt"


def script_run_dir(job: dict[str, Any]) -> Path:
    """A script job's run folder: ``--output`` or the job folder (holds model/, output/, input/, metrics.csv)."""
    return Path(job["spec"]["output"] or job["job_dir"])


def _hostname() -> str:
    return socket.gethostname()


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": _hostname(), "process_token": process_token(os.getpid())}


@contextlib.contextmanager
def queue_lock() -> Iterator[None]:
    """The local queue's lock (a file lock in ``$OCULI_HOME``): one process at a time counts slots and starts jobs."""
    path = oculi_home() / "queue.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def reap(store: JobStore) -> list[str]:
    """Mark jobs whose worker process is gone ``Failed`` ("worker process died"); returns their names. Only jobs
    run on this host are checked (another host's workers are that host's business)."""
    reap_children()
    dead = []
    host = _hostname()
    for job in store.list(secondary=(*S.ACTIVE, S.PENDING)):
        if job["host"] not in (None, host):
            continue
        if job["secondary_status"] == S.PENDING and not job["spec"].get("attached"):
            continue  # queued for a worker: nothing runs it yet
        if job["pid"] is None:
            if job["secondary_status"] == S.PENDING or time.time() - job["updated_at"] < 60:
                continue  # a worker is being started under the queue lock
        elif is_alive(job["pid"], job["process_token"]):
            continue
        with contextlib.suppress(JobError):
            at = job["secondary_status"]
            store.transition(job["name"], S.FAILED, f"{WORKER_DIED} (while {at})", expect=at,
                             failure_reason=f"{WORKER_DIED} (pid {job['pid']}, while {at}); resume it with "
                             f"`oculi jobs resume {job['name']}`", pid=None, training_end=time.time())
            dead.append(job["name"])
    return dead


def _spawn_worker(name: str, log_path: Path) -> subprocess.Popen:
    return start_background(["oculi.jobs.worker", name], log_path)


def dispatch(store: JobStore | None = None) -> list[str]:
    """Reap dead workers, then start workers for the oldest pending (detached) jobs while slots are free.
    Returns the names started."""
    store = store or JobStore()
    started = []
    with queue_lock():
        reap(store)
        free = max_parallel() - store.count_active()
        if free <= 0:
            return started
        pending = [j for j in reversed(store.list(secondary=(S.PENDING,))) if not j["spec"].get("attached")]
        for job in pending[:free]:
            try:
                store.transition(job["name"], S.STARTING, "worker starting", expect=S.PENDING, pid=None,
                                 host=_hostname())
            except JobError:
                continue
            child = _spawn_worker(job["name"], Path(job["log_path"]))
            store.update(job["name"], pid=child.pid, process_token=process_token(child.pid))
            started.append(job["name"])
    return started


# ---- submit ---------------------------------------------------------------------------------------------------
def _absolute(path: Any) -> str:
    return str(Path(path).expanduser().resolve())


def _check_script(spec: JobSpec) -> None:
    """Script mode: resolve the entry point (relative to ``source_dir``), check the channels and metric
    definitions now, so that a mistake is an error at submit time rather than a failed job."""
    from oculi.jobs.script import check_inputs, parse_metric_definitions

    bad = [flag for flag, value in (("--recipe", spec.recipe), ("--init-model", spec.init_model),
                                    ("--image-root", spec.image_roots), ("--nodes/--devices", spec.distributed))
           if value]
    if bad:
        raise ConfigError(f"{', '.join(bad)} apply to built-in algorithms; in script mode pass data as channels "
                          "and settings as -p name=value (your script reads them).")
    entry, src, _ = check_inputs(spec.entry_point, spec.source_dir, spec.channels, spec.hyperparameters)
    spec.entry_point, spec.source_dir = str(entry), str(src)
    spec.metric_definitions = [{"Name": d.name, "Regex": d.regex.pattern}
                               for d in parse_metric_definitions(spec.metric_definitions)]


def _check_builtin(spec: JobSpec) -> None:
    """A built-in algorithm's job: check now what would otherwise fail the job as it starts — the algorithm's
    name, every hyperparameter (recipe and ``-p`` layers merged as training merges them; one ConfigError lists
    every problem), the channels (each path exists), the ``--init-model`` bundle and the DDP layout — so that a
    mistake is an error at submit time and no Failed job is recorded. Reads no image."""
    from oculi.engine.distributed import Distributed
    from oculi.engine.training import plan_run

    _check_channel_paths(spec.channels)
    plan_run(spec.algorithm or "", spec.channels, spec.hyperparameters, recipe=spec.recipe, output=spec.output,
             init_model=spec.init_model, overwrite=True,
             distributed=Distributed(**spec.distributed) if spec.distributed else None)


def _check_channel_paths(channels: dict[str, Any]) -> None:
    """A DataError naming the first channel whose path does not exist."""
    for name, value in channels.items():
        if not Path(value).expanduser().exists():
            option = f"--{name}" if name in ("train", "validation") else f"--channel {name}=PATH"
            raise DataError(f"The {name} channel {value} does not exist; pass an existing folder (or file) to "
                            f"{option}.")


def check(spec: JobSpec) -> None:
    """Check a job spec as :func:`submit` does, recording nothing (a script's entry point, channels and metric
    definitions; a built-in algorithm's name, hyperparameters, channels, ``--init-model`` and DDP layout)."""
    if spec.entry_point:
        _check_script(spec)
    else:
        _check_builtin(spec)


def submit(spec: JobSpec, store: JobStore | None = None, *, attached: bool = False) -> dict[str, Any]:
    """Record a new job (``InProgress/Pending``) and return its record. Detached jobs are started by
    :func:`dispatch` (call it next); an attached job is run by the caller with :func:`run_attached`. The job is
    checked first, and nothing is recorded when the check fails (ConfigError / DataError / ArtifactError): a
    script job's entry point, channels and metric definitions; a built-in algorithm's name, hyperparameters,
    channels, ``--init-model`` and DDP layout."""
    store = store or JobStore()
    if not spec.algorithm and not spec.entry_point:
        raise ConfigError("A training job needs an algorithm (e.g. image-classification) or an --entry-point script.")
    if spec.algorithm and spec.entry_point:
        raise ConfigError(f"Pass either an algorithm ({spec.algorithm}) or an entry point ({spec.entry_point}), "
                          "not both.")
    check(spec)
    spec.channels = {k: _absolute(v) for k, v in spec.channels.items()}
    for attr in ("output", "init_model"):
        if getattr(spec, attr):
            setattr(spec, attr, _absolute(getattr(spec, attr)))
    if spec.image_roots:
        spec.image_roots = {k: _absolute(v) for k, v in spec.image_roots.items()}
    spec.hyperparameters = {k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                            for k, v in spec.hyperparameters.items()}

    def record(name: str, folder: Path) -> dict[str, Any]:
        if spec.entry_point:
            model_dir = Path(spec.output or folder) / "model"
        else:
            model_dir = Path(spec.output) if spec.output else folder / "output" / "model"
        return {"name": name, "algorithm": spec.algorithm or "script", "spec": {**asdict(spec), "attached": attached},
                "job_dir": str(folder), "model_dir": str(model_dir), "log_path": str(folder / "logs" / "train.log"),
                **(_me() if attached else {"host": None})}

    return create_named(store, spec.name, spec.base_name(), record, "--name")


def create_named(store: JobStore, name: str | None, base: str, record: Callable[[str, Path], dict[str, Any]],
                 option: str, message: str = "job created; waiting for a slot") -> dict[str, Any]:
    """Store the job ``record(name, job folder)`` under ``name`` (checked against SageMaker's rule) or, when it
    is None, a generated ``<base>-YYYY-MM-DD-HH-MM-SS-mmm`` (the next millisecond's when two jobs are named in the
    same one); makes the log's folder and returns the stored record. ``option`` is the flag that names a job."""
    for _ in range(100):
        job_name = check_name(name) if name is not None else generate_name(base)
        try:
            job = store.create(record(job_name, job_dir(job_name)), message=message)
            break
        except JobError:
            if name is not None:
                raise
            time.sleep(0.002)
    else:
        raise JobError(f"Could not find a free job name; pass {option}.")
    Path(job["log_path"]).parent.mkdir(parents=True, exist_ok=True)
    return job


# ---- running a job --------------------------------------------------------------------------------------------
class _Tee:
    """An ``echo`` that appends each line to the job's log (and prints it, when attached)."""

    def __init__(self, log_path: Path, echo: Callable[[str], None] | None) -> None:
        self.log_path, self.echo = log_path, echo
        log_path.parent.mkdir(parents=True, exist_ok=True)

    def __call__(self, line: str) -> None:
        with self.log_path.open("a") as f:
            f.write(f"{line}\n")
        if self.echo is not None:
            self.echo(line)


class _StopWatch:
    """The job's ``stop_requested``: true after SIGTERM, or once the store says ``Stopping`` (looked up at most
    every STOP_POLL_SECONDS)."""

    def __init__(self, store: JobStore, name: str) -> None:
        self.store, self.name = store, name
        self.flag = threading.Event()
        self._last = 0.0

    def __call__(self) -> bool:
        if self.flag.is_set():
            return True
        now = time.monotonic()
        if now - self._last >= STOP_POLL_SECONDS:
            self._last = now
            job = self.store.find(self.name)
            if job is not None and job["secondary_status"] == S.STOPPING:
                self.flag.set()
        return self.flag.is_set()


def _failure_reason(e: BaseException, job: dict[str, Any]) -> str:
    from oculi.jobs.script import ScriptError

    if isinstance(e, ScriptError):
        return e.failure_reason
    if isinstance(e, OculiError):
        return str(e)
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"No space left on the device while writing {e.filename or job['model_dir']}: free some space "
                "(or pass --output on another disk) and resume the job.")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST):
        return (f"Cannot write {e.filename or job['model_dir']} ({e.strerror}): pass a writable --output folder "
                "or fix its permissions, then resume the job.")
    where = job["log_path"]
    return (f"The algorithm raised {type(e).__name__}: {e}. The traceback is in {where}; this is likely a bug in "
            "oculi or in the script — please report it with the log.")[:1024]


def job_callbacks(name: str) -> list[Any]:
    """The callbacks that report job ``name``'s progress to the store, for the training process that writes
    (rank 0 of a distributed run; the only process otherwise). Built through a
    :class:`~oculi.engine.callbacks.CallbackFactory` so that it also runs inside torchrun's ranks."""
    if os.environ.get("RANK", "0") != "0":
        return []
    store = JobStore()
    return [_job_progress(store, name, Path(store.get(name)["job_dir"]))]


def _job_progress(store: JobStore, name: str, folder: Path) -> Any:
    """A Lightning callback that moves the job to Training / Uploading, records metrics and checkpoints, and
    writes the step progress a foreground command draws (:mod:`oculi.jobs.progress`, ``folder/progress.json``)."""
    import lightning as L

    from oculi.jobs.progress import ProgressRecorder, progress_path, total_steps

    recorder = ProgressRecorder(progress_path(folder))

    def record(trainer: L.Trainer, phase: str, batch: int, batches: Any, force: bool = False) -> None:
        recorder(force=force, epoch=trainer.current_epoch + 1, epochs=trainer.max_epochs, step=trainer.global_step,
                 steps=total_steps(trainer), phase=phase, batch=batch,
                 batches=batches if isinstance(batches, int) else None)

    class JobProgress(L.Callback):
        at_epoch_end = False

        def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            record(trainer, "train", batch_idx + 1, trainer.num_training_batches,
                   force=batch_idx + 1 >= trainer.num_training_batches)

        def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                                    batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
            if trainer.sanity_checking:
                return
            counts = trainer.num_val_batches
            record(trainer, "validate", batch_idx + 1, counts[dataloader_idx] if counts else None)

        def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
            # Record a checkpoint in the store only once its file is in place (ModelCheckpoint runs after us).
            io = trainer.strategy.checkpoint_io
            save = io.save_checkpoint

            def recorded(checkpoint: dict[str, Any], path: Any, *args: Any, **kwargs: Any) -> None:
                save(checkpoint, path, *args, **kwargs)
                if Path(path).name == "last.ckpt":
                    history = checkpoint.get("callbacks", {}).get("EpochHistory", {}).get("history")
                    done = len(history) if history is not None else trainer.current_epoch  # epochs completed
                    store.update(name, checkpoint={"path": str(path), "epoch": done,
                                                   "step": int(checkpoint.get("global_step", trainer.global_step)),
                                                   "time": time.time(), "mid_epoch": not self.at_epoch_end})

            io.save_checkpoint = recorded

        def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            self.at_epoch_end = False

        def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            hp = getattr(pl_module, "hp", None)
            fields: dict[str, Any] = {}
            if hp is not None and hasattr(hp, "model_dump"):
                fields["hyperparameters"] = hp.model_dump(mode="json")
            job = store.get(name)
            if job["training_start"] is None:
                fields["training_start"] = time.time()
            store.drop_metrics_after(name, trainer.current_epoch)
            if job["secondary_status"] == S.STARTING:
                store.transition(name, S.TRAINING, f"training from epoch {trainer.current_epoch + 1}",
                                 expect=S.STARTING, **fields)
            elif fields:
                store.update(name, **fields)

        def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            values = {}
            for k, v in trainer.callback_metrics.items():
                if ":" in k:
                    f = float(v.item() if hasattr(v, "item") else v)
                    if f == f:
                        values[k] = f
            epoch = trainer.current_epoch + 1
            store.add_metrics(name, values, epoch=epoch, step=trainer.global_step)
            self.at_epoch_end = True

        def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            job = store.get(name)
            if job["secondary_status"] == S.TRAINING:
                store.transition(name, S.UPLOADING, "writing the model bundle", expect=S.TRAINING)

    return JobProgress()


def run_job(name: str, store: JobStore | None = None, echo: Callable[[str], None] | None = None,
            *, reraise: bool = False) -> dict[str, Any]:
    """Run job ``name`` (which must be ``Starting``) in this process and record how it ended. ``echo`` also
    prints what goes to the log (attached runs); ``reraise`` re-raises the error that failed the job."""
    store = store or JobStore()
    job = store.get(name)
    spec = job["spec"]
    log = _Tee(Path(job["log_path"]), echo)
    watch = _StopWatch(store, name)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: watch.flag.set())
    ckpt = checkpoint_path(job)
    resume = spec.get("resume") or {}
    resume_from = str(ckpt) if resume and ckpt.exists() else None
    log(f"job {name}: {'resuming' if resume else 'starting'} (attempt {job['attempts'] + 1}); "
        f"pid {os.getpid()}; log {job['log_path']}")
    try:
        if spec.get("entry_point"):
            result = _run_script(job, store, log, watch)
            job = _finish(store, name, log, metrics=result.final_metrics, stopped=result.stopped,
                          stop_message="the script was stopped (SIGTERM to its process group)")
        else:
            from oculi.engine.callbacks import CallbackFactory
            from oculi.engine.distributed import Distributed
            from oculi.engine.training import train

            result = train(
                spec["algorithm"], spec["channels"], spec["hyperparameters"], recipe=spec.get("recipe"),
                output=job["model_dir"], init_model=spec.get("init_model"),
                image_roots={k: Path(v) for k, v in spec["image_roots"].items()} if spec.get("image_roots") else None,
                progress=False, overwrite=True, echo=log, checkpoint_dir=checkpoint_dir(job),
                resume_from=resume_from, restart_schedule=bool(resume.get("restart_schedule")),
                stop_requested=watch, callbacks=[CallbackFactory(f"{__name__}:job_callbacks", {"name": name}),
                                                 *(CallbackFactory(**c) for c in spec.get("callbacks") or [])],
                distributed=Distributed(**spec["distributed"]) if spec.get("distributed") else None,
            )
            exceeded = bool(result.budget and result.budget["exceeded"])
            job = _finish(store, name, log, metrics=result.metrics, stopped=result.stopped,
                          stop_message=f"MaxRuntimeInSeconds ({result.budget['max_runtime']:g} s) reached: stopped "
                          "at a step boundary; checkpoint and the best epoch's model written" if exceeded
                          else "stopped at a step boundary; checkpoint written",
                          hyperparameters=result.hyperparameters,
                          end_as=S.MAX_RUNTIME_EXCEEDED if exceeded else S.STOPPED)
        job["result"] = result
    except KeyboardInterrupt:  # Ctrl-C on an attached run
        job = _end_stopped(store, name, "interrupted (Ctrl-C)", log)
        if reraise:
            raise
    except BaseException as e:  # noqa: BLE001 - every failure is recorded before it propagates
        if isinstance(e, OculiError):
            log(f"{type(e).__name__}: {e}")
        else:
            log("".join(traceback.format_exception(e)).rstrip())
        reason = _failure_reason(e, job)
        with contextlib.suppress(JobError):
            job = store.transition(name, S.FAILED, reason.splitlines()[0][:200], failure_reason=reason, pid=None,
                                   training_end=time.time())
        log(f"job {name} failed: {reason}")
        if reraise or not isinstance(e, Exception):
            raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return job


def _run_script(job: dict[str, Any], store: JobStore, log: Callable[[str], None], watch: _StopWatch) -> Any:
    """Run a script job's entry point (:func:`oculi.jobs.script.run_script`): Training once its process starts,
    each metric value into the store's time series as it is printed, the script's output into the job's log,
    ``SM_CHECKPOINT_DIR`` = the job's checkpoint folder (kept across resumes), a stop = SIGTERM to the script's
    process group. On success the job moves to Uploading and ``metrics.csv`` is written to the run folder."""
    import csv

    from oculi.jobs.script import run_script

    name, spec = job["name"], job["spec"]
    run = script_run_dir(job)
    ckpt_dir = checkpoint_dir(job)
    # a resumed job's values continue the series: a metric's n-th value overall is step n
    offsets: dict[str, int] = {}
    for row in store.metrics(name):
        offsets[row["name"]] = max(offsets.get(row["name"], 0), (row["step"] or 0) + 1)
    base = dict(offsets)
    if spec.get("resume"):
        kept = sorted(p.name for p in ckpt_dir.glob("*")) if ckpt_dir.is_dir() else []
        log(f"checkpoint folder (SM_CHECKPOINT_DIR) {ckpt_dir}: "
            + (f"{len(kept)} file(s) kept for the script to resume from: {', '.join(kept[:5])}"
               + (" …" if len(kept) > 5 else "") if kept else "empty; the script starts from the beginning"))

    def started(proc: Any) -> None:
        fields: dict[str, Any] = {"hyperparameters": spec["hyperparameters"]}
        if store.get(name)["training_start"] is None:
            fields["training_start"] = time.time()
        with contextlib.suppress(JobError):  # a stop already moved it to Stopping: the script is stopped next
            store.transition(name, S.TRAINING, f"running {Path(spec['entry_point']).name} (pid {proc.pid})",
                             expect=S.STARTING, **fields)

    def recorded(point: Any) -> None:
        store.add_metrics(name, {point.name: point.value}, step=base.get(point.name, 0) + point.step)

    result = run_script(spec["entry_point"], spec["channels"], spec["hyperparameters"], model_dir=run / "model",
                        output_dir=run / "output", input_dir=run / "input", source_dir=spec["source_dir"],
                        checkpoint_dir=ckpt_dir, metric_definitions=spec.get("metric_definitions") or [],
                        on_metric=recorded, on_start=started, echo=log, job_name=name, stop_requested=watch)
    for note in result.notes:
        log(note)
    if not result.stopped:
        with contextlib.suppress(JobError):  # Stopping: a stop came as the script ended; _finish says so
            store.transition(name, S.UPLOADING, f"script exited 0; model files: {len(result.model_files)}",
                             expect=S.TRAINING)
    rows = store.metrics(name)
    if rows:
        with (run / "metrics.csv").open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["timestamp", "name", "step", "value"])
            writer.writerows([r["time"], r["name"], r["step"], r["value"]] for r in rows)
    return result


def _end_stopped(store: JobStore, name: str, message: str, log: Callable[[str], None],
                 end_as: str = S.STOPPED) -> dict[str, Any]:
    """Move the job to Stopped (through Stopping), or straight to ``end_as`` = MaxRuntimeExceeded (SageMaker's
    secondary status of a job its time limit stopped)."""
    job = store.get(name)
    if job["secondary_status"] != S.STOPPING and end_as == S.STOPPED:
        job = store.transition(name, S.STOPPING, message)
    job = store.transition(name, end_as, message, pid=None, training_end=time.time())
    log(f"job {name} stopped; resume it with `oculi jobs resume {name}`")
    return job


def _finish(store: JobStore, name: str, log: Callable[[str], None], *, metrics: dict[str, float], stopped: bool,
            stop_message: str, hyperparameters: dict[str, Any] | None = None,
            end_as: str = S.STOPPED) -> dict[str, Any]:
    """Record how a run that returned ended: Stopped (``stopped``: a stop request or the time limit ended it —
    ``end_as`` Stopped or MaxRuntimeExceeded —, ``stop_message`` says how) or Completed, with ``metrics`` as the
    final metrics and the resolved ``hyperparameters``."""
    fields: dict[str, Any] = {"final_metrics": dict(metrics)}
    if hyperparameters:
        fields["hyperparameters"] = hyperparameters
    if stopped:
        store.update(name, **fields)
        return _end_stopped(store, name, stop_message, log, end_as)
    job = store.get(name)
    if job["secondary_status"] == S.STOPPING:  # a stop arrived while the bundle was being written
        store.update(name, **fields)
        return _end_stopped(store, name, "stop requested after training finished; the model is complete", log)
    if job["secondary_status"] != S.UPLOADING:
        job = store.transition(name, S.UPLOADING if job["secondary_status"] == S.TRAINING else S.TRAINING,
                               "training finished")
        if job["secondary_status"] == S.TRAINING:
            store.transition(name, S.UPLOADING, "writing the model bundle")
    job = store.transition(name, S.COMPLETED, "training job completed", pid=None, training_end=time.time(),
                           **fields)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    log(f"job {name} completed: {shown}; model {job['model_dir']}")
    return job


def run_attached(job: dict[str, Any], store: JobStore | None = None,
                 echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Take a queue slot for an attached job (waiting while the queue is full) and run it in this process.
    The error that fails the job propagates (with its own exit code)."""
    store = store or JobStore()
    name = job["name"]
    said = False
    while True:
        with queue_lock():
            reap(store)
            if store.claim(name, max_parallel(), "running attached", **_me()):
                break
        if store.get(name)["secondary_status"] != S.PENDING:  # stopped while waiting
            return store.get(name)
        if not said and echo:
            echo(f"waiting for a free slot: {store.count_active()} job(s) running, OCULI_MAX_PARALLEL_JOBS="
                 f"{max_parallel()}")
            said = True
        time.sleep(0.5)
    try:
        return run_job(name, store, echo, reraise=True)
    finally:
        with contextlib.suppress(Exception):
            dispatch(store)


# ---- control --------------------------------------------------------------------------------------------------
def stop(name: str, store: JobStore | None = None) -> dict[str, Any]:
    """Ask a job to stop: a running job checkpoints at the next step boundary and ends ``Stopped``; a pending
    one is stopped at once. Stopping a finished job is an error that says so."""
    store = store or JobStore()
    with queue_lock():
        reap(store)
        job = store.get(name)
        at = job["secondary_status"]
        if at in S.TERMINAL:
            raise JobError(f"Job {name!r} has already ended ({at}); nothing to stop.")
        if at == S.STOPPING:
            return job
        job = store.transition(name, S.STOPPING, "stop requested", expect=at)
        if at == S.PENDING and not job["spec"].get("attached"):
            return store.transition(name, S.STOPPED, "stopped before it started", expect=S.STOPPING,
                                    training_end=time.time())
    # SIGTERM makes a running job stop at once (it also polls the store, at most every STOP_POLL_SECONDS); a
    # worker still Starting may not have its handler yet (SIGTERM would kill it), so it finds out from the store
    if at in (S.TRAINING, S.UPLOADING) and job["pid"] and job["host"] == _hostname() \
            and is_alive(job["pid"], job["process_token"]) and job["pid"] != os.getpid():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(job["pid"], signal.SIGTERM)
    return job


def resume(name: str, epochs: int | None = None, store: JobStore | None = None,
           attached: bool = False) -> dict[str, Any]:
    """Put an ended job back in the queue to continue from its last checkpoint; ``epochs`` extends it to that
    many epochs in total (a completed job needs it). Returns the record (``Pending``).

    A script job is run again with the same arguments, folders and ``SM_CHECKPOINT_DIR`` (SageMaker's checkpoint
    contract: the script restores what it saved there); ``epochs`` becomes its ``--epochs`` argument. A
    multi-machine (``--nodes`` > 1) job cannot be resumed: its checkpoint is on node 0 only."""
    store = store or JobStore()
    with queue_lock():
        reap(store)
        job = store.get(name)
        at = job["secondary_status"]
        if at not in S.TERMINAL:
            raise JobError(f"Job {name!r} is {job['status']}/{at}; only a Completed, Stopped or Failed job can be "
                           f"resumed (stop it first with `oculi jobs stop {name}`).")
        if job.get("kind") == "transform":
            raise JobError(f"Job {name!r} is a batch transform; run the same `oculi transform` again (same --output) "
                           "and it continues, skipping the images already done.")
        spec = dict(job["spec"])
        if (spec.get("distributed") or {}).get("nodes", 1) not in (None, 1):
            raise JobError(f"Job {name!r} ran on {spec['distributed']['nodes']} machines; resuming a multi-machine "
                           "job is not supported (node 0 alone holds the checkpoint, the others cannot load it). "
                           "Start it again with the same command on every machine.")
        if spec.get("entry_point"):
            return _resume_script(store, job, spec, epochs, attached)
        ckpt = checkpoint_path(job)
        if not ckpt.exists():
            raise JobError(f"Job {name!r} has no checkpoint ({ckpt} is missing: it ended before its first epoch "
                           "finished). Start a new job with the same settings instead.")
        trained = (job["checkpoint"] or {}).get("epoch")
        given = str((job["hyperparameters"] or {}).get("epochs") or spec["hyperparameters"].get("epochs") or 0)
        current = int(given) if given.isdigit() else 0  # "auto": the run had not planned its epochs yet
        extend = False
        if epochs is not None:
            if trained is not None and epochs <= trained:
                raise JobError(f"Job {name!r} has already trained {trained} epoch(s); --epochs is the new total, "
                               f"so pass more than {trained}.")
            extend = at == S.COMPLETED or (current and epochs > current)
            spec["hyperparameters"] = {**spec["hyperparameters"], "epochs": str(epochs)}
        elif at == S.COMPLETED:
            raise JobError(f"Job {name!r} completed all {current or trained} epochs; nothing to resume. Extend it "
                           f"with `oculi jobs resume {name} --epochs {(current or trained or 0) + 5}`.")
        spec["resume"] = {"restart_schedule": bool(extend), "from_status": at}
        where = f"epoch {trained}" if trained is not None else "the last checkpoint"
        message = (f"extend to {epochs} epochs from {where}" if extend else f"resume from {where}")
        return _requeue(store, job, spec, message, attached)


def rerun(name: str, message: str, store: JobStore | None = None) -> dict[str, Any]:
    """Put an ended job back in the queue to run again from the start (detached), e.g. a tuning trial whose worker
    died before its first checkpoint; ``message`` records why. Returns the record (``Pending``)."""
    store = store or JobStore()
    with queue_lock():
        reap(store)
        job = store.get(name)
        if job["secondary_status"] not in S.TERMINAL:
            raise JobError(f"Job {name!r} is {job['status']}/{job['secondary_status']}; only an ended job can be "
                           "run again.")
        spec = {k: v for k, v in job["spec"].items() if k != "resume"}
        return _requeue(store, job, spec, message, attached=False)


def _resume_script(store: JobStore, job: dict[str, Any], spec: dict[str, Any], epochs: int | None,
                   attached: bool) -> dict[str, Any]:
    name, at = job["name"], job["secondary_status"]
    if epochs is not None:
        spec["hyperparameters"] = {**spec["hyperparameters"], "epochs": str(epochs)}
    elif at == S.COMPLETED:
        raise JobError(f"Job {name!r} completed; nothing to resume. To train longer, pass the new total with "
                       f"`oculi jobs resume {name} --epochs N` (it becomes the script's --epochs argument; the "
                       "script continues from what it saved in SM_CHECKPOINT_DIR).")
    spec["resume"] = {"from_status": at}
    files = len(list(checkpoint_dir(job).glob("*"))) if checkpoint_dir(job).is_dir() else 0
    message = (f"rerun the script with its checkpoint folder ({files} file(s))"
               + (f" and --epochs {epochs}" if epochs is not None else ""))
    return _requeue(store, job, spec, message, attached)


def _requeue(store: JobStore, job: dict[str, Any], spec: dict[str, Any], message: str,
             attached: bool) -> dict[str, Any]:
    spec["attached"] = attached
    fields: dict[str, Any] = {"spec": spec, "failure_reason": None, "attempts": job["attempts"] + 1,
                              "training_end": None, "pid": None, "process_token": None, "host": None}
    if attached:
        fields.update(_me())
    return store.transition(job["name"], S.PENDING, message, expect=job["secondary_status"], **fields)


def wait(name: str, store: JobStore | None = None, poll: float = 0.5, timeout: float | None = None,
         on_change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Block until job ``name`` ends (Completed, Failed or Stopped); returns its record. Runs the queue too, so a
    job whose worker died is found and the next pending job starts."""
    store = store or JobStore()
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = None
    last_dispatch = 0.0
    while True:
        if time.monotonic() - last_dispatch > 2:
            dispatch(store)
            last_dispatch = time.monotonic()
        job = store.get(name)
        if on_change and job["secondary_status"] != seen:
            on_change(job)
        seen = job["secondary_status"]
        if seen in S.TERMINAL:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise JobError(f"Job {name!r} is still {job['status']}/{seen} after {timeout:.0f} s.")
        time.sleep(poll)


def follow_log(job: dict[str, Any], store: JobStore, write: Callable[[str], None], follow: bool = False,
               poll: float = 0.5) -> None:
    """Write the job's log; with ``follow``, keep writing new lines until the job ends."""
    path = Path(job["log_path"])
    pos = 0
    while True:
        if path.exists():
            with path.open("r", errors="replace") as f:
                f.seek(pos)
                chunk = f.read()
                pos = f.tell()
            if chunk:
                write(chunk)
        if not follow:
            return
        current = store.get(job["name"])
        if current["secondary_status"] in S.TERMINAL:
            if path.exists() and path.stat().st_size > pos:
                continue
            return
        dispatch(store)
        time.sleep(poll)
