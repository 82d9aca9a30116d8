"""Script mode (SageMaker's "bring your own script"): run a user's training script in a child process with the
``sagemaker-training-toolkit`` contract, stream its output, and turn metric regexes into a time series.

The contract a script sees (``docs/sagemaker-contracts.md`` b.5):

- hyperparameters as ``--name value`` arguments (also ``SM_USER_ARGS``, a JSON list), ``SM_HPS`` (a JSON object
  whose values are JSON-decoded where they parse, like the toolkit's) and one ``SM_HP_<NAME>`` per
  hyperparameter (the name upper-cased, the value as given);
- ``SM_MODEL_DIR`` (what the script writes there is the job's output), ``SM_OUTPUT_DIR`` (write a ``failure`` file
  there to give the failure reason), ``SM_OUTPUT_DATA_DIR`` (other outputs);
- ``SM_CHECKPOINT_DIR`` and ``checkpointconfig.json`` (``{"LocalPath": …}``) when the run has a checkpoint folder
  (every job has one): SageMaker's ``/opt/ml/checkpoints``, kept across ``oculi jobs resume``, so a script that
  saves there and restores what it finds continues where it stopped;
- ``SM_CHANNELS`` (JSON list of channel names) and ``SM_CHANNEL_<NAME>`` (absolute path of each channel);
- ``SM_NUM_CPUS``, ``SM_NUM_GPUS``, ``SM_CURRENT_HOST`` (``algo-1``), ``SM_HOSTS`` (``["algo-1"]``),
  ``SM_RESOURCE_CONFIG``, ``SM_INPUT_DATA_CONFIG``, ``SM_INPUT_DIR``, ``SM_INPUT_CONFIG_DIR`` (with
  ``hyperparameters.json``, ``inputdataconfig.json`` and ``resourceconfig.json`` written into it),
  ``SM_LOG_LEVEL``, ``SM_MODULE_NAME``, ``SM_NETWORK_INTERFACE_NAME``, ``SM_TRAINING_ENV`` (all of it as JSON) and
  ``TRAINING_JOB_NAME``.

The script runs with the source folder as its working directory and first on ``PYTHONPATH``; the user's files are
used in place, never copied or changed. It runs in its own process group: a stop sends SIGTERM to the whole group
(SageMaker's StopTrainingJob), then SIGKILL after a grace period; on Linux it is killed if the process running it
dies, so a job worker killed with ``kill -9`` leaves no script behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from oculi.errors import ConfigError, DataError, JobError
from oculi.processes import die_with_parent

CURRENT_HOST = "algo-1"
TAIL_LINES = 20
FAILURE_REASON_CHARS = 1024  # SageMaker keeps the first 1024 characters of /opt/ml/output/failure
STOP_GRACE_SECONDS = 30.0  # SIGTERM, then SIGKILL this much later
CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-_]*$")  # SageMaker's ChannelName pattern
HYPERPARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class MetricDefinition:
    """SageMaker's ``{Name, Regex}``: every match of ``regex`` in a line of the script's output gives one value of
    metric ``name``, read from the regex's first capture group."""

    name: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class MetricPoint:
    """One value of one metric: ``timestamp`` in UNIX seconds, ``step`` = how many values of this metric came
    before it (0, 1, 2, …)."""

    name: str
    value: float
    timestamp: float
    step: int


@dataclass
class ScriptResult:
    """What a finished script run returns. ``metrics`` is the time series (in output order); ``final_metrics``
    the last value of each metric; ``model_files`` what the script left in ``model_dir`` (relative paths)."""

    entry_point: Path
    model_dir: Path
    output_dir: Path
    log_file: Path | None
    exit_code: int
    seconds: float
    metrics: list[MetricPoint] = field(default_factory=list)
    model_files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: bool = False  # a stop request ended the script (SIGTERM to its process group), whatever its exit code

    @property
    def final_metrics(self) -> dict[str, float]:
        """``{name: last value}`` for every metric that matched at least once."""
        return {p.name: p.value for p in self.metrics}


class ScriptError(JobError):
    """The script exited non-zero (or was killed). ``failure_reason`` is SageMaker's ``FailureReason``: the first
    1024 characters of the ``failure`` file the script wrote to ``SM_OUTPUT_DIR``, else the end of its stderr
    (else of its output); the message adds the exit code, the last lines of output and the log."""

    def __init__(self, message: str, *, returncode: int, failure_reason: str) -> None:
        super().__init__(message)
        self.returncode = returncode  # the script's exit status (negative: killed by that signal)
        self.failure_reason = failure_reason


