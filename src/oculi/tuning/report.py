"""What a tuning job looks like from outside: its trials joined with their training jobs, SageMaker's
DescribeHyperParameterTuningJob and ListTrainingJobsForHyperParameterTuningJob shapes, and the analytics table."""

from __future__ import annotations

import time
from typing import Any

from oculi.jobs import status as S
from oculi.jobs.store import JobStore, iso
from oculi.tuning import study as studies
from oculi.tuning.config import TuningConfig
from oculi.tuning.ranges import value_of


def trials(job: dict[str, Any], store: JobStore) -> list[dict[str, Any]]:
    """One dict per own trial, by number: ``index`` (1…), ``job`` (training job name), ``status`` (the job's
    primary status; ``NotStarted`` when it was asked for but not submitted yet), ``secondary_status``,
    ``hyperparameters`` (tuned values as strings), ``objective`` (None unless recorded), ``state`` (Optuna's),
    ``reason`` (why it stopped or failed), ``seconds``, ``created``/``start``/``end`` (UNIX seconds)."""
    import optuna

    cfg = TuningConfig.from_record(job["spec"]["tuning"])
    warm = int(job["spec"]["warm_trials"])
    studies.quiet()
    study = optuna.load_study(study_name=job["name"], storage=studies.storage(job["spec"]["storage"], job["job_dir"]))
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.number < warm or t.user_attrs.get("discarded"):
            continue
        name = f"{job['name']}-{t.number - warm + 1:03d}"
        record = store.find(name)
        start = record["training_start"] if record else None
        end = record["training_end"] if record else None
        out.append({
            "index": t.number - warm + 1, "job": name, "number": t.number,
            "status": record["status"] if record else "NotStarted",
            "secondary_status": record["secondary_status"] if record else "NotStarted",
            "hyperparameters": {n: value_of(p, t.params[n]) for n, p in cfg.ranges.items() if n in t.params},
            "objective": t.value if t.state == optuna.trial.TrialState.COMPLETE else None,
            "state": t.state.name, "reason": t.user_attrs.get("reason"), "retried": bool(t.user_attrs.get("retried")),
            "seconds": ((end or time.time()) - start) if start else None,
            "created": record["created_at"] if record else None, "start": start, "end": end,
            "model_dir": record["model_dir"] if record else None,
        })
    return out


def runtime_seconds(store: JobStore, name: str, now: float | None = None) -> float:
    """Seconds tuning job ``name`` has been in progress (SageMaker's ``ConsumedResources.RuntimeInSeconds``, what
    ``MaxRuntimeInSeconds`` limits): the sum, over its runs, of the time from each start (``Starting``) to the end
    of that run (``Completed``, ``Stopped`` or ``Failed``; the run still going counts up to ``now``). The clock
    starts at the first start and pauses while the job waits Stopped or Failed for ``oculi jobs resume``."""
    total, since = 0.0, None
    for t in store.transitions(name):
        if t["secondary_status"] == S.STARTING and since is None:
            since = t["time"]
        elif t["secondary_status"] in S.TERMINAL and since is not None:
            total, since = total + t["time"] - since, None
    if since is not None:
        total += (time.time() if now is None else now) - since
    return total


def best_trial(rows: list[dict[str, Any]], objective_type: str) -> dict[str, Any] | None:
    """The trial with the best recorded objective (ties: the earlier one)."""
    done = [r for r in rows if r["objective"] is not None]
    if not done:
        return None
    sign = 1 if objective_type == "Maximize" else -1
    return max(done, key=lambda r: (sign * r["objective"], -r["index"]))


def _summary(row: dict[str, Any], cfg: TuningConfig) -> dict[str, Any]:
    out: dict[str, Any] = {
        "TrainingJobName": row["job"], "TrainingJobStatus": row["status"],
        "TunedHyperParameters": row["hyperparameters"], "CreationTime": iso(row["created"]),
        "TrainingStartTime": iso(row["start"]), "TrainingEndTime": iso(row["end"]),
        "ObjectiveStatus": "Succeeded" if row["objective"] is not None else
        ("Pending" if row["state"] == "RUNNING" else "Failed"),
    }
    if row["objective"] is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {"Type": cfg.objective_type,
                                                              "MetricName": cfg.objective, "Value": row["objective"]}
    if row["reason"]:
        out["FailureReason"] = row["reason"]
    return {k: v for k, v in out.items() if v is not None}


