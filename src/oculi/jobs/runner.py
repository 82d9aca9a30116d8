"""The local runner: submit a training job, run it attached (in this process) or detached (in a child process that
outlives the CLI), queue jobs so at most ``OCULI_MAX_PARALLEL_JOBS`` run at once, stop, resume, wait, and find
workers that died.

Queue: a new job is ``InProgress/Pending``. :func:`dispatch` (run by ``oculi train --detach``, by every worker when
it finishes, by every ``oculi jobs`` command and by the control-plane server) takes the queue lock, marks dead
workers' jobs ``Failed``, and starts a worker (``python -m oculi.jobs.worker NAME``) for the oldest pending jobs
while fewer than the limit are active. No process sits waiting for a slot.

Folders: ``$OCULI_HOME/jobs/<name>/`` holds ``logs/train.log``, ``checkpoints/`` (``last.ckpt`` after every epoch and
at a stop) and ``output/model/`` (the model bundle, unless ``--output`` named another folder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oculi.engine.training import oculi_home
from oculi.errors import ConfigError, JobError, OculiError
from oculi.jobs import status as S
from oculi.jobs.store import JobStore, check_name, generate_name

WORKER_DIED = "worker process died"
STOP_POLL_SECONDS = 1.0  # how often a running job looks in the store for a stop request (SIGTERM is immediate)
_children: list[subprocess.Popen] = []  # workers this process started (reaped so they do not linger as zombies)


@dataclass
class JobSpec:
    """What a training job is asked to do. Paths are stored as given (absolute after :func:`submit`).

    ``entry_point`` / ``source_dir`` / ``metric_definitions`` are script mode (SageMaker's "bring your own
    script"): when ``entry_point`` is set the worker runs :func:`oculi.jobs.script.run_script` instead of a
    built-in algorithm."""

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
    metric_definitions: list[dict[str, str]] | None = None

    def base_name(self) -> str:
        if self.algorithm:
            return self.algorithm
        return Path(self.entry_point or "script").stem.replace("_", "-")


def max_parallel() -> int:
    """``OCULI_MAX_PARALLEL_JOBS`` (default 1: on CPU two trainings only slow each other down)."""
    value = os.environ.get("OCULI_MAX_PARALLEL_JOBS", "1")
    try:
        n = int(value)
        if n < 1:
            raise ValueError
    except ValueError:
        raise ConfigError(f"OCULI_MAX_PARALLEL_JOBS is {value!r}; expected an integer ≥ 1, e.g. "
                          "OCULI_MAX_PARALLEL_JOBS=2.") from None
    return n


def job_dir(name: str) -> Path:
    return oculi_home() / "jobs" / name


def checkpoint_path(job: dict[str, Any]) -> Path:
    return Path(job["job_dir"]) / "checkpoints" / "last.ckpt"


# ---- processes ------------------------------------------------------------------------------------------------
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_token(pid: int) -> str | None:
    """Boot id + start time of process ``pid`` (None if it does not exist): a pid reused after the worker died,
    or after a reboot, gives another token."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "unknown"
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie has finished: its parent just has not collected it yet
        return None
    return f"{_boot_id()}:{fields[19]}"


def is_alive(pid: int | None, token: str | None) -> bool:
    if not pid:
        return False
    if Path("/proc").is_dir() and Path("/proc/self/stat").exists():
        now = process_token(pid)
        return now is not None and (token is None or now == token or now == "unknown")
    try:  # no /proc (macOS): existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)
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
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    with log_path.open("ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "oculi.jobs.worker", name], stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                 close_fds=True)
    _children.append(child)
    return child


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


def submit(spec: JobSpec, store: JobStore | None = None, *, attached: bool = False) -> dict[str, Any]:
    """Record a new job (``InProgress/Pending``) and return its record. Detached jobs are started by
    :func:`dispatch` (call it next); an attached job is run by the caller with :func:`run_attached`."""
    store = store or JobStore()
    if not spec.algorithm and not spec.entry_point:
        raise ConfigError("A training job needs an algorithm (e.g. image-classification) or an --entry-point script.")
    spec.channels = {k: _absolute(v) for k, v in spec.channels.items()}
    for attr in ("output", "init_model", "entry_point", "source_dir"):
        if getattr(spec, attr):
            setattr(spec, attr, _absolute(getattr(spec, attr)))
    if spec.image_roots:
        spec.image_roots = {k: _absolute(v) for k, v in spec.image_roots.items()}
    spec.hyperparameters = {k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
                            for k, v in spec.hyperparameters.items()}
    given = spec.name is not None
    for _ in range(100):
        name = check_name(spec.name) if given else generate_name(spec.base_name())
        folder = job_dir(name)
        record = {
            "name": name, "algorithm": spec.algorithm or "script", "spec": {**asdict(spec), "attached": attached},
            "job_dir": str(folder), "model_dir": spec.output or str(folder / "output" / "model"),
            "log_path": str(folder / "logs" / "train.log"),
            **(_me() if attached else {"host": None}),
        }
        try:
            job = store.create(record)
            break
        except JobError:
            if given:
                raise
            time.sleep(0.002)  # two jobs named in the same millisecond: take the next one
    else:
        raise JobError("Could not find a free job name; pass --name.")
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


def _progress_callback(store: JobStore, name: str, echo: Callable[[str], None]) -> Any:
    """A Lightning callback that moves the job to Training / Uploading and records metrics and checkpoints."""
    import lightning as L

    class JobProgress(L.Callback):
        at_epoch_end = False

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
    log(f"job {name}: {'resuming' if resume_from else 'starting'} (attempt {job['attempts'] + 1}); "
        f"pid {os.getpid()}; log {job['log_path']}")
    try:
        if spec.get("entry_point"):
            result = _run_script(job, store, log, watch)
        else:
            from oculi.engine.training import train

            result = train(
                spec["algorithm"], spec["channels"], spec["hyperparameters"], recipe=spec.get("recipe"),
                output=job["model_dir"], init_model=spec.get("init_model"),
                image_roots={k: Path(v) for k, v in spec["image_roots"].items()} if spec.get("image_roots") else None,
                progress=False, overwrite=True, echo=log, checkpoint_dir=Path(job["job_dir"]) / "checkpoints",
                resume_from=resume_from, restart_schedule=bool(resume.get("restart_schedule")),
                stop_requested=watch, callbacks=[_progress_callback(store, name, log)],
            )
        job = _finish(store, name, result, log)
        job["result"] = result
    except KeyboardInterrupt:  # Ctrl-C on an attached run
        job = _end_stopped(store, name, "interrupted (Ctrl-C)", log)
        if reraise:
            raise
    except BaseException as e:  # noqa: BLE001 - every failure is recorded before it propagates
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
    """Script mode as a stored job is not connected yet: fail with the way that works today."""
    raise ConfigError(f"job {job['name']}: running a script (entry_point) as a stored job is not supported yet; run "
                      "it with `oculi train --entry-point SCRIPT --train PATH …` (oculi.jobs.script.run_script).")


def _end_stopped(store: JobStore, name: str, message: str, log: Callable[[str], None]) -> dict[str, Any]:
    job = store.get(name)
    if job["secondary_status"] != S.STOPPING:
        job = store.transition(name, S.STOPPING, message)
    job = store.transition(name, S.STOPPED, message, pid=None, training_end=time.time())
    log(f"job {name} stopped; resume it with `oculi jobs resume {name}`")
    return job


def _finish(store: JobStore, name: str, result: Any, log: Callable[[str], None]) -> dict[str, Any]:
    metrics = dict(getattr(result, "metrics", {}) or {})
    fields = {"final_metrics": metrics}
    hp = getattr(result, "hyperparameters", None)
    if hp:
        fields["hyperparameters"] = hp
    if getattr(result, "stopped", False):
        store.update(name, **fields)
        return _end_stopped(store, name, "stopped at a step boundary; checkpoint written", log)
    job = store.get(name)
    if job["secondary_status"] == S.STOPPING:  # a stop arrived while the bundle was being written
        store.update(name, **fields)
        return _end_stopped(store, name, "stop requested after training finished; the bundle is complete", log)
    if job["secondary_status"] != S.UPLOADING:
        job = store.transition(name, S.UPLOADING if job["secondary_status"] == S.TRAINING else S.TRAINING,
                               "training finished")
        if job["secondary_status"] == S.TRAINING:
            store.transition(name, S.UPLOADING, "writing the model bundle")
    job = store.transition(name, S.COMPLETED, "training job completed", pid=None, training_end=time.time(),
                           **fields)
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    log(f"job {name} completed: {shown}; model bundle {job['model_dir']}")
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
    if job["pid"] and job["host"] == _hostname() and is_alive(job["pid"], job["process_token"]) \
            and job["pid"] != os.getpid():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(job["pid"], signal.SIGTERM)  # immediate; the worker also polls the store
    return job


def resume(name: str, epochs: int | None = None, store: JobStore | None = None,
           attached: bool = False) -> dict[str, Any]:
    """Put an ended job back in the queue to continue from its last checkpoint; ``epochs`` extends it to that
    many epochs in total (a completed job needs it). Returns the record (``Pending``)."""
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
        if job["spec"].get("entry_point"):
            raise JobError(f"Job {name!r} is a script-mode job; resume is for built-in algorithms (the script "
                           "restores its own checkpoints from SM_CHECKPOINT_DIR). Submit it again.")
        ckpt = checkpoint_path(job)
        if not ckpt.exists():
            raise JobError(f"Job {name!r} has no checkpoint ({ckpt} is missing: it ended before its first epoch "
                           "finished). Start a new job with the same settings instead.")
        spec = dict(job["spec"])
        trained = (job["checkpoint"] or {}).get("epoch")
        current = int((job["hyperparameters"] or {}).get("epochs") or spec["hyperparameters"].get("epochs") or 0)
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
        spec["attached"] = attached
        where = f"epoch {trained}" if trained is not None else "the last checkpoint"
        message = (f"extend to {epochs} epochs from {where}" if extend else f"resume from {where}")
        fields: dict[str, Any] = {"spec": spec, "failure_reason": None, "attempts": job["attempts"] + 1,
                                  "training_end": None, "pid": None, "process_token": None, "host": None}
        if attached:
            fields.update(_me())
        return store.transition(name, S.PENDING, message, expect=at, **fields)


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
