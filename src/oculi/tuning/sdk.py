"""``HyperparameterTuner``, shaped like the SageMaker Python SDK's, over oculi's tuning jobs::

    from oculi import Estimator, HyperparameterTuner, ContinuousParameter, CategoricalParameter
    est = Estimator("image-classification", hyperparameters={"epochs": 10})
    tuner = HyperparameterTuner(est, "validation:accuracy",
                                {"learning_rate": ContinuousParameter(1e-4, 0.1, scaling_type="Logarithmic"),
                                 "optimizer": CategoricalParameter(["sgd", "adam"])},
                                max_jobs=12, max_parallel_jobs=2, early_stopping_type="Auto")
    tuner.fit({"train": "data/train", "validation": "data/val"})
    tuner.best_training_job()            # the name of the best trial's training job
    tuner.analytics().dataframe()        # one row per trial
    predictor = tuner.deploy()           # serve the best model as a local endpoint
    HyperparameterTuner.attach("tune-2026-…")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oculi.errors import JobError
from oculi.tuning.ranges import CategoricalParameter, ContinuousParameter, IntegerParameter

__all__ = ["CategoricalParameter", "ContinuousParameter", "HyperparameterTuner", "IntegerParameter"]


class HyperparameterTunerAnalytics:
    """SageMaker's ``HyperparameterTuningJobAnalytics``: ``dataframe()`` of the trials."""

    def __init__(self, tuning_job_name: str) -> None:
        self.name = tuning_job_name

    def dataframe(self) -> Any:
        """A pandas DataFrame, one row per trial (tuned values, TrainingJobName, TrainingJobStatus,
        FinalObjectiveValue, TrainingStartTime, TrainingEndTime, TrainingElapsedTimeSeconds)."""
        from oculi.jobs.store import JobStore
        from oculi.tuning.report import dataframe

        store = JobStore()
        return dataframe(store.get(self.name), store)


