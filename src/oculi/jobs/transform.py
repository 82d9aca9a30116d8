"""Batch transform jobs in the store: their record (``kind`` ``transform``), their place in the local queue and
their ``DescribeTransformJob``-shaped description. The transform itself lives in :mod:`oculi.batch`.

A transform job runs attached, in the process that asked for it (``oculi transform`` or
:func:`oculi.batch.transform`): ``InProgress/Pending`` while it waits for a queue slot (``OCULI_MAX_PARALLEL_JOBS``),
then ``Starting`` (model loading) → ``Transforming`` → ``Completed``, or ``Stopping`` → ``Stopped`` (Ctrl-C,
``oculi jobs stop``), or ``Failed``. A process that dies is found by the next ``oculi`` command and marked
``Failed`` like a training worker. Its counts (images done, skipped, failed) are kept in ``final_metrics`` and
updated while it runs."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oculi.jobs import status as S
from oculi.jobs.runner import create_named, max_parallel, process_token, queue_lock, reap
from oculi.jobs.store import JobStore, iso

KIND = "transform"


def create_transform_job(spec: dict[str, Any], algorithm: str, name: str | None = None,
                         store: JobStore | None = None) -> dict[str, Any]:
    """Record a new transform job (``InProgress/Pending``, owned by this process) and return its record.

    ``spec``: what was asked (``model``, ``input``, ``output``, ``accept``, ``assemble_with``, ``batch_size``,
    ``workers``, ``image_roots``), stored as given. ``name``: SageMaker's job-name rule; default
    ``<algorithm>-transform-YYYY-MM-DD-HH-MM-SS-mmm``. The log is ``$OCULI_HOME/jobs/<name>/logs/transform.log``."""
    store = store or JobStore()
    me = {"pid": os.getpid(), "host": socket.gethostname(), "process_token": process_token(os.getpid())}

    def record(job_name: str, folder: Path) -> dict[str, Any]:
        return {"name": job_name, "kind": KIND, "algorithm": algorithm, "spec": {**spec, "attached": True},
                "job_dir": str(folder), "model_dir": str(spec["model"]),
                "log_path": str(folder / "logs" / "transform.log"), **me}

    return create_named(store, name, f"{algorithm}-transform", record, "--job-name",
                        message="transform job created; waiting for a slot")


def wait_for_slot(name: str, store: JobStore, echo: Callable[[str], None] | None = None,
                  poll: float = 0.5) -> bool:
    """Move the transform job ``name`` from ``Pending`` to ``Starting`` once fewer than ``OCULI_MAX_PARALLEL_JOBS``
    jobs are active (saying once, through ``echo``, that it waits). Returns False when the job was stopped while
    it waited."""
    said = False
    while True:
        with queue_lock():
            reap(store)
            if store.claim(name, max_parallel(), "running attached"):
                return True
        if store.get(name)["secondary_status"] != S.PENDING:
            return False
        if not said and echo:
            echo(f"waiting for a free slot: {store.count_active()} job(s) running, OCULI_MAX_PARALLEL_JOBS="
                 f"{max_parallel()}")
            said = True
        time.sleep(poll)


def _seconds(start: float | None, end: float | None) -> int | None:
    return None if start is None or end is None else int(round(end - start))


def describe_transform(job: dict[str, Any], store: JobStore) -> dict[str, Any]:
    """DescribeTransformJob for ``job``: SageMaker's keys (times in ISO 8601 UTC; local paths where SageMaker has
    S3 URIs) plus an ``Oculi`` section (secondary status and its history, image counts, errors file, log, worker)."""
    spec = job["spec"]
    counts = job["final_metrics"] or {}
    transitions = store.transitions(job["name"])
    history = [{"Status": t["secondary_status"], "StartTime": iso(t["time"]),
                "EndTime": iso(transitions[i + 1]["time"]) if i + 1 < len(transitions) else None,
                "StatusMessage": t["message"]} for i, t in enumerate(transitions)]
    ended = job["secondary_status"] in S.TERMINAL
    end = job["training_end"] if ended else None
    described: dict[str, Any] = {
        "TransformJobName": job["name"],
        "TransformJobArn": f"arn:oculi:local:transform-job/{job['name']}",
        "TransformJobStatus": job["status"],
        "ModelName": job["model_dir"],
        "MaxConcurrentTransforms": spec.get("workers", 1),
        "BatchStrategy": "MultiRecord" if (spec.get("batch_size") or 1) > 1 else "SingleRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {
                "S3DataType": "AugmentedManifestFile" if spec.get("input_kind") == "manifest" else "S3Prefix",
                "S3Uri": spec.get("input")}},
            "ContentType": "application/x-image", "CompressionType": "None", "SplitType": "None"},
        "TransformOutput": {"S3OutputPath": spec.get("output"), "Accept": spec.get("accept"),
                            "AssembleWith": "Line" if spec.get("assemble_with") == "line" else "None"},
        "TransformResources": {"InstanceType": "local", "InstanceCount": 1},
        "CreationTime": iso(job["created_at"]),
        "TransformStartTime": iso(job["training_start"]),
        "TransformEndTime": iso(end),
        "LastModifiedTime": iso(job["updated_at"]),
        "TransformTimeInSeconds": _seconds(job["training_start"], end),
        "Oculi": {"SecondaryStatus": job["secondary_status"], "SecondaryStatusTransitions": history,
                  "Images": counts, "ErrorsPath": spec.get("errors_path"), "JobDir": job["job_dir"],
                  "LogPath": job["log_path"], "Pid": job["pid"], "Host": job["host"]},
    }
    if spec.get("image_roots"):
        described["Oculi"]["ImageRoots"] = spec["image_roots"]
    if job["failure_reason"]:
        described["FailureReason"] = job["failure_reason"]
    return described