def parse_metric_definitions(items: Iterable[str | Mapping[str, str]] | None) -> list[MetricDefinition]:
    """Parse metric definitions: ``"name=regex"`` strings (the CLI's ``--metric-definition``) or SageMaker's
    ``{"Name": …, "Regex": …}`` mappings (lower-case keys too). The regex must compile and have a capture group
    around the number. Raises one ConfigError naming each bad definition and the fix."""
    out: list[MetricDefinition] = []
    problems: list[str] = []
    for item in items or ():
        if isinstance(item, Mapping):
            name = str(item.get("Name", item.get("name", ""))).strip()
            pattern = str(item.get("Regex", item.get("regex", "")))
        else:
            name, sep, pattern = str(item).partition("=")
            name = name.strip()
            if not sep:
                problems.append(f"{item!r} is not name=regex, e.g. 'validation:accuracy=val_acc=([0-9.]+)'")
                continue
        if not name or not pattern:
            problems.append(f"{item!r} needs both a name and a regex, e.g. 'train:loss=loss: ([0-9.eE+-]+)'")
            continue
        try:
            regex = re.compile(pattern)
        except re.error as e:
            problems.append(f"`{name}`: the regex {pattern!r} does not compile ({e}); escape special characters "
                            "such as ( [ . with a backslash")
            continue
        if regex.groups < 1:
            problems.append(f"`{name}`: the regex {pattern!r} has no capture group; put parentheses around the "
                            f"number, e.g. {name}=loss: ([0-9.eE+-]+)")
            continue
        out.append(MetricDefinition(name, regex))
    names = [d.name for d in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        problems.append(f"metric name(s) {', '.join(dupes)} defined more than once; keep one definition each")
    if problems:
        raise ConfigError("Bad metric definition(s):\n" + "\n".join(f"  - {p}" for p in problems))
    return out


class MetricParser:
    """Feeds lines of output through metric definitions and collects :class:`MetricPoint` values."""

    def __init__(self, definitions: Iterable[MetricDefinition],
                 on_metric: Callable[[MetricPoint], None] | None = None) -> None:
        self.definitions = list(definitions)
        self.on_metric = on_metric
        self.points: list[MetricPoint] = []
        self._steps: dict[str, int] = {}

    def feed(self, line: str, timestamp: float | None = None) -> list[MetricPoint]:
        """Every value ``line`` holds (a definition may match several times in one line); values that do not
        parse as a number are ignored, as SageMaker does."""
        found = []
        now = time.time() if timestamp is None else timestamp
        for d in self.definitions:
            for match in d.regex.finditer(line):
                try:
                    value = float(match.group(1))
                except (TypeError, ValueError):
                    continue
                step = self._steps.get(d.name, 0)
                self._steps[d.name] = step + 1
                point = MetricPoint(d.name, value, now, step)
                found.append(point)
                self.points.append(point)
                if self.on_metric is not None:
                    self.on_metric(point)
        return found


def _cli_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value)


