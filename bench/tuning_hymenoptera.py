"""Hyperparameter tuning on hymenoptera (ants vs bees) with efficientnet-lite0 (ImageNet weights).

1. The defaults: one training job (``architecture=efficientnet-lite0``, ``use_pretrained_model=1``, ``epochs``).
2. A tuning job: ``--max-jobs`` trials (12), ``--max-parallel-jobs`` (2) at once, bayesian, over learning_rate
   (log), mini_batch_size, optimizer and freeze; prints the best validation accuracy against the defaults', the
   total wall time and the overhead per trial (a trial's wall time before it trains: queue wait, worker start,
   data check, model build).
3. With ``--early-stopping``: the same study with ``--early-stopping auto``: wall time saved, best result.

Each run uses a fresh OCULI_HOME (a temp folder). Usage:
    .venv/bin/python bench/tuning_hymenoptera.py [--max-jobs 12] [--parallel 2] [--epochs 4] [--early-stopping]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "hymenoptera_data"
OBJECTIVE = "validation:accuracy"


def static(epochs: int) -> dict[str, str]:
    """The hyperparameters every run shares."""
    return {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": str(epochs)}


def defaults(data: Path, epochs: int) -> float:
    """Train once with the defaults as a job; returns its validation accuracy."""
    from oculi.jobs.runner import JobSpec, run_attached, submit

    job = submit(JobSpec(algorithm="image-classification", channels={"train": str(data / "train"),
                                                                      "validation": str(data / "val")},
                         hyperparameters=static(epochs), name="defaults"), attached=True)
    start = time.perf_counter()
    job = run_attached(job)
    value = job["final_metrics"][OBJECTIVE]
    print(f"defaults: {OBJECTIVE} {value:.4f}, wall time {time.perf_counter() - start:.0f} s", flush=True)
    return value


def study(data: Path, args: argparse.Namespace, early: bool) -> tuple[float, float]:
    """Run the tuning job; returns (best objective, wall seconds) and prints the overhead per trial."""
    from oculi.jobs.runner import JobSpec
    from oculi.jobs.store import JobStore
    from oculi.tuning import tuner
    from oculi.tuning.config import TuningConfig
    from oculi.tuning.ranges import CategoricalParameter, ContinuousParameter, IntegerParameter
    from oculi.tuning.report import trials

    cfg = TuningConfig(OBJECTIVE, {"learning_rate": ContinuousParameter(1e-4, 0.05, "Logarithmic"),
                                   "mini_batch_size": IntegerParameter(8, 32),
                                   "optimizer": CategoricalParameter(["sgd", "adam"]),
                                   "freeze": CategoricalParameter(["none", "backbone"])},
                       max_jobs=args.max_jobs, max_parallel_jobs=args.parallel, random_seed=0,
                       early_stopping="auto" if early else "off")
    training = JobSpec(algorithm="image-classification", channels={"train": str(data / "train"),
                                                                    "validation": str(data / "val")},
                       hyperparameters=static(args.epochs))
    store = JobStore()
    name = "hym-early" if early else "hym"
    tuner.create(cfg, training, name, store)
    start = time.perf_counter()
    job = tuner.run(name, store, echo=lambda line: print("   ", line, flush=True))
    wall = time.perf_counter() - start
    rows = trials(job, store)
    overhead = []
    for r in rows:
        record = store.get(r["job"])
        if record["training_start"]:  # submitted → training: queue wait, worker start, data check, model build
            overhead.append(record["training_start"] - record["created_at"])
    best = max((r["objective"] for r in rows if r["objective"] is not None), default=float("nan"))
    stopped = sum(r["secondary_status"] == "Stopped" for r in rows)
    print(f"{name}: best {OBJECTIVE} {best:.4f}, wall time {wall:.0f} s, {len(rows)} trials ({stopped} stopped "
          f"early), overhead per trial median {statistics.median(overhead):.1f} s (queue wait, worker start, data "
          "check; the tuner records a trial within its 1 s poll)", flush=True)
    return best, wall


def main() -> int:
    """Run the defaults, the study and (optionally) the early-stopping study."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-jobs", type=int, default=12)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--early-stopping", action="store_true", help="Also run the study with early stopping.")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"hymenoptera data not found at {args.data}; pass --data PATH/hymenoptera_data")
        return 1
    os.environ["OCULI_HOME"] = tempfile.mkdtemp(prefix="oculi-tune-bench-")
    os.environ["OCULI_MAX_PARALLEL_JOBS"] = str(args.parallel)
    os.environ.pop("OCULI_DATABASE_URL", None)
    print(f"CPU cores {os.cpu_count()}; OCULI_HOME {os.environ['OCULI_HOME']}", flush=True)
    base = defaults(args.data, args.epochs)
    best, wall = study(args.data, args, early=False)
    print(f"tuning gained {best - base:+.4f} {OBJECTIVE} over the defaults")
    if args.early_stopping:
        best_e, wall_e = study(args.data, args, early=True)
        print(f"early stopping: wall time {wall_e:.0f} s vs {wall:.0f} s ({wall - wall_e:+.0f} s saved), best "
              f"{best_e:.4f} vs {best:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
