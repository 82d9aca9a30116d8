"""Job records in the shape of SageMaker's ``DescribeTrainingJob`` (or ``DescribeTransformJob``) response, and
metric tables."""

from __future__ import annotations

from typing import Any

from oculi.jobs.store import JobStore, iso


def _seconds(start: float | None, end: float | None) -> int | None:
    return None if start is None or end is None else int(round(end - start))


def describe(job: dict[str, Any], store: JobStore) -> dict[str, Any]:
    """DescribeTrainingJob for ``job`` (DescribeTransformJob for a transform job): SageMaker's keys (times in
    ISO 8601 UTC; local paths where SageMaker has S3 URIs) plus an ``Oculi`` section (log, worker, checkpoint,
    attempts)."""
    if job.get("kind") == "transform":
        from oculi.jobs.transform import describe_transform

        return describe_transform(job, store)
    spec = job["spec"]
    transitions = store.transitions(job["name"])
    history = []
    for i, t in enumerate(transitions):
        end = transitions[i + 1]["time"] if i + 1 < len(transitions) else None
        history.append({"Status": t["secondary_status"], "StartTime": iso(t["time"]), "EndTime": iso(end),
                        "StatusMessage": t["message"]})
    hp = job["hyperparameters"] or spec.get("hyperparameters") or {}
    final = job["final_metrics"] or latest_metrics(store.metrics(job["name"]))
    metric_time = iso(job["training_end"] or job["updated_at"])
    algorithm: dict[str, Any] = {"TrainingInputMode": "File", "EnableSageMakerMetricsTimeSeries": True}
    output_path = f"{job['job_dir']}/output"
    if spec.get("entry_point"):
        algorithm.update(TrainingImage="oculi-script-mode", MetricDefinitions=spec.get("metric_definitions") or [])
        hp = {**hp, "sagemaker_program": spec["entry_point"], "sagemaker_submit_directory": spec.get("source_dir")}
        output_path = f"{spec.get('output') or job['job_dir']}/output"  # SM_OUTPUT_DIR
    else:
        algorithm["AlgorithmName"] = job["algorithm"]
    distributed = spec.get("distributed") or {}
    instances = int(distributed.get("nodes") or 0) or int((job["hyperparameters"] or {}).get("instance_count")
                                                           or spec.get("hyperparameters", {}).get("instance_count")
                                                           or 1)
    training_end = job["training_end"] if job["status"] in ("Completed", "Failed", "Stopped") else None
    described = {
        "TrainingJobName": job["name"],
        "TrainingJobArn": f"arn:oculi:local:training-job/{job['name']}",
        "AlgorithmSpecification": algorithm,
        "HyperParameters": {k: v if isinstance(v, str) else _string(v) for k, v in hp.items() if v is not None},
        "InputDataConfig": [
            {"ChannelName": name, "DataSource": {"FileSystemDataSource": {
                "FileSystemType": "local", "DirectoryPath": path, "FileSystemAccessMode": "ro"}},
             "InputMode": "File"}
            for name, path in spec.get("channels", {}).items()
        ],
        "OutputDataConfig": {"S3OutputPath": output_path},
        "ModelArtifacts": {"S3ModelArtifacts": job["model_dir"]},
        "CheckpointConfig": {"LocalPath": f"{job['job_dir']}/checkpoints"},
        "ResourceConfig": {"InstanceType": "local", "InstanceCount": instances},
        "TrainingJobStatus": job["status"],
        "SecondaryStatus": job["secondary_status"],
        "CreationTime": iso(job["created_at"]),
        "TrainingStartTime": iso(job["training_start"]),
        "TrainingEndTime": iso(training_end),
        "LastModifiedTime": iso(job["updated_at"]),
        "TrainingTimeInSeconds": _seconds(job["training_start"], training_end),
        "BillableTimeInSeconds": _seconds(job["training_start"], training_end),
        "SecondaryStatusTransitions": history,
        "FinalMetricDataList": [{"MetricName": k, "Value": v, "Timestamp": metric_time} for k, v in final.items()],
        "Oculi": {"JobDir": job["job_dir"], "LogPath": job["log_path"], "Pid": job["pid"], "Host": job["host"],
                  "Checkpoint": job["checkpoint"], "Attempts": job["attempts"],
                  **({"Distributed": distributed} if distributed else {})},
    }
    max_runtime = hp.get("max_runtime")
    if max_runtime not in (None, "", "None"):
        described["StoppingCondition"] = {"MaxRuntimeInSeconds": int(float(max_runtime))}
    if job["failure_reason"]:
        described["FailureReason"] = job["failure_reason"]
    return described


def _string(v: Any) -> str:
    import json

    if isinstance(v, list):  # SageMaker's string forms: "3,224,224", "10,20"
        return ",".join(map(str, v))
    return json.dumps(v) if isinstance(v, dict) else str(v).lower() if isinstance(v, bool) else str(v)


def latest_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The last value of each metric in a metrics time series."""
    out: dict[str, float] = {}
    for r in rows:
        out[r["name"]] = r["value"]
    return out


def metric_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Metric rows → (metric names, one dict per epoch ``{"epoch", "step", name: value …}``). Rows without an
    epoch (a script's regex metrics) are grouped by ``step``, the value's index in its series."""
    names: list[str] = []
    by_epoch: dict[Any, dict[str, Any]] = {}
    for r in rows:
        if r["name"] not in names:
            names.append(r["name"])
        key = r["epoch"] if r["epoch"] is not None else ("step", r["step"])
        row = by_epoch.setdefault(key, {"epoch": r["epoch"], "step": r["step"]})
        row[r["name"]] = r["value"]
        row["step"] = r["step"]
    return sorted(names), list(by_epoch.values())


def plot_metrics(rows: list[dict[str, Any]], out: Any, title: str) -> None:
    """Draw every metric against the epoch (losses and the rest on two panels) into ``out`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, table = metric_table(rows)
    losses = [n for n in names if "loss" in n]
    others = [n for n in names if n not in losses]
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=False):
        by_epoch = all(r["epoch"] is not None for r in table)
        for n in panel:
            xs = [r["epoch"] if by_epoch else r["step"] + 1 for r in table if n in r]
            ax.plot(xs, [r[n] for r in table if n in r], marker="o", label=n)
        ax.set_xlabel("epoch" if by_epoch else "value number (in output order)")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
