"""Script mode as a stored job, with real processes and the real SQLite store: a detached script job through the
CLI, its metrics time series, a graceful stop (SIGTERM to the script), resume with the same SM_CHECKPOINT_DIR,
kill -9 of the worker (the script dies with it), and SageMaker's FailureReason rules."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from oculi.errors import ConfigError, JobError
from oculi.jobs import runner
from oculi.jobs.describe import describe
from oculi.jobs.script import ScriptError
from tests.jobs.conftest import story, until, wait_ended

# A script that trains "epochs" of `--seconds` each, keeps its progress in SM_CHECKPOINT_DIR after every epoch and
# when SIGTERM asks it to stop (SageMaker's contract), and resumes from there.
CHECKPOINTING_SCRIPT = """
import argparse, json, os, signal, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--seconds", type=float)
args = parser.parse_args()
ckpt = os.path.join(os.environ["SM_CHECKPOINT_DIR"], "state.json")
state = {"epoch": 0}
if os.path.exists(ckpt):
    state = json.load(open(ckpt))
    print(f"resumed from epoch {state['epoch']}", flush=True)
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
for epoch in range(state["epoch"] + 1, args.epochs + 1):
    time.sleep(args.seconds)
    print(f"epoch={epoch} loss={1 / epoch:.4f}", flush=True)
    print(f"pid {os.getpid()} at epoch {epoch}", file=sys.stderr, flush=True)
    json.dump({"epoch": epoch}, open(ckpt, "w"))
    if stop:
        print(f"SIGTERM: checkpoint written at epoch {epoch}", flush=True)
        sys.exit(0)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write(f"trained {args.epochs} epochs")
