"""Figures for training jobs (prints them; not part of the test run):

1. Overhead of running as a job: wall time of a short training through `oculi train --detach` + `oculi jobs wait`
   vs the same run in-process (`oculi.train`). The foreground `oculi train` (also a job, in a new process) is
   timed beside them, to separate the cost of a fresh process from that of the job system.
2. Work lost on kill -9 at the default checkpoint setting (last.ckpt at every epoch end, every
   ``checkpoint_interval`` seconds within an epoch — 300 by default, so never inside this bench's short epochs unless
   ``--checkpoint-interval`` says otherwise — and at a stop): a training process is killed at a random optimizer
   step after its first epoch; the resumed run continues from the last checkpoint. Prints the step reached, the
   checkpoint's step, so the steps redone, and the final-metric difference against the uninterrupted run. The
   training runs in a child process printing each step (the engine's code path, the one a job worker runs), so the
   step at the kill is exact.
3. The same as a job: kill -9 of a detached job's worker, found dead (Failed), `jobs resume`d; final-metric
   difference against the uninterrupted run.

Usage: python bench/jobs_overhead.py [--epochs 3] [--seed 1] [--repeats 3] [--checkpoint-interval SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import TINY, make_class_folders  # noqa: E402


def _child(spec_path: str) -> None:
    """Child mode: train as the spec says, printing ``step N`` after every optimizer step."""
    import lightning as L

    from oculi.engine.training import train

    class PrintSteps(L.Callback):
        def on_train_batch_end(self, trainer, *args):  # noqa: ANN001, ANN002, ANN202
            print(f"step {trainer.global_step}", flush=True)

    spec = json.loads(Path(spec_path).read_text())
    result = train("image-classification", spec["data"], spec["hp"], output=spec["output"], progress=False,
                   overwrite=True, checkpoint_dir=spec["checkpoints"], resume_from=spec.get("resume_from"),
                   callbacks=[PrintSteps()], echo=lambda line: print(line, flush=True))
    print("metrics " + json.dumps(result.metrics), flush=True)


def _spawn(root: Path, spec: dict) -> subprocess.Popen:
    path = root / f"spec-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(spec))
    return subprocess.Popen([sys.executable, __file__, "--child", str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each kind for the overhead figure.")
    parser.add_argument("--checkpoint-interval", type=float, default=None,
                        help="checkpoint_interval for parts 2 and 3 (default: the hyperparameter's default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child)
        return
    root = Path(tempfile.mkdtemp(prefix="oculi-jobs-bench-"))
    os.environ["OCULI_HOME"] = str(root / "home")
    data = {"train": make_class_folders(root / "train", per_class=32, seed=1),
            "validation": make_class_folders(root / "validation", per_class=8, seed=2)}
    hp = {**TINY, "epochs": str(args.epochs), "augmentation_type": "crop_color_transform"}
    steps_per_epoch = len(list(data["train"].glob("*/*.png"))) // int(hp["mini_batch_size"])
    total = steps_per_epoch * args.epochs

    import torch

    import oculi
    from oculi.jobs import runner
    from oculi.jobs.store import JobStore

    # 1. overhead of a job: alternate the two, several times (on a shared machine the minimum is the fairest)
    oculi_bin = str(Path(sys.executable).with_name("oculi"))
    params = [x for k, v in hp.items() for x in ("-p", f"{k}={v}")]
    in_process, foreground, as_job, returned = [], [], [], []
    cli_train = [oculi_bin, "train", "image-classification", "--train", str(data["train"]), "--validation",
                 str(data["validation"]), *params]
    for i in range(args.repeats):
        t = time.perf_counter()
        inproc = oculi.train("image-classification", data, hp, output=root / "inprocess", progress=False,
                             overwrite=True, echo=lambda *_: None)
        in_process.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([*cli_train, "--name", f"bench-foreground-{i}"], check=True, capture_output=True)
        foreground.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([*cli_train, "--name", f"bench-detached-{i}", "--detach"], check=True, capture_output=True)
        returned.append(time.perf_counter() - t)
        subprocess.run([oculi_bin, "jobs", "wait", f"bench-detached-{i}"], check=True, capture_output=True)
        as_job.append(time.perf_counter() - t)
    fastest, job_fastest = min(in_process), min(as_job)
    print(f"1. {args.repeats} runs each, alternating; {total} steps of {hp['mini_batch_size']} images. In-process "
          f"oculi.train: min {fastest:.1f} s (median {statistics.median(in_process):.1f}); `oculi train` in the "
          f"foreground (a new process: Python, torch and Lightning imports): min {min(foreground):.1f} s (median "
          f"{statistics.median(foreground):.1f}); `oculi train --detach` returned in min {min(returned):.1f} s, + "
          f"`jobs wait` done at min {job_fastest:.1f} s (median {statistics.median(as_job):.1f}) → job overhead "
          f"{job_fastest - fastest:+.1f} s ({(job_fastest / fastest - 1) * 100:+.0f} %) against in-process, "
          f"{job_fastest - min(foreground):+.1f} s against the foreground CLI, on the minima")

    # 2. steps redone after kill -9 at a random step after the first epoch
    kill_at = random.Random(args.seed).randint(steps_per_epoch + 1, total - 1)
    killed_hp = dict(hp)
    if args.checkpoint_interval is not None:
        killed_hp["checkpoint_interval"] = str(args.checkpoint_interval)
    spec = {"data": {k: str(v) for k, v in data.items()}, "hp": killed_hp, "output": str(root / "killed"),
            "checkpoints": str(root / "killed-ckpt")}
    proc = _spawn(root, spec)
    reached = 0
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("step "):
            reached = int(line.split()[1])
            if reached >= kill_at:
                proc.send_signal(signal.SIGKILL)
                break
    reached = max([reached] + [int(x.split()[1]) for x in proc.stdout.read().splitlines() if x.startswith("step ")])
    proc.wait()
    saved = torch.load(root / "killed-ckpt" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    resumed = _spawn(root, {**spec, "resume_from": str(root / "killed-ckpt" / "last.ckpt")})
    out, _ = resumed.communicate()
    resume_line = next(line for line in out.splitlines() if line.startswith("resumed from"))
    metrics = json.loads(next(line for line in out.splitlines() if line.startswith("metrics "))[8:])
    print(f"2. kill -9 at step {reached} of {total} ({steps_per_epoch} steps/epoch; exit status "
          f"{proc.returncode}); last checkpoint at step {saved} → {resume_line} → {reached - saved} optimizer "
          f"steps redone (checkpoint_interval {killed_hp.get('checkpoint_interval', 'default')}; with checkpoints "
          f"at epoch ends only: at most {steps_per_epoch - 1}, on average {(steps_per_epoch - 1) / 2:.1f})")
    for key in ("validation:accuracy", "validation:loss"):
        a, b = inproc.metrics[key], metrics[key]
        print(f"   {key}: uninterrupted {a:.6f}, killed + resumed {b:.6f}, difference {abs(a - b):.2e}")

    # 3. the same through the job system
    store = JobStore()
    runner.submit(runner.JobSpec(algorithm="image-classification", channels={k: str(v) for k, v in data.items()},
                                 hyperparameters=killed_hp, name="bench-killed"), store)
    runner.dispatch(store)
    while (store.get("bench-killed")["checkpoint"] or {}).get("epoch", 0) < 1:
        time.sleep(0.05)
    time.sleep(random.Random(args.seed).uniform(0.1, 0.9) * (time.time() - store.get("bench-killed")
                                                             ["training_start"]))
    os.kill(store.get("bench-killed")["pid"], signal.SIGKILL)
    time.sleep(0.5)
    runner.dispatch(store)
    dead = store.get("bench-killed")
    runner.resume("bench-killed", store=store)
    runner.dispatch(store)
    done = runner.wait("bench-killed", store)
    log = Path(done["log_path"]).read_text()
    print(f"3. job: kill -9 of the worker → {dead['status']} ({dead['failure_reason'].split(';')[0]}); "
          f"`jobs resume` → {next(x for x in log.splitlines() if x.startswith('resumed from'))} → "
          f"{done['status']}")
    for key in ("validation:accuracy", "validation:loss"):
        a, b = inproc.metrics[key], done["final_metrics"][key]
        print(f"   {key}: uninterrupted {a:.6f}, killed + resumed {b:.6f}, difference {abs(a - b):.2e}")


if __name__ == "__main__":
    main()
