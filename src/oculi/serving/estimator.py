"""A Python SDK shaped like the SageMaker Python SDK's ``Estimator``, over the local job runner::

    from oculi import Estimator
    est = Estimator("image-classification", hyperparameters={"epochs": 5})
    est.fit({"train": "data/train", "validation": "data/val"})   # streams the log; wait=False returns at once
    est.model_data                                                 # the model bundle folder
    Estimator.attach("image-classification-2026-…")               # re-attach to a job by name

``Estimator(entry_point="train.py", source_dir=…)`` is script mode. ``max_run=900`` is SageMaker's
``StoppingCondition.MaxRuntimeInSeconds`` (the ``max_runtime`` hyperparameter; unlike SageMaker's SDK there is no
one-day default: without it a job has no time limit). ``deploy()`` serves the trained model as a
local endpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from oculi.errors import ConfigError, JobError


class Estimator:
    """A training-job factory: ``fit`` submits a job to the local queue (the same as ``oculi train --detach``)."""

    def __init__(self, algorithm: str | None = None, hyperparameters: dict[str, Any] | None = None, *,
                 entry_point: str | None = None, source_dir: str | None = None,
                 metric_definitions: list[dict[str, str]] | None = None, output_path: str | None = None,
                 base_job_name: str | None = None, max_run: float | None = None) -> None:
        if algorithm is None and entry_point is None:
            raise ConfigError("Estimator needs an algorithm (e.g. Estimator(\"image-classification\")) or "
                              "entry_point=\"train.py\" for script mode.")
        self.algorithm, self.entry_point, self.source_dir = algorithm, entry_point, source_dir
        self.hyperparameters = dict(hyperparameters or {})
        if max_run is not None:
            if entry_point is not None:
                raise ConfigError("max_run applies to built-in algorithms; a script keeps its own time.")
            if self.hyperparameters.get("max_runtime") is not None:
                raise ConfigError(f"max_run={max_run:g} and hyperparameters max_runtime="
                                  f"{self.hyperparameters['max_runtime']} are the same setting; pass one.")
            self.hyperparameters["max_runtime"] = f"{float(max_run):g}"
        self.metric_definitions = metric_definitions
        self.output_path, self.base_job_name = output_path, base_job_name
        self.latest_training_job: str | None = None

    def _store(self) -> Any:
        from oculi.jobs.store import JobStore

        return JobStore()

    def fit(self, inputs: dict[str, Any] | str | None = None, wait: bool = True, logs: bool = True,
            job_name: str | None = None) -> None:
        """Submit a training job on ``inputs`` (channel → path, or one path = the train channel). With ``wait``,
        stream its log (``logs``) until it ends and raise :class:`JobError` if it failed."""
        from oculi.jobs.runner import JobSpec, dispatch, submit
        from oculi.jobs.store import generate_name

        channels = {"train": inputs} if isinstance(inputs, str | Path) else dict(inputs or {})
        name = job_name or (generate_name(self.base_job_name) if self.base_job_name else None)
        spec = JobSpec(algorithm=self.algorithm, channels={k: str(v) for k, v in channels.items()},
                       hyperparameters={k: v if isinstance(v, str) else str(v) for k, v in
                                        self.hyperparameters.items()},
                       name=name, output=self.output_path, entry_point=self.entry_point, source_dir=self.source_dir,
                       metric_definitions=self.metric_definitions)
        store = self._store()
        self.latest_training_job = submit(spec, store)["name"]
        dispatch(store)
        if wait:
            self.wait(logs=logs)

    def _name(self) -> str:
        if self.latest_training_job is None:
            raise JobError("This Estimator has no training job yet; call fit() first (or Estimator.attach(name)).")
        return self.latest_training_job

    def wait(self, logs: bool = True) -> dict[str, Any]:
        """Block until the job ends (streaming its log); raise JobError if it failed."""
        from oculi.jobs.runner import follow_log, wait

        store = self._store()
        name = self._name()
        if logs:
            follow_log(store.get(name), store, lambda s: (sys.stdout.write(s), sys.stdout.flush()), follow=True)
        job = wait(name, store)
        if job["secondary_status"] == "Failed":
            raise JobError(f"Training job {name} failed: {job['failure_reason']}")
        return job

    def describe(self) -> dict[str, Any]:
        """DescribeTrainingJob for the latest job."""
        from oculi.jobs.describe import describe

        store = self._store()
        return describe(store.get(self._name()), store)

    def stop(self) -> None:
        from oculi.jobs.runner import stop

        stop(self._name(), self._store())

    @property
    def model_data(self) -> Path:
        """The model bundle folder of the latest job (it must have completed or stopped)."""
        job = self._store().get(self._name())
        if job["status"] not in ("Completed", "Stopped"):  # Stopped/MaxRuntimeExceeded has its model too
            raise JobError(f"Training job {job['name']} is {job['status']}/{job['secondary_status']}; its model "
                           "is there once it has Completed (est.wait()).")
        return Path(job["model_dir"])

    @classmethod
    def attach(cls, training_job_name: str) -> Estimator:
        """An Estimator for an existing job (any status), e.g. one started from the CLI."""
        from oculi.jobs.runner import dispatch
        from oculi.jobs.store import JobStore

        store = JobStore()
        dispatch(store)
        job = store.get(training_job_name)
        spec = job["spec"]
        est = cls(spec.get("algorithm"), spec.get("hyperparameters"), entry_point=spec.get("entry_point"),
                  source_dir=spec.get("source_dir"), metric_definitions=spec.get("metric_definitions"),
                  output_path=spec.get("output"))
        est.latest_training_job = job["name"]
        return est

    def deploy(self, **kwargs: Any) -> Any:
        """Serve the trained model as a local endpoint (``oculi.serving.sdk.Model(model_data).deploy(**kwargs)``:
        ``port``, ``endpoint_name``, batching and capture settings) and return its
        :class:`~oculi.serving.sdk.EndpointPredictor`; stop it with ``delete_endpoint()`` or a ``with`` block."""
        from oculi.serving.sdk import Model

        return Model(self.model_data).deploy(**kwargs)