class HyperparameterTuner:
    """Tune an :class:`~oculi.Estimator`'s hyperparameters (SageMaker SDK's ``HyperparameterTuner``): ``fit``
    runs a tuning job whose trials are training jobs built from the estimator. ``max_runtime_in_seconds`` is the
    tuning job's wall-clock limit (ResourceLimits.MaxRuntimeInSeconds), as in the SageMaker SDK."""

    def __init__(self, estimator: Any, objective_metric_name: str, hyperparameter_ranges: dict[str, Any], *,
                 metric_definitions: list[dict[str, str]] | None = None, strategy: str = "Bayesian",
                 objective_type: str = "Maximize", max_jobs: int | None = None, max_parallel_jobs: int = 1,
                 max_runtime_in_seconds: int | None = None, early_stopping_type: str = "Off",
                 random_seed: int | None = None, base_tuning_job_name: str | None = None,
                 warm_start_config: dict[str, Any] | None = None,
                 completion_criteria_config: dict[str, Any] | None = None) -> None:
        from oculi.tuning.config import TuningConfig

        self.estimator = estimator
        self.base_tuning_job_name = base_tuning_job_name
        self.metric_definitions = metric_definitions or getattr(estimator, "metric_definitions", None)
        criteria = completion_criteria_config or {}
        warm = warm_start_config or {}
        self.config = TuningConfig(
            objective=objective_metric_name, ranges=dict(hyperparameter_ranges), objective_type=objective_type,
            strategy=strategy, max_jobs=max_jobs, max_parallel_jobs=max_parallel_jobs,
            max_runtime=max_runtime_in_seconds, early_stopping=early_stopping_type, random_seed=random_seed,
            target_value=criteria.get("TargetObjectiveMetricValue"),
            not_improving=(criteria.get("BestObjectiveNotImproving") or {}).get(
                "MaxNumberOfTrainingJobsNotImproving"),
            convergence=(criteria.get("ConvergenceDetected") or {}).get("CompleteOnConvergence") == "Enabled",
            warm_start_parents=list(warm.get("parents") or []),
            warm_start_type=warm.get("type", "IdenticalDataAndAlgorithm")).check()
        self.latest_tuning_job: str | None = None

    def fit(self, inputs: dict[str, Any] | str | None = None, job_name: str | None = None,
            wait: bool = True) -> None:
        """Create the tuning job on ``inputs`` (channel → path, or one path = train) and run it: in this process
        with ``wait`` (one line per trial is printed), else in a background process."""
        from oculi.jobs.runner import JobSpec
        from oculi.jobs.store import generate_name
        from oculi.tuning import tuner

        est = self.estimator
        channels = {"train": inputs} if isinstance(inputs, str | Path) else dict(inputs or {})
        training = JobSpec(algorithm=est.algorithm, channels={k: str(v) for k, v in channels.items()},
                           hyperparameters={k: v if isinstance(v, str) else str(v)
                                            for k, v in est.hyperparameters.items()},
                           entry_point=est.entry_point, source_dir=est.source_dir,
                           metric_definitions=self.metric_definitions)
        name = job_name or (generate_name(self.base_tuning_job_name)[:32].rstrip("-")
                            if self.base_tuning_job_name else None)
        job = tuner.create(self.config, training, name)
        self.latest_tuning_job = job["name"]
        if wait:
            tuner.run(job["name"], echo=print)
        else:
            tuner.start_detached(job["name"])

    def _name(self) -> str:
        if self.latest_tuning_job is None:
            raise JobError("This tuner has no tuning job yet; call fit() first (or HyperparameterTuner.attach(name)).")
        return self.latest_tuning_job

    def wait(self, poll: float = 1.0) -> dict[str, Any]:
        """Block until the tuning job ends; returns its record."""
        from oculi.jobs.runner import wait

        return wait(self._name(), poll=poll)

    def describe(self) -> dict[str, Any]:
        """DescribeHyperParameterTuningJob of the latest tuning job."""
        from oculi.jobs.store import JobStore
        from oculi.tuning.report import describe

        store = JobStore()
        return describe(store.get(self._name()), store)

    def best_training_job(self) -> str:
        """The name of the training job with the best objective so far (a JobError if none reported one)."""
        best = self.describe().get("BestTrainingJob")
        if best is None:
            raise JobError(f"Tuning job {self._name()} has no trial with an objective value yet.")
        return best["TrainingJobName"]

    def best_estimator(self) -> Any:
        """An Estimator attached to the best training job."""
        from oculi.serving.estimator import Estimator

        return Estimator.attach(self.best_training_job())

    def analytics(self) -> HyperparameterTunerAnalytics:
        """The trials as a table: ``tuner.analytics().dataframe()``."""
        return HyperparameterTunerAnalytics(self._name())

    def stop_tuning_job(self) -> None:
        """Stop the tuning job: running trials checkpoint and stop; ``oculi jobs resume`` continues it."""
        from oculi.jobs.runner import stop

        stop(self._name())

    def deploy(self, **kwargs: Any) -> Any:
        """Serve the best trial's model as a local endpoint (as ``Estimator.deploy``); returns its predictor."""
        return self.best_estimator().deploy(**kwargs)

    @classmethod
    def attach(cls, tuning_job_name: str) -> HyperparameterTuner:
        """A tuner for an existing tuning job (e.g. one started with `oculi tune`)."""
        from oculi.jobs.store import JobStore
        from oculi.serving.estimator import Estimator
        from oculi.tuning.config import TuningConfig

        job = JobStore().get(tuning_job_name)
        if job.get("kind") != "tuning":
            raise JobError(f"{tuning_job_name} is not a tuning job (it is a {job.get('kind')} job).")
        training = job["spec"]["training"]
        est = Estimator(training.get("algorithm"), training.get("hyperparameters"),
                        entry_point=training.get("entry_point"), source_dir=training.get("source_dir"),
                        metric_definitions=training.get("metric_definitions"))
        cfg = TuningConfig.from_record(job["spec"]["tuning"])
        tuner = cls(est, cfg.objective, cfg.ranges, strategy=cfg.strategy, objective_type=cfg.objective_type,
                    max_jobs=cfg.max_jobs, max_parallel_jobs=cfg.max_parallel_jobs,
                    max_runtime_in_seconds=cfg.max_runtime, early_stopping_type=cfg.early_stopping,
                    random_seed=cfg.random_seed)
        tuner.config = cfg
        tuner.latest_tuning_job = tuning_job_name
        return tuner
