"""Batch transform: run a model bundle over a folder of images, one image or an augmented manifest and write
SageMaker-shaped results, recorded as a transform job.

Outputs (in the ``output`` folder):

- default (``assemble_with="none"``): one ``<name>.out`` per image, ``<name>`` being the image's path relative to
  the input folder (sub-folders kept), its file name for a single image, or its key for a manifest line
  (:class:`~oculi.data.formats.manifest.ImageReference`). Its bytes are exactly what an endpoint answers for the
  image with that ``Accept`` (:mod:`oculi.inference.codecs`): JSON, or a PNG mask for segmentation's
  ``image/png``;
- ``assemble_with="line"``: one JSON-lines file ``<input-name>.out`` (``images.out`` for a folder ``images/``,
  ``val.manifest.out`` for a manifest) with one record per image in input order,
  ``{"source": "<name>", …the Accept's JSON…}``. Binary accepts (``image/png``) cannot be assembled;
- ``errors.jsonl``: one ``{"source", "path", "line", "error"}`` record per image that could not be transformed
  (corrupt, truncated, not an image, a decompression bomb, missing from disk); the others go on. It lists the
  failures of the latest run and is removed when a run has none.

Every result is written to a temporary file and renamed, so a Ctrl-C, ``oculi jobs stop`` or ``kill -9`` never
leaves half a result, and running the same transform again skips the images already done (line mode keeps them in
a hidden ``.oculi-parts-<input-name>/`` folder until the file is assembled). ``.oculi-transform.json`` records the
model, ``Accept`` and assembly an output folder holds, so a rerun with other settings is refused instead of mixing
results; ``.oculi-transform.lock`` keeps a second transform out of a folder while one writes into it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oculi.batch.inputs import TransformInput, TransformItem, list_inputs
from oculi.errors import ConfigError, DataError, OculiError

ASSEMBLE_WITH = ("none", "line")
SPLIT_TYPES = ("None", "Line", "RecordIO")
ERRORS_FILE = "errors.jsonl"
STATE_FILE = ".oculi-transform.json"
LOCK_FILE = ".oculi-transform.lock"
TMP_SUFFIX = ".oculi-tmp"
PARTS_PREFIX = ".oculi-parts-"
UPDATE_SECONDS = 2.0  # how often the job's counts are written to the store and a progress line to its log
STOP_POLL_SECONDS = 1.0  # how often the store is asked whether `oculi jobs stop` was called


@dataclass
class TransformSummary:
    """How a transform ended. ``status``: ``Completed`` or ``Stopped``. Counts: ``images`` listed, ``done``
    written by this run, ``skipped`` already done by an earlier run, ``failed`` listed in ``errors_file``
    (``remaining`` were not reached because the run stopped). ``seconds``: time spent transforming (after the
    model loaded); ``assembled``: the JSON-lines file with ``assemble_with="line"``."""

    job_name: str
    status: str
    output: Path
    accept: str
    images: int
    done: int
    skipped: int
    failed: int
    seconds: float
    errors_file: Path | None
    assembled: Path | None
    log_path: Path

    @property
    def remaining(self) -> int:
        """Images neither done, skipped nor failed (the run stopped before them)."""
        return self.images - self.done - self.skipped - self.failed

    @property
    def images_per_second(self) -> float:
        """Throughput of this run: images written per second of transforming."""
        return self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Layout:
    """Where results go: ``<output>/<name>.out``, or (line mode) one part file per image in ``parts``."""

    output: Path
    parts: Path | None
    explain: str | None = None  # a CAM method: write each image's explanation beside its result

    def target(self, name: str) -> Path:
        if self.parts is not None:
            return self.parts / f"{hashlib.sha1(name.encode()).hexdigest()}.json"
        return self.output / f"{name}.out"

    def payload(self, name: str, body: bytes) -> bytes:
        if self.parts is None:
            return body
        return (json.dumps({"source": name, **json.loads(body)}, separators=(",", ":")) + "\n").encode()


def _write_atomic(path: Path, data: bytes) -> None:
    # Rename is atomic within a folder: a killed process leaves either the whole file or a *.oculi-tmp (removed by
    # the next run). No fsync: this protects against a dying process, as promised, not against power loss.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")
    tmp.write_bytes(data)
    tmp.replace(path)


def _usable_cores() -> int:
    """CPU cores this process may run on (a taskset / cpuset limit counts, unlike ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class _Engine:
    """One process's model: decode → ``predict`` (a batch at a time) → the Accept's codec → atomic write."""

    def __init__(self, predictor: Any, media: str, layout: _Layout) -> None:
        from oculi.tasks import task_of

        self.predictor = predictor
        self.codec = task_of(predictor).codec
        self.media = media
        self.layout = layout
        self.explainer: Any = None
        if layout.explain is not None:
            from oculi.explain import Explainer

            self.explainer = Explainer(predictor, layout.explain)

    def _explain(self, name: str, tensor: Any) -> None:
        """Overlays, raw maps and ``<name>.explain.json`` beside ``<name>.out`` (written before it, so a result
        that exists has its explanation)."""
        target = self.layout.output / name
        self.explainer.explain(tensor, name=name).write(target.parent, target.name)

    def _decode(self, path: Path) -> Any:
        from oculi.data.formats.recordio import record_image
        from oculi.data.image import decode_image_bytes

        try:
            data = record_image(path)  # a RecordIO record's image, or None for an ordinary file
            data = path.read_bytes() if data is None else data
        except OSError as e:
            raise DataError(f"{path}: cannot be read ({e.strerror or e}).") from None
        # Bytes, not the path: the pixel count in the header is checked before decoding (decompression bombs).
        return decode_image_bytes(data, min_side=self.predictor.min_side, name=str(path))

    def _predict(self, tensors: list[Any]) -> list[Any]:
        return list(self.predictor.predict(tensors, batch_size=max(1, len(tensors))))

    def run(self, batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """``[(name, path)]`` → ``[(name, error)]`` (``error`` empty when the result was written)."""
        errors: dict[str, str] = {}
        decoded: list[tuple[str, Any]] = []
        for name, path in batch:
            try:
                decoded.append((name, self._decode(Path(path))))
            except DataError as e:
                errors[name] = str(e)
        try:
            results = list(zip([n for n, _ in decoded], self._predict([t for _, t in decoded]), strict=True))
        except Exception:  # one odd image must not fail its neighbours: predict them one by one
            results = []
            for name, tensor in decoded:
                try:
                    results.append((name, self._predict([tensor])[0]))
                except Exception as e:  # noqa: BLE001 - recorded as this image's error
                    errors[name] = f"{dict(batch)[name]}: the model failed on this image ({type(e).__name__}: {e})."
        tensors = dict(decoded)
        for name, result in results:
            if self.explainer is not None:
                try:
                    self._explain(name, tensors[name])
                except Exception as e:  # noqa: BLE001 - recorded as this image's error; its result is not written
                    errors[name] = f"{dict(batch)[name]}: explaining failed ({type(e).__name__}: {e})."
                    continue
            body = self.codec.encode(result, self.media)
            _write_atomic(self.layout.target(name), self.layout.payload(name, body))
        return [(name, errors.get(name, "")) for name, _ in batch]


_worker_engine: _Engine | None = None
_worker_error: str = ""


def _start_worker(model: str, media: str, layout: _Layout, threads: int, runtime: tuple[str, str]) -> None:
    """Pool initializer: Ctrl-C belongs to the parent; load the model once with a share of the CPU threads."""
    global _worker_engine, _worker_error
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        from oculi.tasks import load_predictor

        torch.set_num_threads(threads)
        _worker_engine = _Engine(load_predictor(model, runtime=runtime[0], precision=runtime[1]), media, layout)
    except Exception as e:  # noqa: BLE001 - reported by the first batch (a failing initializer would be respawned)
        _worker_error = f"worker {os.getpid()} could not load the model: {type(e).__name__}: {e}"


def _work(batch: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if _worker_engine is None:
        raise RuntimeError(_worker_error)
    return _worker_engine.run(batch)


# ---- the parent: options, resume, progress, the job record ----------------------------------------------------
def _check_options(assemble_with: str, batch_size: int | None, workers: int, job_name: str | None) -> str:
    assemble = assemble_with.lower()
    if assemble not in ASSEMBLE_WITH:
        raise ConfigError(f"--assemble-with got {assemble_with!r}; expected none (one <name>.out per image) or line "
                          "(one JSON-lines file), e.g. --assemble-with line.")
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size got {batch_size}; expected an integer ≥ 1, e.g. --batch-size 16.")
    if workers < 1:
        raise ConfigError(f"--workers got {workers}; expected an integer ≥ 1, e.g. --workers 2.")
    if job_name is not None:
        from oculi.jobs.store import check_name

        check_name(job_name)
    return assemble


def _check_state(output: Path, state: dict[str, Any]) -> None:
    file = output / STATE_FILE
    if not file.is_file():
        return
    try:
        before = json.loads(file.read_text())
    except (OSError, ValueError):
        return  # unreadable: rewritten below
    changed = [f"{key} {before.get(key)!r} → {state[key]!r}" for key in ("model", "accept", "assemble_with")
               if before.get(key) != state[key]]
    if changed:
        raise ConfigError(f"{output} holds the results of an earlier transform with other settings "
                          f"({'; '.join(changed)}); resuming would mix them. Pass another --output, or delete "
                          f"{output} to start again.")


@contextlib.contextmanager
def _claim_output(output: Path, state: dict[str, Any]) -> Iterator[None]:
    """Create the output folder, check it holds results of the same settings (or none), and hold its lock while
    the transform runs: two transforms writing into one folder would remove each other's temporary files."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file; pass a folder (it is created when missing).")
    try:
        output.mkdir(parents=True, exist_ok=True)
        lock = (output / LOCK_FILE).open("a")
    except OSError as e:
        raise ConfigError(f"Cannot write to --output {output} ({e.strerror or e}); pass a writable folder.") from None
    with lock:  # closing the file releases the lock, also when the process dies
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"Another transform is writing into {output}; let it finish (see `oculi jobs list "
                              "--status InProgress`) or pass another --output.") from None
        _check_state(output, state)
        try:
            _write_atomic(output / STATE_FILE, json.dumps(state, indent=2).encode())
        except OSError as e:
            raise ConfigError(f"Cannot write to --output {output} ({e.strerror or e}); pass a writable folder.") \
                from None
        for stale in output.rglob(f"*{TMP_SUFFIX}"):  # results a killed run was writing
            with contextlib.suppress(OSError):
                stale.unlink()
        yield


def _read_assembled(path: Path) -> dict[str, bytes]:
    """``{source: line}`` of an earlier assembled JSON-lines file (unreadable lines are redone)."""
    lines: dict[str, bytes] = {}
    if path.is_file():
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(ValueError, AttributeError, TypeError):
                lines[json.loads(line)["source"]] = line + b"\n"
    return lines


class _Log:
    """Lines to the job's log, and to ``echo`` when ``say``-ing."""

    def __init__(self, path: Path, echo: Callable[[str], None] | None) -> None:
        self.path, self.echo = path, echo

    def __call__(self, line: str) -> None:
        with self.path.open("a") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def say(self, line: str) -> None:
        self(line)
        if self.echo is not None:
            self.echo(line)


@contextlib.contextmanager
def _progress_bar(show: bool, total: int, completed: int) -> Iterator[Callable[[int, float], None]]:
    """``advance(images, rate)``: a rich bar with images/s on a terminal, nothing otherwise."""
    if not show:
        yield lambda _n, _rate: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda _n, _rate: None
        return
    with Progress(TextColumn("transform"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False) as bar:
        task = bar.add_task("transform", total=total, completed=completed, rate="")

        def advance(n: int, rate: float) -> None:
            bar.update(task, advance=n, rate=f"{rate:.1f} images/s")

        yield advance


def _failure_reason(e: BaseException, log_path: Path) -> str:
    if isinstance(e, OculiError):
        return str(e)
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"No space left on the device while writing {e.filename or 'the results'}: free some space and run "
                "the transform again (images already done are skipped).")
    if isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write {e.filename} ({e.strerror}): fix its permissions or pass another --output."
    return (f"The transform raised {type(e).__name__}: {e}. The traceback is in {log_path}; this is likely a bug in "
            "oculi — please report it with the log.")[:1024]


def transform(model: str | Path, input: str | Path, output: str | Path, *, accept: str | None = None,
              assemble_with: str = "none", batch_size: int | None = None, workers: int = 1,
              image_roots: dict[str, Path] | None = None, job_name: str | None = None, progress: bool = True,
              echo: Callable[[str], None] | None = print, store: Any = None,
              split_type: str = "None", explain: str | None = None, runtime: str = "auto",
              precision: str = "auto") -> TransformSummary:
    """Run the bundle ``model`` (folder, job output folder or ``model.tar.gz``) over ``input`` — a folder of images
    (recursive), one image, or an augmented manifest (``source-ref`` lines; ``image_roots`` maps ``s3://`` prefixes
    to local folders) — writing results to the ``output`` folder (see the module docstring for the files), as a
    transform job in the job store.

    ``accept``: the response type, one of the model task's codecs (default: the task's default —
    ``application/json`` for classification and detection, ``image/png`` for segmentation). ``assemble_with``:
    ``"none"`` (one ``<name>.out`` per image) or ``"line"`` (one JSON-lines file). ``batch_size``: images per
    ``predict`` call (default 32 for classification, 8 for detection, 4 for segmentation). ``workers``: processes
    that each load the model once and share the CPU threads. ``job_name``: default
    ``<algorithm>-transform-<timestamp>``. ``progress``: a progress bar on a terminal. ``echo``: where the start
    and summary lines go (they are always in the job's log). ``split_type``: SageMaker's SplitType; ``RecordIO``
    insists that ``input`` is a ``.rec`` (which is split into its records whatever it is set to). ``explain``: a CAM
    method (``auto``, ``gradcam``, …): also
    write each image's heat-map overlays, raw maps and ``<name>.explain.json`` beside its result (float32).
    ``runtime`` / ``precision``: what runs the network, as for :func:`oculi.load_model` (default ``auto``: the
    fastest the bundle's last ``oculi benchmark`` measured on this kind of machine; the log says which ran).

    Images already done in ``output`` are skipped; unreadable ones are listed in ``errors.jsonl`` and the run goes
    on. Returns a :class:`TransformSummary` (``status`` ``Completed``, or ``Stopped`` after ``oculi jobs stop`` /
    SIGTERM). Ctrl-C records the job ``Stopped`` and re-raises :class:`KeyboardInterrupt`. A missing or
    unreadable model or input, or options that do not fit the model, raise an :class:`~oculi.errors.OculiError`
    naming it before any job is recorded."""
    from oculi.artifacts import read_meta, resolve_bundle_path
    from oculi.jobs.store import JobStore
    from oculi.jobs.transform import create_transform_job
    from oculi.tasks import get_task

    assemble = _check_options(assemble_with, batch_size, workers, job_name)
    if explain is not None:
        from oculi.explain import CHOICES

        if explain not in CHOICES:
            raise ConfigError(f"--explain-method got {explain!r}; expected one of {', '.join(CHOICES)}.")
    given = Path(model).expanduser()
    model_path = resolve_bundle_path(given)
    _check_runtime(model_path, runtime, precision)
    meta = read_meta(model_path)
    contract = get_task(meta.get("task"))
    media = contract.codec.choose(accept)
    if assemble == "line" and not media.startswith("application/json"):
        raise ConfigError(f"--assemble-with line writes JSON lines, but Accept {media} is binary. Pass --accept "
                          "application/json (for segmentation: per-class pixel fractions and the mask as base64 PNG), "
                          "or leave out --assemble-with to get one <name>.out per image.")
    if split_type not in SPLIT_TYPES:
        raise ConfigError(f"--split-type {split_type!r} is not one of {', '.join(SPLIT_TYPES)}.")
    listed = list_inputs(Path(input), image_roots)
    if split_type == "RecordIO" and listed.kind != "recordio":
        raise ConfigError(f"--split-type RecordIO needs a RecordIO .rec file as --input; {listed.source} is a "
                          f"{listed.kind}. Leave out --split-type, or pass a .rec (oculi data convert --to "
                          "recordio).")
    output = Path(output).expanduser().resolve()
    # A model.tar.gz unpacks to a new temporary folder each time: the archive is what identifies it.
    state = {"model": str((given if given.is_file() else model_path).resolve()), "accept": media,
             "assemble_with": assemble}
    batch = batch_size or contract.transform_batch_size
    spec = {"model": state["model"], "input": str(listed.source), "input_kind": listed.kind,
            "output": str(output), "accept": media, "assemble_with": assemble, "batch_size": batch,
            "workers": workers, "errors_path": str(output / ERRORS_FILE), "explain": explain,
            "runtime": runtime, "precision": precision,
            "image_roots": {k: str(Path(v).expanduser().resolve()) for k, v in (image_roots or {}).items()} or None}
    store = store or JobStore()
    with _claim_output(output, state):
        run = _Run(listed, output, media, assemble == "line", batch, workers, explain,  # reads earlier results
                   (runtime, precision))
        job = create_transform_job(spec, str(meta["algorithm"]), job_name, store)
        run.log = _Log(Path(job["log_path"]), echo)
        return _run_job(job, store, run, model_path, progress)


def _check_runtime(model_path: Path, runtime: str, precision: str) -> None:
    """Refuse an unknown runtime or precision, or an ONNX model the bundle does not hold (current), before any job
    is recorded."""
    from oculi.inference.runtimes import PRECISIONS, QUANTIZED, RUNTIMES, check_onnx, openvino_installed

    if runtime not in RUNTIMES:
        raise ConfigError(f"--runtime got {runtime!r}; expected one of {', '.join(RUNTIMES)}.")
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision got {precision!r}; expected one of {', '.join(PRECISIONS)}.")
    if runtime == "openvino" and not openvino_installed():
        raise ConfigError("--runtime openvino needs the openvino package: pip install 'oculi[openvino]' (or pass "
                          "--runtime onnx).")
    if runtime in ("onnx", "openvino") or precision in QUANTIZED:
        from oculi.artifacts import load_bundle

        check_onnx(load_bundle(model_path), "float32" if precision == "auto" else precision)


def _calibration_line(model_path: Path) -> str | None:
    """What the transform applies from a bundle folder's model.json calibration (None: none stored)."""
    from oculi.artifacts import read_meta, resolve_bundle_path
    from oculi.inference.calibration import Calibration

    if not Path(model_path).is_dir():
        return None
    calibration = Calibration.from_meta(read_meta(resolve_bundle_path(Path(model_path))))
    if calibration is None:
        return None
    chosen = (f"thresholds {calibration.thresholds}" if calibration.thresholds is not None
              else f"unsure below {calibration.unsure:g}" if calibration.unsure is not None else "no thresholds")
    return (f"applying the calibration in model.json ({calibration.rule}): temperature "
            f"{calibration.temperature:.3f}, {chosen}")


def _run_job(job: dict[str, Any], store: Any, run: _Run, model_path: Path, progress: bool) -> TransformSummary:
    from oculi.jobs import status as S
    from oculi.jobs.transform import wait_for_slot

    name = job["name"]
    stop_flag = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop_flag.set())
    last_poll = [0.0]

    def stop_requested() -> bool:
        now = time.monotonic()
        if not stop_flag.is_set() and now - last_poll[0] >= STOP_POLL_SECONDS:
            last_poll[0] = now
            current = store.find(name)
            if current is not None and current["secondary_status"] == S.STOPPING:
                stop_flag.set()
        return stop_flag.is_set()

    log = run.log
    log.say(f"transform job {name}: {len(run.listed.items)} image(s) from {run.listed.source} → {run.output} "
            f"(Accept {run.media}{', assembled as JSON lines' if run.assembled else ''}); log {job['log_path']}")
    applied = _calibration_line(model_path)
    if applied:
        log.say(applied)
    try:
        if not wait_for_slot(name, store, log.say):
            return run.end_stopped(store, name, "stopped before it started")
        run.start(store, name, model_path, stop_requested, progress)
        if stop_flag.is_set():
            return run.end_stopped(store, name, "stopped (oculi jobs stop or SIGTERM)")
        return run.complete(store, name)
    except KeyboardInterrupt:
        run.end_stopped(store, name, "interrupted (Ctrl-C)")
        raise
    except BaseException as e:
        log("".join(traceback.format_exception(e)).rstrip())
        reason = _failure_reason(e, Path(job["log_path"]))
        with contextlib.suppress(OculiError):
            store.transition(name, S.FAILED, reason.splitlines()[0][:200], failure_reason=reason, pid=None,
                             training_end=time.time(), final_metrics=run.counts())
        run.write_errors()
        log(f"transform job {name} failed: {reason}")
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Run:
    """The state of one transform run: what is done, what failed, and the files that say so."""

    log: _Log  # set once the job (and so its log) exists

    def __init__(self, listed: TransformInput, output: Path, media: str, line: bool, batch_size: int,
                 workers: int, explain: str | None = None, runtime: tuple[str, str] = ("auto", "auto")) -> None:
        self.listed, self.output, self.media = listed, output, media
        self.runtime = runtime  # (runtime, precision) as asked
        self.batch_size, self.workers = batch_size, workers
        self.assembled = output / f"{listed.source.name}.out" if line else None
        self.layout = _Layout(output, output / f"{PARTS_PREFIX}{listed.source.name}" if line else None, explain)
        self.previous = _read_assembled(self.assembled) if self.assembled else {}
        # Failures by item index: a manifest may list a name twice (the second is an error), so names cannot key.
        self.errors: dict[int, str] = {i: item.problem for i, item in enumerate(listed.items) if item.path is None}
        self.index = {item.name: i for i, item in enumerate(listed.items) if item.path is not None}
        self.skipped = sum(1 for item in listed.items if item.path is not None and self._done(item))
        self.done = 0
        self.seconds = 0.0

    def _done(self, item: TransformItem) -> bool:
        return item.name in self.previous or self.layout.target(item.name).is_file()

    def todo(self) -> list[TransformItem]:
        return [item for item in self.listed.items if item.path is not None and not self._done(item)]

    def counts(self) -> dict[str, int]:
        return {"Images": len(self.listed.items), "Done": self.done, "Skipped": self.skipped,
                "Failed": len(self.errors)}

    # ---- running --------------------------------------------------------------------------------------------
    def start(self, store: Any, name: str, model_path: Path, stop_requested: Callable[[], bool],
              progress: bool) -> None:
        from oculi.jobs import status as S

        todo = self.todo()
        batches = [[(item.name, str(item.path)) for item in todo[i:i + self.batch_size]]
                   for i in range(0, len(todo), self.batch_size)]
        workers = min(self.workers, len(batches)) or 1
        engine = None
        if batches:
            from oculi.inference.runtimes import describe
            from oculi.tasks import load_predictor

            # Loaded here even for several workers: a broken bundle fails once, with its own error.
            predictor = load_predictor(model_path, runtime=self.runtime[0], precision=self.runtime[1])
            self.log.say(f"runtime: {describe(predictor.runtime)}")
            engine = _Engine(predictor, self.media, self.layout)
            if workers > 1:
                engine = None  # each worker process loads its own copy
        store.transition(name, S.TRANSFORMING,
                         f"transforming {len(todo)} image(s) with {workers} worker(s); {self.skipped} already done",
                         expect=S.STARTING, training_start=time.time(), final_metrics=self.counts())
        self.log.say(f"{len(todo)} to transform, {self.skipped} already done (skipped), {len(self.errors)} "
                     f"unreadable in the input; batch size {self.batch_size}, {workers} worker(s)")
        started = time.perf_counter()
        last_update = time.monotonic()
        try:
            with _progress_bar(progress, len(self.listed.items), self.skipped + len(self.errors)) as advance:
                for results in self._results(batches, engine, workers, model_path, stop_requested):
                    for item_name, error in results:
                        if error:
                            self.errors[self.index[item_name]] = error
                            self.log(f"failed: {error}")
                        else:
                            self.done += 1
                    self.seconds = time.perf_counter() - started
                    advance(len(results), self.done / self.seconds if self.seconds else 0.0)
                    if time.monotonic() - last_update >= UPDATE_SECONDS:
                        last_update = time.monotonic()
                        store.update(name, final_metrics=self.counts())
                        self.log(f"progress: {self.done + self.skipped + len(self.errors)}/"
                                 f"{len(self.listed.items)} ({self.done / self.seconds:.1f} images/s)")
        finally:
            self.seconds = time.perf_counter() - started

    def _results(self, batches: list[list[tuple[str, str]]], engine: _Engine | None, workers: int,
                 model_path: Path, stop_requested: Callable[[], bool]) -> Iterator[list[tuple[str, str]]]:
        if engine is not None:
            for batch in batches:
                if stop_requested():
                    return
                yield engine.run(batch)
            return
        if not batches:
            return
        threads = max(1, _usable_cores() // workers)  # N workers share the cores instead of fighting
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's thread pools
        pool = context.Pool(workers, _start_worker, (str(model_path), self.media, self.layout, threads,
                                                         self.runtime))
        try:
            pending = pool.imap_unordered(_work, batches)
            received = 0
            while received < len(batches):
                if stop_requested():
                    return
                try:
                    results = pending.next(timeout=0.5)
                except multiprocessing.TimeoutError:
                    continue
                received += 1
                yield results
            pool.close()
        finally:
            pool.terminate()  # a stop or an error: results being written are temp files, removed by the next run
            pool.join()

    # ---- ending ---------------------------------------------------------------------------------------------
    def write_errors(self) -> Path | None:
        """Rewrite ``errors.jsonl`` with this run's failures in input order (remove it when there are none)."""
        path = self.output / ERRORS_FILE
        if not self.errors:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            return None
        lines = [json.dumps({"source": item.name or None,
                             "path": str(item.path) if item.path else None, "line": item.line,
                             "error": self.errors[i]}) + "\n"
                 for i, item in enumerate(self.listed.items) if i in self.errors]
        _write_atomic(path, "".join(lines).encode())
        return path

    def _assemble(self) -> None:
        assert self.assembled is not None and self.layout.parts is not None
        lines = []
        for i, item in enumerate(self.listed.items):
            if i in self.errors:
                continue
            part = self.layout.target(item.name)
            if part.is_file():
                lines.append(part.read_bytes())
            elif item.name in self.previous:
                lines.append(self.previous[item.name])
        _write_atomic(self.assembled, b"".join(lines))
        shutil.rmtree(self.layout.parts, ignore_errors=True)

    def summary(self, name: str, status: str, log_path: Path, errors: Path | None) -> TransformSummary:
        return TransformSummary(name, status, self.output, self.media, len(self.listed.items), self.done,
                                self.skipped, len(self.errors), self.seconds, errors,
                                self.assembled if self.assembled and self.assembled.is_file() else None, log_path)

    def complete(self, store: Any, name: str) -> TransformSummary:
        from oculi.jobs import status as S

        errors = self.write_errors()
        if self.assembled is not None:
            self._assemble()
        if store.get(name)["secondary_status"] == S.STOPPING:  # `oculi jobs stop` just after the last image
            return self.end_stopped(store, name, "stop requested after the last image; every result is written")
        job = store.transition(name, S.COMPLETED, f"{self.done} done, {self.skipped} skipped, {len(self.errors)} "
                               "failed", expect=S.TRANSFORMING, pid=None, training_end=time.time(),
                               final_metrics=self.counts())
        summary = self.summary(name, S.COMPLETED, Path(job["log_path"]), errors)
        self.log(f"transform job {name} completed: {describe_summary(summary)}")
        return summary

    def end_stopped(self, store: Any, name: str, message: str) -> TransformSummary:
        from oculi.jobs import status as S

        errors = self.write_errors()
        job = store.get(name)
        with contextlib.suppress(OculiError):
            if job["secondary_status"] != S.STOPPING:
                store.transition(name, S.STOPPING, message)
            job = store.transition(name, S.STOPPED, message, pid=None, training_end=time.time(),
                                   final_metrics=self.counts())
        summary = self.summary(name, S.STOPPED, Path(job["log_path"]), errors)
        self.log.say(f"transform job {name} stopped: {describe_summary(summary)}; run the same transform again to "
                     "continue (images already done are skipped)")
        return summary


def describe_summary(summary: TransformSummary) -> str:
    """One line: how many images were done (and how fast), skipped, failed, and where the errors are."""
    text = (f"{summary.done} image(s) transformed in {summary.seconds:.1f} s ({summary.images_per_second:.1f} "
            f"images/s), {summary.skipped} skipped (already done), {summary.failed} failed")
    if summary.errors_file is not None:
        text += f" (listed in {summary.errors_file})"
    if summary.remaining:
        text += f", {summary.remaining} not reached"
    return text