def _decoded(value: Any) -> Any:
    """The toolkit JSON-decodes hyperparameter values where they parse ("3" → 3, "0.1" → 0.1, "abc" → "abc")."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def user_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """Hyperparameters as the script's command line: ``{"epochs": "3"}`` → ``["--epochs", "3"]`` (lists and dicts
    as JSON, never cut at commas)."""
    args: list[str] = []
    for name, value in hyperparameters.items():
        args += [f"--{name}", _cli_value(value)]
    return args


def _num_gpus() -> int:
    """NVIDIA GPUs the script can use: ``CUDA_VISIBLE_DEVICES`` when set, else the ``/dev/nvidia<N>`` devices.
    (Not through torch: a job worker that runs a script never needs to import it.)"""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and not d.strip().startswith("-")])
    return len([p for p in Path("/dev").glob("nvidia*") if p.name[len("nvidia"):].isdigit()])


def _num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def script_environment(
    entry_point: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, Any],
    *,
    model_dir: Path,
    output_dir: Path,
    input_dir: Path,
    source_dir: Path,
    job_name: str,
    num_gpus: int | None = None,
    checkpoint_dir: Path | None = None,
) -> dict[str, str]:
    """The ``SM_*`` variables (and ``TRAINING_JOB_NAME``) a script sees; paths are absolute. ``checkpoint_dir``
    adds ``SM_CHECKPOINT_DIR``."""
    hps = {k: _decoded(v) for k, v in hyperparameters.items()}
    resource = {"current_host": CURRENT_HOST, "hosts": [CURRENT_HOST], "network_interface_name": "lo"}
    data_config = {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                          "RecordWrapperType": "None"} for name in channels}
    gpus = _num_gpus() if num_gpus is None else num_gpus
    args = user_args(hyperparameters)
    training_env = {
        "channel_input_dirs": {name: str(path) for name, path in channels.items()},
        "current_host": CURRENT_HOST, "hosts": [CURRENT_HOST], "hyperparameters": hps,
        "input_config_dir": str(input_dir / "config"), "input_data_config": data_config, "input_dir": str(input_dir),
        "job_name": job_name, "log_level": 20, "model_dir": str(model_dir), "module_dir": str(source_dir),
        "module_name": entry_point.stem, "network_interface_name": "lo", "num_cpus": _num_cpus(),
        "num_gpus": gpus, "output_data_dir": str(output_dir / "data"), "output_dir": str(output_dir),
        "resource_config": resource, "user_entry_point": entry_point.name,
    }
    env = {
        "TRAINING_JOB_NAME": job_name,
        "SM_MODEL_DIR": str(model_dir),
        "SM_CHANNELS": json.dumps(list(channels)),
        "SM_HPS": json.dumps(hps),
        "SM_USER_ARGS": json.dumps(args),
        "SM_CURRENT_HOST": CURRENT_HOST,
        "SM_HOSTS": json.dumps([CURRENT_HOST]),
        "SM_NUM_CPUS": str(training_env["num_cpus"]),
        "SM_NUM_GPUS": str(gpus),
        "SM_LOG_LEVEL": "20",
        "SM_NETWORK_INTERFACE_NAME": "lo",
        "SM_MODULE_NAME": entry_point.stem,
        "SM_MODULE_DIR": str(source_dir),
        "SM_INPUT_DIR": str(input_dir),
        "SM_INPUT_CONFIG_DIR": str(input_dir / "config"),
        "SM_OUTPUT_DIR": str(output_dir),
        "SM_OUTPUT_DATA_DIR": str(output_dir / "data"),
        "SM_RESOURCE_CONFIG": json.dumps(resource),
        "SM_INPUT_DATA_CONFIG": json.dumps(data_config),
        "SM_TRAINING_ENV": json.dumps(training_env),
    }
    if checkpoint_dir is not None:
        env["SM_CHECKPOINT_DIR"] = str(checkpoint_dir)
    for name, path in channels.items():
        env[f"SM_CHANNEL_{name.upper()}"] = str(path)
    for name, value in hps.items():
        env[f"SM_HP_{name.upper()}"] = _env_value(value)
    return env


def check_inputs(entry_point: Path | str, source_dir: Path | str | None, channels: Mapping[str, Any],
                 hyperparameters: Mapping[str, Any]) -> tuple[Path, Path, dict[str, Path]]:
    """Resolve the entry point (relative to ``source_dir`` when given, as SageMaker does), the source folder and
    the channel paths (all absolute); raise ConfigError / DataError naming the fix."""
    if source_dir is not None:
        src = Path(source_dir).expanduser().resolve()
        if not src.is_dir():
            raise ConfigError(f"--source-dir {source_dir} is not a folder; pass the folder that holds your script.")
        entry = Path(entry_point)
        entry = (entry if entry.is_absolute() else src / entry).resolve()
    else:
        entry = Path(entry_point).expanduser().resolve()
        src = entry.parent
    if not entry.is_file():
        where = f" in --source-dir {src}" if source_dir is not None else ""
        raise ConfigError(f"The entry point {entry_point} does not exist{where}; pass the path of your training "
                          "script (e.g. --entry-point train.py --source-dir my_code/).")
    if entry.suffix not in (".py", ".sh") and not os.access(entry, os.X_OK):
        raise ConfigError(f"The entry point {entry} is neither a .py nor a .sh script nor executable; "
                          f"rename it or `chmod +x {entry}`.")
    paths: dict[str, Path] = {}
    for name, value in channels.items():
        if not CHANNEL_NAME.match(name):
            raise ConfigError(f"Channel name {name!r} is not valid; use letters, digits, '.', '-' and '_' "
                              "(e.g. train, validation).")
        path = Path(value).expanduser().resolve()
        if not path.exists():
            raise DataError(f"The {name} channel {value} does not exist; pass an existing folder (or file) to "
                            f"--{name}" + ("" if name in ("train", "validation") else f" / --channel {name}=PATH")
                            + ".")
        paths[name] = path
    bad = [n for n in hyperparameters if not HYPERPARAMETER_NAME.match(str(n))]
    if bad:
        raise ConfigError(f"Hyperparameter name(s) {', '.join(map(repr, bad))} cannot be passed as --name "
                          "arguments; use letters, digits, '_', '-' and '.'.")
    return entry, src, paths


def _write_config(config_dir: Path, env: Mapping[str, str], hyperparameters: Mapping[str, Any]) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "hyperparameters.json": {k: _cli_value(v) for k, v in hyperparameters.items()},
        "inputdataconfig.json": json.loads(env["SM_INPUT_DATA_CONFIG"]),
        "resourceconfig.json": json.loads(env["SM_RESOURCE_CONFIG"]),
    }
    if "SM_CHECKPOINT_DIR" in env:
        files["checkpointconfig.json"] = {"LocalPath": env["SM_CHECKPOINT_DIR"]}
    for name, content in files.items():
        (config_dir / name).write_text(json.dumps(content, indent=2) + "\n")


def _command(entry: Path, args: list[str]) -> list[str]:
    if entry.suffix == ".py":
        return [sys.executable, "-u", str(entry), *args]
    if entry.suffix == ".sh":
        return ["/bin/sh", str(entry), *args]
    return [str(entry), *args]


def _stdout_echo(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def run_script(
    entry_point: Path | str,
    channels: Mapping[str, Path | str],
    hyperparameters: Mapping[str, Any] | None = None,
    *,
    model_dir: Path | str,
    output_dir: Path | str,
    source_dir: Path | str | None = None,
    input_dir: Path | str | None = None,
    checkpoint_dir: Path | str | None = None,
    metric_definitions: Iterable[str | Mapping[str, str] | MetricDefinition] = (),
    log_file: Path | str | None = None,
    on_metric: Callable[[MetricPoint], None] | None = None,
    on_start: Callable[[subprocess.Popen[bytes]], None] | None = None,
    echo: Callable[[str], None] | None = _stdout_echo,
    env: Mapping[str, str] | None = None,
    job_name: str | None = None,
    num_gpus: int | None = None,
    stop_requested: Callable[[], bool] | None = None,
    stop_grace: float = STOP_GRACE_SECONDS,
) -> ScriptResult:
    """Run a user's training script the way a SageMaker framework container does and wait for it.

    ``entry_point`` is a ``.py`` (run with this Python), ``.sh`` or executable file; relative to ``source_dir``
    when that is given (the script's folder otherwise). ``channels`` are ``{name: path}`` (``SM_CHANNEL_<NAME>``);
    ``hyperparameters`` become ``--name value`` arguments and ``SM_HP_*``. ``model_dir`` is ``SM_MODEL_DIR``;
    ``output_dir`` is ``SM_OUTPUT_DIR`` (``data/`` inside it is ``SM_OUTPUT_DATA_DIR``; a ``failure`` file there
    gives the failure reason); ``input_dir`` (default ``output_dir/../input``) receives ``config/*.json``;
    ``checkpoint_dir`` (created if missing, never emptied) is ``SM_CHECKPOINT_DIR``.

    Output (stdout and stderr, each line as it comes) goes to ``echo`` (None = silent) and to ``log_file``
    (appended), and through ``metric_definitions`` (``"name=regex"`` or ``{"Name", "Regex"}``): each value calls
    ``on_metric`` and lands in ``ScriptResult.metrics``. ``on_start`` receives the child process (to record its
    pid). ``env`` adds variables (the ``SM_*`` contract wins).

    ``stop_requested()`` is polled five times a second: once true, the script's process group gets SIGTERM, and
    SIGKILL ``stop_grace`` seconds later if it is still running; the result then has ``stopped`` set (a stopped
    script is not a failure). Raises ConfigError / DataError for a missing script or channel, :class:`ScriptError`
    when the script exits non-zero (its exit code, failure reason and the last lines of its output). Ctrl-C stops
    the script and re-raises."""
    hyperparameters = dict(hyperparameters or {})
    entry, src, paths = check_inputs(entry_point, source_dir, channels, hyperparameters)
    given = list(metric_definitions)
    definitions = [d for d in given if isinstance(d, MetricDefinition)] + parse_metric_definitions(
        [d for d in given if not isinstance(d, MetricDefinition)])
    model = Path(model_dir).expanduser().resolve()
    output = Path(output_dir).expanduser().resolve()
    inputs = Path(input_dir).expanduser().resolve() if input_dir else output.parent / "input"
    checkpoints = Path(checkpoint_dir).expanduser().resolve() if checkpoint_dir else None
    log_path = Path(log_file).expanduser() if log_file else None
    for folder in (model, output / "data", *([checkpoints] if checkpoints else [])):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"Cannot create {folder}: {e.strerror}; pass an --output folder you can write to.") \
                from None
    failure_file = output / "failure"
    failure_file.unlink(missing_ok=True)

    contract = script_environment(entry, paths, hyperparameters, model_dir=model, output_dir=output,
                                  input_dir=inputs, source_dir=src, job_name=job_name or entry.stem,
                                  num_gpus=num_gpus, checkpoint_dir=checkpoints)
    _write_config(inputs / "config", contract, hyperparameters)
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env.update(contract)
    child_env["PYTHONUNBUFFERED"] = "1"
    child_env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [child_env.get("PYTHONPATH")])])
    command = _command(entry, user_args(hyperparameters))

    parser = MetricParser(definitions, on_metric)
    output_tail: deque[str] = deque(maxlen=TAIL_LINES)
    stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
    lock = threading.Lock()
    log: IO[bytes] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")

    def pump(stream: IO[bytes], is_stderr: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with lock:  # one line at a time into the log, the tails, the metrics and the echo
                if log is not None:
                    log.write(raw)
                    log.flush()
                output_tail.append(line)
                if is_stderr:
                    stderr_tail.append(line)
                parser.feed(line.rsplit("\r", 1)[-1])  # a progress bar's last state
                if echo is not None:
                    echo(line)

    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=src, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
    stop = _StopOnRequest(proc, stop_requested, stop_grace)
    try:
        if on_start is not None:
            on_start(proc)
        assert proc.stdout is not None and proc.stderr is not None
        errors_thread = threading.Thread(target=pump, args=(proc.stderr, True), daemon=True)
        errors_thread.start()
        stop.start()
        pump(proc.stdout, False)
        errors_thread.join()
        code = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        stop.finish()
        if log is not None:
            log.close()
    seconds = time.perf_counter() - started
    files = sorted(str(p.relative_to(model)) for p in model.rglob("*") if p.is_file())
    if code != 0 and not stop.sent:
        written = failure_file.read_text(errors="replace")[:FAILURE_REASON_CHARS].strip() \
            if failure_file.is_file() else ""
        said = "\n".join(stderr_tail or output_tail)
        reason = written or (f"The script {entry.name} {_exit_reason(code)}"
                             + (f"; the end of its {'stderr' if stderr_tail else 'output'}:\n{said}" if said else
                                " without output"))[-FAILURE_REASON_CHARS:]
        shown = "\n".join(f"  | {line}" for line in output_tail) or "  (no output)"
        raise ScriptError(f"The script {entry.name} {_exit_reason(code)}"
                          + (f": {written}" if written else "") + f". Last lines of its output:\n{shown}\n"
                          + (f"Full log: {log_path}. " if log_path else "")
                          + "Fix the script (run it by hand with the same --name value arguments to debug).",
                          returncode=code, failure_reason=reason)
    notes = [] if files or stop.sent else [f"warning: {entry.name} wrote nothing to SM_MODEL_DIR ({model})"]
    return ScriptResult(entry_point=entry, model_dir=model, output_dir=output, log_file=log_path, exit_code=code,
                        seconds=seconds, metrics=parser.points, model_files=files, notes=notes, stopped=stop.sent)


class _StopOnRequest:
    """A thread that polls ``stop_requested`` while the script runs and, once true, sends SIGTERM to the script's
    process group, then SIGKILL after ``grace`` seconds."""

    def __init__(self, proc: subprocess.Popen[bytes], stop_requested: Callable[[], bool] | None,
                 grace: float) -> None:
        self.proc, self.stop_requested, self.grace = proc, stop_requested, grace
        self.sent = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def start(self) -> None:
        if self.stop_requested is not None:
            self._thread.start()

    def finish(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _watch(self) -> None:
        assert self.stop_requested is not None
        while not self._done.wait(0.2):
            if self.proc.poll() is not None:
                return
            if self.stop_requested():
                self.sent = True
                _signal_group(self.proc, signal.SIGTERM)
                if not self._done.wait(self.grace) and self.proc.poll() is None:
                    _signal_group(self.proc, signal.SIGKILL)
                return


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM to the script's process group, then SIGKILL after ``grace`` seconds (SageMaker's stop,
    shortened)."""
    if proc.poll() is not None:
        return
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
