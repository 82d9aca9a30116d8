"""A tuning job's settings in SageMaker's ``HyperParameterTuningJobConfig`` shape: read from that JSON as it is
(``--config tuning.json``), or built from the CLI's options / the SDK's arguments, and stored with the job."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oculi.errors import ConfigError
from oculi.tuning.ranges import Parameter, ranges_from_sagemaker, to_json

STRATEGIES = {"bayesian": "Bayesian", "random": "Random", "grid": "Grid", "hyperband": "Hyperband"}
MAX_WARM_START_PARENTS = 5  # SageMaker's limit


@dataclass
class TuningConfig:
    """What to search and how. ``strategy``: bayesian (Optuna's TPE), random, grid (categorical ranges only) or
    hyperband (TPE + Optuna's Hyperband pruner over epochs). ``early_stopping``: ``Off`` or ``Auto`` (the median
    rule). Completion criteria: ``target_value`` (stop once the best objective reaches it), ``not_improving``
    (stop after that many trials without a better objective), ``convergence`` (stop when the last 5 finished
    trials each improved the best by less than 0.1 %). ``max_runtime``: ResourceLimits.MaxRuntimeInSeconds, the
    tuning job's wall-clock limit in seconds (it counts while the job is in progress, across resumes)."""

    objective: str
    ranges: dict[str, Parameter]
    objective_type: str = "Maximize"
    strategy: str = "bayesian"
    max_jobs: int | None = None
    max_parallel_jobs: int = 1
    max_runtime: int | None = None
    early_stopping: str = "Off"
    random_seed: int | None = None
    target_value: float | None = None
    not_improving: int | None = None
    convergence: bool = False
    hyperband_min_resource: int | None = None
    hyperband_max_resource: int | None = None
    warm_start_parents: list[str] = field(default_factory=list)
    warm_start_type: str = "IdenticalDataAndAlgorithm"
    early_stopping_min_trials: int = 3  # trials that must have reached an epoch before the median rule applies

    def check(self) -> TuningConfig:
        """Normalise spellings and check the settings on their own (ranges against the algorithm come later)."""
        s = self.strategy.strip().lower()
        if s not in STRATEGIES:
            raise ConfigError(f"--strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}.")
        self.strategy = s
        t = self.objective_type.strip().capitalize()
        if t not in ("Maximize", "Minimize"):
            raise ConfigError(f"--objective-type {self.objective_type!r}: use Maximize or Minimize.")
        self.objective_type = t
        e = self.early_stopping.strip().capitalize()
        if e not in ("Off", "Auto"):
            raise ConfigError(f"--early-stopping {self.early_stopping!r}: use auto or off.")
        self.early_stopping = e
        if not self.ranges:
            raise ConfigError("Nothing to tune: give at least one range, e.g. --range "
                              "learning_rate=continuous:0.0001:0.1:log.")
        if self.strategy == "hyperband" and e == "Auto":
            raise ConfigError("--strategy hyperband stops trials itself; use --early-stopping off with it "
                              "(SageMaker's rule too).")
        if self.strategy == "grid":
            bad = [n for n, p in self.ranges.items() if p.kind != "categorical"]
            if bad:
                raise ConfigError(f"--strategy grid takes categorical ranges only (SageMaker's rule); {', '.join(bad)} "
                                  "are not. E.g. --range mini_batch_size=categorical:8,16,32.")
        if self.max_jobs is not None and self.max_jobs < 1:
            raise ConfigError(f"--max-jobs {self.max_jobs}: expected at least 1.")
        if self.max_jobs is None and self.strategy != "grid":
            raise ConfigError("--max-jobs is required (the number of training jobs to run), e.g. --max-jobs 20; "
                              "only --strategy grid works it out (the number of combinations).")
        if self.max_parallel_jobs < 1:
            raise ConfigError(f"--max-parallel-jobs {self.max_parallel_jobs}: expected at least 1.")
        if self.max_runtime is not None and (isinstance(self.max_runtime, bool) or not isinstance(self.max_runtime, int)
                                             or self.max_runtime < 1):
            raise ConfigError(f"MaxRuntimeInSeconds (--max-runtime) got {self.max_runtime!r}; expected a whole number "
                              "of seconds ≥ 1, e.g. --max-runtime 3600.")
        if self.not_improving is not None and self.not_improving < 3:
            raise ConfigError("BestObjectiveNotImproving.MaxNumberOfTrainingJobsNotImproving must be at least 3.")
        if len(self.warm_start_parents) > MAX_WARM_START_PARENTS:
            raise ConfigError(f"--warm-start takes at most {MAX_WARM_START_PARENTS} parent tuning jobs "
                              f"(SageMaker's limit), got {len(self.warm_start_parents)}.")
        w = {"identical": "IdenticalDataAndAlgorithm", "transfer": "TransferLearning"}.get(
            self.warm_start_type.lower(), self.warm_start_type)
        if w not in ("IdenticalDataAndAlgorithm", "TransferLearning"):
            raise ConfigError(f"--warm-start-type {self.warm_start_type!r}: use identical or transfer.")
        self.warm_start_type = w
        if self.early_stopping_min_trials < 1:
            raise ConfigError("early_stopping_min_trials must be at least 1.")
        return self

    @property
    def direction(self) -> str:
        """Optuna's direction: ``maximize`` or ``minimize``."""
        return self.objective_type.lower()

    def to_sagemaker(self) -> dict[str, Any]:
        """``HyperParameterTuningJobConfig`` JSON (as DescribeHyperParameterTuningJob shows it)."""
        out: dict[str, Any] = {
            "Strategy": STRATEGIES[self.strategy],
            "HyperParameterTuningJobObjective": {"Type": self.objective_type, "MetricName": self.objective},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": self.max_jobs,
                               "MaxParallelTrainingJobs": self.max_parallel_jobs},
            "ParameterRanges": to_json(self.ranges),
            "TrainingJobEarlyStoppingType": self.early_stopping,
        }
        if self.max_runtime is not None:
            out["ResourceLimits"]["MaxRuntimeInSeconds"] = self.max_runtime
        if self.random_seed is not None:
            out["RandomSeed"] = self.random_seed
        criteria: dict[str, Any] = {}
        if self.target_value is not None:
            criteria["TargetObjectiveMetricValue"] = self.target_value
        if self.not_improving is not None:
            criteria["BestObjectiveNotImproving"] = {"MaxNumberOfTrainingJobsNotImproving": self.not_improving}
        if self.convergence:
            criteria["ConvergenceDetected"] = {"CompleteOnConvergence": "Enabled"}
        if criteria:
            out["TuningJobCompletionCriteria"] = criteria
        if self.strategy == "hyperband" and (self.hyperband_min_resource or self.hyperband_max_resource):
            out["StrategyConfig"] = {"HyperbandStrategyConfig": {
                k: v for k, v in (("MinResource", self.hyperband_min_resource),
                                  ("MaxResource", self.hyperband_max_resource)) if v is not None}}
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything, for the job record (:func:`from_record` reads it back)."""
        return {"config": self.to_sagemaker(), "warm_start": {"parents": self.warm_start_parents,
                                                              "type": self.warm_start_type},
                "early_stopping_min_trials": self.early_stopping_min_trials}

    @classmethod
    def from_record(cls, data: Mapping[str, Any]) -> TuningConfig:
        """The inverse of :meth:`to_json`."""
        cfg = from_sagemaker(data["config"], "the stored tuning job")
        cfg.warm_start_parents = list(data["warm_start"]["parents"])
        cfg.warm_start_type = data["warm_start"]["type"]
        cfg.early_stopping_min_trials = int(data.get("early_stopping_min_trials", 3))
        return cfg.check()


def _int(value: Any, what: str, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {what} must be an integer, got {value!r}.") from None


def from_sagemaker(data: Mapping[str, Any], where: str) -> TuningConfig:
    """A ``HyperParameterTuningJobConfig`` dict (or a whole CreateHyperParameterTuningJob request holding one, whose
    ``WarmStartConfig`` is read too) → TuningConfig. Unknown keys, a missing objective and bad values are
    ConfigErrors naming ``where`` (the file)."""
    warm = data.get("WarmStartConfig") if "HyperParameterTuningJobConfig" in data else None
    if "HyperParameterTuningJobConfig" in data:
        data = data["HyperParameterTuningJobConfig"]
    known = {"Strategy", "HyperParameterTuningJobObjective", "ResourceLimits", "ParameterRanges",
             "TrainingJobEarlyStoppingType", "TuningJobCompletionCriteria", "RandomSeed", "StrategyConfig"}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in HyperParameterTuningJobConfig; "
                          f"expected {', '.join(sorted(known))}.")
    objective = data.get("HyperParameterTuningJobObjective") or {}
    if not objective.get("MetricName"):
        raise ConfigError(f"{where}: HyperParameterTuningJobObjective.MetricName is required, e.g. "
                          "{\"Type\": \"Maximize\", \"MetricName\": \"validation:accuracy\"}.")
    for key, value, allowed in (("Strategy", data.get("Strategy", "Bayesian"), list(STRATEGIES.values())),
                                ("HyperParameterTuningJobObjective.Type", objective.get("Type", "Maximize"),
                                 ["Maximize", "Minimize"]),
                                ("TrainingJobEarlyStoppingType", data.get("TrainingJobEarlyStoppingType", "Off"),
                                 ["Off", "Auto"])):
        if str(value).lower() not in [a.lower() for a in allowed]:
            raise ConfigError(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}.")
    limits = data.get("ResourceLimits") or {}
    supported = {"MaxNumberOfTrainingJobs", "MaxParallelTrainingJobs", "MaxRuntimeInSeconds"}
    unsupported = sorted(set(limits) - supported)
    if unsupported:
        raise ConfigError(f"{where}: ResourceLimits {', '.join(unsupported)} is not supported; expected "
                          f"{', '.join(sorted(supported))} (a time limit per trial is -p max_runtime=SECONDS).")
    runtime = limits.get("MaxRuntimeInSeconds")
    if runtime is not None and (isinstance(runtime, bool) or not str(runtime).strip().isdigit()
                                or int(runtime) < 1):
        raise ConfigError(f"{where}: ResourceLimits.MaxRuntimeInSeconds must be a whole number of seconds ≥ 1 (the "
                          f"tuning job's wall-clock limit), got {runtime!r}; e.g. \"MaxRuntimeInSeconds\": 3600.")
    criteria = data.get("TuningJobCompletionCriteria") or {}
    hyperband = (data.get("StrategyConfig") or {}).get("HyperbandStrategyConfig") or {}
    cfg = TuningConfig(
        objective=str(objective["MetricName"]),
        objective_type=str(objective.get("Type", "Maximize")),
        ranges=ranges_from_sagemaker(data.get("ParameterRanges") or {}, where),
        strategy=str(data.get("Strategy", "Bayesian")),
        max_jobs=_int(limits["MaxNumberOfTrainingJobs"], "MaxNumberOfTrainingJobs", where)
        if limits.get("MaxNumberOfTrainingJobs") is not None else None,
        max_parallel_jobs=_int(limits.get("MaxParallelTrainingJobs", 1), "MaxParallelTrainingJobs", where),
        max_runtime=int(runtime) if runtime is not None else None,
        early_stopping=str(data.get("TrainingJobEarlyStoppingType", "Off")),
        random_seed=_int(data["RandomSeed"], "RandomSeed", where) if data.get("RandomSeed") is not None else None,
        target_value=float(criteria["TargetObjectiveMetricValue"])
        if criteria.get("TargetObjectiveMetricValue") is not None else None,
        not_improving=_int(criteria["BestObjectiveNotImproving"].get("MaxNumberOfTrainingJobsNotImproving"),
                           "MaxNumberOfTrainingJobsNotImproving", where)
        if criteria.get("BestObjectiveNotImproving") else None,
        convergence=(criteria.get("ConvergenceDetected") or {}).get("CompleteOnConvergence") == "Enabled",
        hyperband_min_resource=_int(hyperband["MinResource"], "MinResource", where)
        if "MinResource" in hyperband else None,
        hyperband_max_resource=_int(hyperband["MaxResource"], "MaxResource", where)
        if "MaxResource" in hyperband else None,
    )
    if warm:
        cfg.warm_start_parents = [str(p.get("HyperParameterTuningJobName"))
                                  for p in warm.get("ParentHyperParameterTuningJobs") or []]
        cfg.warm_start_type = str(warm.get("WarmStartType", "IdenticalDataAndAlgorithm"))
    return cfg


def load_config(path: Path) -> TuningConfig:
    """Read ``--config tuning.json`` (SageMaker's HyperParameterTuningJobConfig as is)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise ConfigError(f"Cannot read the tuning config {path}: {e.strerror}.") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: invalid JSON ({e.msg}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object (HyperParameterTuningJobConfig).")
    return from_sagemaker(data, str(path))