"""


def _source(tmp_path: Path, script: str) -> Path:
    src = tmp_path / "code"
    src.mkdir(exist_ok=True)
    (src / "train.py").write_text(textwrap.dedent(script))
    return src


def _oculi(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=300, env={**os.environ})


def _alive(pid: int) -> bool:
    return runner.process_token(pid) is not None


def test_script_job_detach_stop_resume_and_kill_9(store, tmp_path):
    src = _source(tmp_path, CHECKPOINTING_SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    done = _oculi("train", "--entry-point", "train.py", "--source-dir", str(src), "--train", str(data),
                  "-p", "epochs=32", "-p", "seconds=0.2", "-m", "train:loss=loss=([0-9.]+)", "--name", "script-1",
                  "--detach")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job script-1 started" in done.stdout
    job = until(lambda: (j := store.get("script-1"))["secondary_status"] == "Training" and j, what="Training")
    assert job["algorithm"] == "script" and job["model_dir"] == str(Path(job["job_dir"]) / "model")
    # metrics arrive while the script runs, as a time series (value n of a metric = step n)
    until(lambda: len(store.metrics("script-1")) >= 3, what="three metric values",
          explain=lambda: story(store, "script-1"))

    asked = time.monotonic()
    runner.stop("script-1", store)
    stopped = wait_ended(store, "script-1")  # a generous hang guard, not a speed assertion
    took = time.monotonic() - asked
    assert stopped["secondary_status"] == "Stopped", story(store, "script-1")
    log = Path(stopped["log_path"]).read_text()
    assert "SIGTERM: checkpoint written at epoch " in log, story(store, "script-1")
    at = int(log.split("SIGTERM: checkpoint written at epoch ")[1].split()[0])  # the script saw SIGTERM
    # ... and stopped part-way: a SIGTERM lost or held back until the end would let it run all 32 epochs.
    assert at < 32, f"the script stopped at epoch {at} of 32, {took:.1f} s after the stop request"
    assert f"at epoch {at}" in log  # the script's stderr is in the log too
    transitions = [t["secondary_status"] for t in store.transitions("script-1")]
    assert transitions == ["Pending", "Starting", "Training", "Stopping", "Stopped"]
    assert [r["value"] for r in store.metrics("script-1")] == [round(1 / e, 4) for e in range(1, at + 1)]

    # the contract the script saw: SM_CHECKPOINT_DIR is the job's checkpoint folder, in checkpointconfig.json too
    ckpt_dir = Path(stopped["job_dir"]) / "checkpoints"
    assert json.loads((ckpt_dir / "state.json").read_text()) == {"epoch": at}
    config = Path(stopped["job_dir"]) / "input" / "config" / "checkpointconfig.json"
    assert json.loads(config.read_text()) == {"LocalPath": str(ckpt_dir)}

    # resume: the same script, arguments and checkpoint folder; kill -9 the worker part-way: the script dies too
    runner.resume("script-1", store=store)
    runner.dispatch(store)
    until(lambda: len(store.metrics("script-1")) >= at + 2, what="epochs after the resume")
    worker = store.get("script-1")["pid"]
    started = store.transitions("script-1")[-1]["message"]  # "running train.py (pid N)"
    script_pid = int(started.split("(pid ")[1].rstrip(")"))
    os.kill(worker, signal.SIGKILL)
    until(lambda: not _alive(worker) and not _alive(script_pid), timeout=60, what="worker and script gone",
          explain=lambda: story(store, "script-1"))
    runner.dispatch(store)
    dead = store.get("script-1")
    assert dead["secondary_status"] == "Failed" and "worker process died" in dead["failure_reason"]
    saved = json.loads((ckpt_dir / "state.json").read_text())["epoch"]
    assert saved > at

    runner.resume("script-1", store=store)
    runner.dispatch(store)
    final = wait_ended(store, "script-1")
    assert final["secondary_status"] == "Completed"
    log = Path(final["log_path"]).read_text()
    assert f"resumed from epoch {at}" in log and f"resumed from epoch {saved}" in log
    assert (Path(final["model_dir"]) / "model.txt").read_text() == "trained 32 epochs"
    assert final["final_metrics"] == {"train:loss": 0.0312}
    # every value the script printed, across the three attempts, in order: nothing lost, epochs after the kill's
    # checkpoint possibly printed twice (the script redoes them, as a SageMaker spot restart would)
    values = [r["value"] for r in store.metrics("script-1")]
    assert values[:at] == [round(1 / e, 4) for e in range(1, at + 1)] and values[-1] == 0.0312
    assert [r["step"] for r in store.metrics("script-1")] == list(range(len(values)))
    assert (Path(final["job_dir"]) / "metrics.csv").read_text().count("train:loss") == len(values)
    described = describe(final, store)
    assert described["AlgorithmSpecification"]["MetricDefinitions"] == [{"Name": "train:loss",
                                                                         "Regex": "loss=([0-9.]+)"}]
    assert described["HyperParameters"]["sagemaker_program"] == str(src / "train.py")
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == final["model_dir"]
    assert "FailureReason" not in described and described["Oculi"]["Attempts"] == 2
    # a completed script job resumes only to train longer
    with pytest.raises(JobError, match="--epochs N"):
        runner.resume("script-1", store=store)


def test_script_failure_reason_follows_sagemaker(store, tmp_path):
    # the failure file wins, cut at 1024 characters
    src = _source(tmp_path, """
        import os, sys
        print("some progress")
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write("CUDA out of memory (pretend). " + "x" * 2000)
        sys.exit(3)
    """)
    job = runner.submit(runner.JobSpec(entry_point="train.py", source_dir=str(src)), store, attached=True)
    with pytest.raises(ScriptError, match="exited with code 3"):
        runner.run_attached(job, store)
    failed = store.get(job["name"])
    assert failed["secondary_status"] == "Failed"
    assert failed["failure_reason"].startswith("CUDA out of memory (pretend). xxx")
    assert len(failed["failure_reason"]) == 1024

    # no failure file: the end of stderr (the traceback), not the stdout lines
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / "train.py").write_text("print('loading rows')\nraise ValueError('bad column count in row 7')\n")
    job = runner.submit(runner.JobSpec(entry_point=str(crash / "train.py")), store)
    runner.dispatch(store)
    failed = wait_ended(store, job["name"])
    assert failed["secondary_status"] == "Failed"
    assert "exited with code 1" in failed["failure_reason"]
    assert failed["failure_reason"].rstrip().endswith("ValueError: bad column count in row 7")
    assert "loading rows" not in failed["failure_reason"]
    assert "loading rows" in Path(failed["log_path"]).read_text()

    # mistakes are refused when the job is submitted, naming the fix
    with pytest.raises(ConfigError, match="does not exist in --source-dir"):
        runner.submit(runner.JobSpec(entry_point="nope.py", source_dir=str(src)), store)
    with pytest.raises(ConfigError, match="no capture group"):
        runner.submit(runner.JobSpec(entry_point="train.py", source_dir=str(src),
                                     metric_definitions=["loss=loss: [0-9.]+"]), store)
    assert len(store.list()) == 2
