"""Figures for training jobs (prints them; not part of the test run):

1. Overhead of running as a job: wall time of a short training through `oculi train --detach` + `oculi jobs wait`
   vs the same run in-process (`oculi.train`).
2. Work lost on kill -9 at the default checkpoint setting (last.ckpt at every epoch end): the worker is killed at a
   random step, the job resumed; prints the optimizer steps redone and the final-metric difference against an
   uninterrupted run with the same seed.

Usage: python bench/jobs_overhead.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import TINY, make_class_folders  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="oculi-jobs-bench-"))
    os.environ["OCULI_HOME"] = str(root / "home")
    data = {"train": make_class_folders(root / "train", per_class=32, seed=1),
            "validation": make_class_folders(root / "validation", per_class=8, seed=2)}
    hp = {**TINY, "epochs": str(args.epochs)}

    import oculi
    from oculi.jobs import runner
    from oculi.jobs.store import JobStore

    t = time.perf_counter()
    inproc = oculi.train("image-classification", data, hp, output=root / "inprocess", progress=False,
                         echo=lambda *_: None)
    in_process = time.perf_counter() - t
    oculi_bin = str(Path(sys.executable).with_name("oculi"))
    params = [x for k, v in hp.items() for x in ("-p", f"{k}={v}")]
    t = time.perf_counter()
    subprocess.run([oculi_bin, "train", "image-classification", "--train", str(data["train"]), "--validation",
                    str(data["validation"]), *params, "--name", "bench-detached", "--detach"], check=True,
                   capture_output=True)
    returned = time.perf_counter() - t
    subprocess.run([oculi_bin, "jobs", "wait", "bench-detached"], check=True, capture_output=True)
    as_job = time.perf_counter() - t
    print(f"in-process oculi.train: {in_process:.1f} s; `oculi train --detach` returned in {returned:.1f} s, "
          f"+ `jobs wait` done at {as_job:.1f} s → job overhead {as_job - in_process:+.1f} s "
          f"({(as_job / in_process - 1) * 100:+.0f} %)")

    store = JobStore()
    steps_per_epoch = len(list(data["train"].glob("*/*.png"))) // int(hp["mini_batch_size"])
    total = steps_per_epoch * args.epochs
    spec = runner.JobSpec(algorithm="image-classification", channels={k: str(v) for k, v in data.items()},
                          hyperparameters=hp, name="bench-killed")
    runner.submit(spec, store)
    runner.dispatch(store)
    # steps are not reported live, so kill at a random point in time: after the first epoch-end checkpoint, a
    # random fraction of one epoch's duration later
    while (store.get("bench-killed")["checkpoint"] or {}).get("epoch", 0) < 1:
        time.sleep(0.05)
    epoch_seconds = time.time() - store.get("bench-killed")["training_start"]
    fraction = random.Random(args.seed).uniform(0.2, 0.9)
    time.sleep(fraction * epoch_seconds)
    job = store.get("bench-killed")
    os.kill(job["pid"], signal.SIGKILL)
    time.sleep(0.5)
    runner.dispatch(store)
    dead = store.get("bench-killed")
    ckpt = dead["checkpoint"]
    runner.resume("bench-killed", store=store)
    runner.dispatch(store)
    done = runner.wait("bench-killed", store)
    log = Path(done["log_path"]).read_text()
    print(f"kill -9 {fraction:.0%} of an epoch after the first checkpoint, during epoch {ckpt['epoch'] + 1} of "
          f"{args.epochs} ({steps_per_epoch} steps/epoch, {total} steps): {dead['status']} "
          f"({dead['failure_reason'].split(';')[0]}); resumed from epoch {ckpt['epoch']}, step {ckpt['step']} → "
          f"≈{round(fraction * steps_per_epoch) % steps_per_epoch} steps redone (those of the interrupted epoch; "
          f"at most {steps_per_epoch - 1})")
    for key in ("validation:accuracy", "validation:loss"):
        a, b = inproc.metrics[key], done["final_metrics"][key]
        print(f"{key}: uninterrupted {a:.6f}, killed + resumed {b:.6f}, difference {abs(a - b):.2e}")
    print("resume line in the log:", next(line for line in log.splitlines() if line.startswith("resumed from")))


if __name__ == "__main__":
    main()
