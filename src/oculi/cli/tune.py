"""``oculi tune``: hyperparameter tuning jobs (SageMaker's Automatic Model Tuning), and ``oculi tune worker``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from oculi.cli.common import console, parse_channels


def tune(
    algorithm: str | None = typer.Argument(None, help="Algorithm to tune (see `oculi algorithms list`); leave out "
                                           "with --entry-point. `oculi tune worker NAME` joins tuning job NAME."),
    worker_of: str | None = typer.Argument(None, metavar="[NAME]", help="With `worker`: the tuning job to take "
                                           "trials from."),
    train: Path | None = typer.Option(None, "--train", help="Training channel (as for `oculi train`)."),
    validation: Path | None = typer.Option(None, "--validation", help="Validation channel."),
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Any channel as NAME=PATH. Repeatable."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="A static hyperparameter, name=value, the "
                                           "same in every trial. Repeatable."),
    objective: str | None = typer.Option(None, "--objective", help="The metric to optimise, e.g. "
                                         "validation:accuracy (a built-in algorithm's metric, or a script's metric "
                                         "definition)."),
    objective_type: str | None = typer.Option(None, "--objective-type", help="Maximize or Minimize (default: "
                                              "Minimize for a metric whose name has 'loss', else Maximize)."),
    range_: list[str] | None = typer.Option(None, "--range", "-r", help="NAME=continuous:LO:HI[:log], "
                                            "NAME=integer:LO:HI[:log] or NAME=categorical:A,B,… Repeatable."),
    config: Path | None = typer.Option(None, "--config", help="SageMaker's HyperParameterTuningJobConfig JSON as "
                                       "is (ParameterRanges, objective, ResourceLimits, Strategy, early stopping, "
                                       "completion criteria), instead of the options above."),
    strategy: str | None = typer.Option(None, "--strategy", help="bayesian (default; Optuna's TPE), random, grid "
                                        "(every combination of categorical ranges once) or hyperband."),
    max_jobs: int | None = typer.Option(None, "--max-jobs", help="Training jobs to run in all."),
    max_parallel_jobs: int | None = typer.Option(None, "--max-parallel-jobs", help="Trials at once (default 1; "
                                                 "OCULI_MAX_PARALLEL_JOBS still caps the local queue)."),
    max_runtime: int | None = typer.Option(None, "--max-runtime", metavar="SECONDS", help="Wall-clock limit of "
                                           "the tuning job (SageMaker's ResourceLimits.MaxRuntimeInSeconds): then "
                                           "no new trial starts, running ones stop with their checkpoints and the "
                                           "job ends MaxRuntimeExceeded. Counts while the job is in progress, "
                                           "across resumes."),
    early_stopping: str | None = typer.Option(None, "--early-stopping", help="auto: stop a trial whose objective "
                                              "is worse than the median of the others' at the same epoch; off "
                                              "(default)."),
    warm_start: list[str] | None = typer.Option(None, "--warm-start", help="A parent tuning job whose trials "
                                                "seed this one (at most 5). Repeatable."),
    warm_start_type: str = typer.Option("identical", "--warm-start-type", help="identical (same data, algorithm "
                                        "and ranges) or transfer."),
    random_seed: int | None = typer.Option(None, "--random-seed", help="Seed of the sampler (a random or grid "
                                           "search with a seed is reproducible)."),
    name: str | None = typer.Option(None, "--name", help="Tuning job name, at most 32 characters (default "
                                    "tune-YYYY-MM-DD-HH-MM-SS-mmm); trials are NAME-001, NAME-002, …"),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return at once; the tuner runs in the background. "
                                "Follow it with `oculi jobs logs NAME --follow`."),
    entry_point: Path | None = typer.Option(None, "--entry-point", help="Tune your own training script (script "
                                            "mode); its objective comes from --metric-definition.",
                                            rich_help_panel="Script mode"),
    source_dir: Path | None = typer.Option(None, "--source-dir", help="Folder of the script.",
                                           rich_help_panel="Script mode"),
    metric_definition: list[str] | None = typer.Option(None, "--metric-definition", "-m", help="NAME=REGEX "
                                                       "read from the script's output. Repeatable.",
                                                       rich_help_panel="Script mode"),
) -> None:
    """Tune hyperparameters: run many training jobs (each an ordinary job: `oculi jobs logs|metrics NAME-003`)
    with values chosen by Bayesian (TPE), random, grid or Hyperband search, and report the best.
    A progress line per trial, a table at the end. kill -9 of the tuner loses nothing: `oculi jobs resume NAME`.

    Example: oculi tune image-classification --train data/train --validation data/val
    --objective validation:accuracy --range learning_rate=continuous:0.0001:0.1:log
    --range mini_batch_size=integer:8:32 --range optimizer=categorical:sgd,adam -p epochs=10
    --max-jobs 20 --max-parallel-jobs 2 --early-stopping auto --max-runtime 3600

    SageMaker's JSON: oculi tune image-classification --train data/train --config tuning.json -p epochs=10

    More machines (PostgreSQL in OCULI_DATABASE_URL, same data paths): oculi tune worker NAME
    """
    from oculi.errors import ConfigError
    from oculi.jobs.runner import JobSpec
    from oculi.tuning import tuner
    from oculi.tuning.config import TuningConfig, load_config
    from oculi.tuning.ranges import parse_range

    if algorithm == "worker":
        if not worker_of:
            raise ConfigError("`oculi tune worker NAME`: name the tuning job to take trials from.")
        console.print(f"worker {__import__('os').getpid()} taking trials of {worker_of}")
        tuner.work(worker_of, echo=console.print)
        return
    if worker_of is not None:
        raise ConfigError(f"Unexpected argument {worker_of!r}: `oculi tune ALGORITHM …` takes one algorithm "
                          "(`oculi tune worker NAME` joins a tuning job).")
    if entry_point is None and algorithm is None:
        raise ConfigError("Name an algorithm to tune, e.g. `oculi tune image-classification --train data/train …`, "
                          "or a script with --entry-point.")
    if entry_point is not None and algorithm is not None:
        raise ConfigError(f"Pass either an algorithm ({algorithm}) or --entry-point {entry_point}, not both.")
    flags = {"--objective": objective, "--objective-type": objective_type, "--range": range_,
             "--strategy": strategy, "--max-jobs": max_jobs, "--max-parallel-jobs": max_parallel_jobs,
             "--max-runtime": max_runtime, "--early-stopping": early_stopping, "--random-seed": random_seed}
    if config is not None:
        both = [k for k, v in flags.items() if v is not None and v != []]
        if both:
            raise ConfigError(f"--config {config} already holds the tuning settings; drop {', '.join(both)} (or "
                              "edit the file).")
        cfg = load_config(config)
    else:
        if not objective:
            raise ConfigError("--objective is required, e.g. --objective validation:accuracy.")
        ranges: dict[str, Any] = {}
        for text in range_ or []:
            key, p = parse_range(text)
            if key in ranges:
                raise ConfigError(f"--range {key} is given twice; give each hyperparameter one range.")
            ranges[key] = p
        cfg = TuningConfig(objective=objective, ranges=ranges,
                           objective_type=objective_type or ("Minimize" if "loss" in objective else "Maximize"),
                           strategy=strategy or "bayesian", max_jobs=max_jobs,
                           max_parallel_jobs=max_parallel_jobs or 1, max_runtime=max_runtime,
                           early_stopping=early_stopping or "off", random_seed=random_seed)
    if warm_start:
        cfg.warm_start_parents, cfg.warm_start_type = list(warm_start), warm_start_type
    from oculi.cli.train import _params

    channels = parse_channels(train, validation, channel)
    training = JobSpec(algorithm=algorithm, channels={k: str(v) for k, v in channels.items()},
                       hyperparameters=_params(param), entry_point=str(entry_point) if entry_point else None,
                       source_dir=str(source_dir) if source_dir else None,
                       metric_definitions=metric_definition or None)
    job = tuner.create(cfg, training, name)
    console.print(f"tuning job {job['name']}: {cfg.strategy}, {cfg.max_jobs} training jobs, objective "
                  f"{cfg.objective_type} {cfg.objective}"
                  + (f", at most {cfg.max_runtime} s" if cfg.max_runtime is not None else ""))
    if detach:
        tuner.start_detached(job["name"])
        console.print(f"running in the background; follow it with `oculi jobs logs {job['name']} --follow`")
        return
    run_and_report(job["name"])


def run_and_report(name: str) -> None:
    """Run tuning job ``name`` (Pending) here, printing a line per trial, then the table of trials."""
    from oculi.errors import JobError
    from oculi.jobs.store import JobStore
    from oculi.tuning import tuner

    store = JobStore()
    job = tuner.run(name, store, echo=console.print)
    print_trials(job, store)
    if job["secondary_status"] == "Failed":
        raise JobError(f"tuning job {name} failed: {job['failure_reason']}")


def print_trials(job: dict[str, Any], store: Any) -> None:
    """The table of trials (hyperparameters, objective, status, duration) and where the best model is."""
    from rich.table import Table

    from oculi.tuning.config import TuningConfig
    from oculi.tuning.report import best_trial, trials

    cfg = TuningConfig.from_record(job["spec"]["tuning"])
    rows = trials(job, store)
    best = best_trial(rows, cfg.objective_type)
    table = Table("#", "training job", *cfg.ranges, cfg.objective, "status", "duration", box=None)
    for r in rows:
        mark = "  ← best" if best is not None and r["index"] == best["index"] else ""
        value = f"{r['objective']:.4f}" if r["objective"] is not None else ""
        status = r["secondary_status"] + (" (early stop)" if (r["reason"] or "").startswith("early stopping")
                                          else "")
        table.add_row(str(r["index"]), r["job"], *(r["hyperparameters"].get(n, "") for n in cfg.ranges), value,
                      status + mark, f"{r['seconds']:.0f} s" if r["seconds"] else "")
    wide = console if console.is_terminal else __import__("rich.console").console.Console(width=200, highlight=False)
    wide.print(table)
    reason = (job["spec"] or {}).get("end_reason")
    console.print(f"tuning job {job['name']}: {job['status']}" + (f" ({reason})" if reason else ""))
    if best:
        console.print(f"best: {best['job']} {cfg.objective} {best['objective']:.4f}; model {best['model_dir']}")