def list_training_jobs(job: dict[str, Any], store: JobStore) -> list[dict[str, Any]]:
    """ListTrainingJobsForHyperParameterTuningJob's ``TrainingJobSummaries``."""
    cfg = TuningConfig.from_record(job["spec"]["tuning"])
    return [_summary(r, cfg) for r in trials(job, store)]


def describe(job: dict[str, Any], store: JobStore) -> dict[str, Any]:
    """DescribeHyperParameterTuningJob's shape: config, training job definition, status, counters, best job,
    warm start and end reason."""
    cfg = TuningConfig.from_record(job["spec"]["tuning"])
    rows = trials(job, store)
    training = job["spec"]["training"]
    counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for r in rows:
        st = r["status"]
        if st == "NotStarted":
            st = S.IN_PROGRESS
        counters["NonRetryableError" if st == S.FAILED else st if st in counters else "InProgress"] += 1
        objective[_summary(r, cfg)["ObjectiveStatus"]] += 1
    best = best_trial(rows, cfg.objective_type)
    definition: dict[str, Any] = {
        "AlgorithmSpecification": {"TrainingImage": training["algorithm"] or "script", "TrainingInputMode": "File"},
        "StaticHyperParameters": training["hyperparameters"],
        "InputDataConfig": [{"ChannelName": k, "DataSource": {"FileSystemDataSource": {"DirectoryPath": v}}}
                            for k, v in training["channels"].items()],
    }
    if training.get("entry_point"):
        definition["AlgorithmSpecification"]["MetricDefinitions"] = training.get("metric_definitions")
        definition["AlgorithmSpecification"]["EntryPoint"] = training["entry_point"]
    out: dict[str, Any] = {
        "HyperParameterTuningJobName": job["name"],
        "HyperParameterTuningJobConfig": cfg.to_sagemaker(),
        "TrainingJobDefinition": definition,
        "HyperParameterTuningJobStatus": job["status"],
        "SecondaryStatus": job["secondary_status"],
        "CreationTime": iso(job["created_at"]),
        "HyperParameterTuningEndTime": iso(job["training_end"]),
        "LastModifiedTime": iso(job["updated_at"]),
        "TrainingJobStatusCounters": counters,
        "ObjectiveStatusCounters": objective,
        "ConsumedResources": {"RuntimeInSeconds": int(runtime_seconds(store, job["name"]))},
    }
    if best:
        out["BestTrainingJob"] = {**_summary(best, cfg), "ModelArtifacts": {"S3ModelArtifacts": best["model_dir"]}}
    if cfg.warm_start_parents:
        out["WarmStartConfig"] = {"ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": p}
                                                                     for p in cfg.warm_start_parents],
                                  "WarmStartType": cfg.warm_start_type}
    if (job["spec"] or {}).get("end_reason"):
        out["HyperParameterTuningEndReason"] = job["spec"]["end_reason"]
    if job["failure_reason"]:
        out["FailureReason"] = job["failure_reason"]
    return {k: v for k, v in out.items() if v is not None}


def dataframe(job: dict[str, Any], store: JobStore) -> Any:
    """SageMaker's ``HyperparameterTuningJobAnalytics.dataframe()``: one row per trial — the tuned
    hyperparameters, TrainingJobName, TrainingJobStatus, FinalObjectiveValue, TrainingStartTime,
    TrainingEndTime, TrainingElapsedTimeSeconds."""
    import pandas as pd

    rows = []
    for r in trials(job, store):
        rows.append({**r["hyperparameters"], "TrainingJobName": r["job"], "TrainingJobStatus": r["status"],
                     "FinalObjectiveValue": r["objective"], "TrainingStartTime": iso(r["start"]),
                     "TrainingEndTime": iso(r["end"]), "TrainingElapsedTimeSeconds": r["seconds"]})
    return pd.DataFrame(rows)
