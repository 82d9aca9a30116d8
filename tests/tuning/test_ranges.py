"""Tuning ranges and settings, without training: the CLI's --range forms, SageMaker's HyperParameterTuningJobConfig
JSON (each ScalingType), checks against the algorithm's hyperparameter model, and the samplers."""

from __future__ import annotations

import json
import math

import pytest

from oculi.errors import ConfigError
from oculi.tuning.config import TuningConfig, load_config
from oculi.tuning.ranges import (
    CategoricalParameter,
    ContinuousParameter,
    IntegerParameter,
    check_against,
    distribution,
    parse_range,
    value_of,
)

SAGEMAKER = {
    "Strategy": "Random",
    "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:loss"},
    "ResourceLimits": {"MaxNumberOfTrainingJobs": 7, "MaxParallelTrainingJobs": 2, "MaxRuntimeInSeconds": 7200},
    "ParameterRanges": {
        "ContinuousParameterRanges": [
            {"Name": "learning_rate", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Logarithmic"},
            {"Name": "momentum", "MinValue": "0.5", "MaxValue": "0.99", "ScalingType": "ReverseLogarithmic"},
            {"Name": "weight_decay", "MinValue": "0", "MaxValue": "0.01", "ScalingType": "Linear"},
            {"Name": "beta_1", "MinValue": "0.8", "MaxValue": "0.95", "ScalingType": "Auto"}],
        "IntegerParameterRanges": [{"Name": "mini_batch_size", "MinValue": "8", "MaxValue": "32"}],
        "CategoricalParameterRanges": [{"Name": "optimizer", "Values": ["sgd", "adam"]}]},
    "TrainingJobEarlyStoppingType": "Auto",
    "RandomSeed": 5,
    "TuningJobCompletionCriteria": {"TargetObjectiveMetricValue": 0.05,
                                    "BestObjectiveNotImproving": {"MaxNumberOfTrainingJobsNotImproving": 4},
                                    "ConvergenceDetected": {"CompleteOnConvergence": "Enabled"}},
}


def test_cli_range_forms() -> None:
    assert parse_range("learning_rate=continuous:0.0001:0.1:log") == (
        "learning_rate", ContinuousParameter(0.0001, 0.1, "Logarithmic"))
    assert parse_range("mini_batch_size=integer:8:32") == ("mini_batch_size", IntegerParameter(8, 32, "Auto"))
    assert parse_range("optimizer=categorical:sgd, adam") == ("optimizer", CategoricalParameter(["sgd", "adam"]))
    assert parse_range("momentum=continuous:0.5:0.99:reverse-log")[1].scaling_type == "ReverseLogarithmic"


@pytest.mark.parametrize("text, words", [
    ("learning_rate", "expected NAME=continuous"),
    ("learning_rate=uniform:0:1", "expected NAME=continuous"),
    ("learning_rate=continuous:0.1", "expected NAME=continuous"),
    ("learning_rate=continuous:a:b", "must be numbers"),
    ("mini_batch_size=integer:8.5:32", "must be integers"),
    ("learning_rate=continuous:0.1:0.01", "min < max"),
    ("learning_rate=continuous:0:0.1:log", "bounds > 0"),
    ("momentum=continuous:0.5:1:reverse-log", "0 ≤ min < max < 1"),
    ("learning_rate=continuous:0.001:0.1:cubic", "scaling 'cubic'"),
    ("optimizer=categorical:", "has no values"),
    ("optimizer=categorical:sgd,sgd", "repeats a value"),
])
def test_cli_range_errors_name_the_option(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_range(text)
    assert words in str(e.value) and "--range" in str(e.value)


def test_sagemaker_config_every_scaling_type_and_round_trip(tmp_path) -> None:
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps({"HyperParameterTuningJobConfig": SAGEMAKER, "WarmStartConfig": {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "parent-1"}],
        "WarmStartType": "TransferLearning"}}))
    cfg = load_config(path).check()
    assert (cfg.strategy, cfg.objective, cfg.objective_type, cfg.max_jobs, cfg.max_parallel_jobs,
            cfg.max_runtime) == ("random", "validation:loss", "Minimize", 7, 2, 7200)
    assert {n: getattr(p, "scaling_type", None) for n, p in cfg.ranges.items()} == {
        "learning_rate": "Logarithmic", "momentum": "ReverseLogarithmic", "weight_decay": "Linear",
        "beta_1": "Auto", "mini_batch_size": "Auto", "optimizer": None}
    assert (cfg.early_stopping, cfg.random_seed, cfg.target_value, cfg.not_improving, cfg.convergence) == (
        "Auto", 5, 0.05, 4, True)
    assert (cfg.warm_start_parents, cfg.warm_start_type) == (["parent-1"], "TransferLearning")
    again = TuningConfig.from_record(json.loads(json.dumps(cfg.to_json())))
    assert again.to_sagemaker() == cfg.to_sagemaker()
    assert again.to_sagemaker()["ResourceLimits"] == SAGEMAKER["ResourceLimits"]
    assert again.to_sagemaker()["ParameterRanges"]["ContinuousParameterRanges"][1] == (
        SAGEMAKER["ParameterRanges"]["ContinuousParameterRanges"][1])


@pytest.mark.parametrize("change, words", [
    ({"Strategy": "Annealing"}, "Strategy 'Annealing' is not one of Bayesian, Random, Grid, Hyperband"),
    ({"TrainingJobEarlyStoppingType": "Median"}, "TrainingJobEarlyStoppingType 'Median'"),
    ({"HyperParameterTuningJobObjective": {"Type": "Maximize"}}, "MetricName is required"),
    ({"ParameterRanges": {"ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "x",
                                                         "MaxValue": "1"}]}}, "must be numbers"),
    ({"ParameterRanges": {"FloatRanges": []}}, "unknown key(s) FloatRanges"),
    ({"ParameterRanges": {"IntegerParameterRanges": [{"Name": "epochs", "MinValue": "1", "MaxValue": "5",
                                                      "ScalingType": "ReverseLogarithmic"}]}},
     "continuous ranges only"),
    ({"MaxRuntime": 5}, "unknown key(s) MaxRuntime"),
    ({"ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxWaitTimeInSeconds": 60}},
     "ResourceLimits MaxWaitTimeInSeconds is not supported; expected MaxNumberOfTrainingJobs, "
     "MaxParallelTrainingJobs, MaxRuntimeInSeconds"),
    *[({"ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxRuntimeInSeconds": bad}},
       f"ResourceLimits.MaxRuntimeInSeconds must be a whole number of seconds ≥ 1 (the tuning job's wall-clock "
       f"limit), got {bad!r}") for bad in (0, -60, 1.5, "an hour", True)],
])
def test_sagemaker_config_errors_name_the_file(tmp_path, change: dict, words: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**SAGEMAKER, **change}))
    with pytest.raises(ConfigError) as e:
        load_config(path).check()
    assert words in str(e.value)
    assert str(path) in str(e.value)


def test_max_runtime_from_the_cli_and_the_sdk(tmp_path) -> None:
    from typer.testing import CliRunner

    import oculi
    from oculi.cli import app

    est = oculi.Estimator("image-classification", hyperparameters={"epochs": 1})
    ranges = {"learning_rate": oculi.ContinuousParameter(0.001, 0.1)}
    tuner = oculi.HyperparameterTuner(est, "validation:accuracy", ranges, max_jobs=2, max_runtime_in_seconds=300)
    assert tuner.config.to_sagemaker()["ResourceLimits"] == {
        "MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1, "MaxRuntimeInSeconds": 300}
    with pytest.raises(ConfigError, match=r"MaxRuntimeInSeconds \(--max-runtime\) got 0; expected a whole number"):
        oculi.HyperparameterTuner(est, "validation:accuracy", ranges, max_jobs=2, max_runtime_in_seconds=0)
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(SAGEMAKER))
    result = CliRunner().invoke(app, ["tune", "image-classification", "--train", str(tmp_path), "--config",
                                      str(path), "--max-runtime", "60"])
    assert "drop --max-runtime" in str(result.exception)
    result = CliRunner().invoke(app, ["tune", "image-classification", "--train", str(tmp_path), "--objective",
                                      "validation:accuracy", "--range", "learning_rate=continuous:0.001:0.1",
                                      "--max-jobs", "2", "--max-runtime", "-5"])
    assert "MaxRuntimeInSeconds (--max-runtime) got -5" in str(result.exception)


def test_ranges_checked_against_the_algorithm_before_any_trial() -> None:
    from oculi.algorithms import get_algorithm

    model = get_algorithm("image-classification").hyperparameters
    check_against(model, "image-classification", {"learning_rate": ContinuousParameter(1e-4, 0.1, "Logarithmic"),
                                                  "optimizer": CategoricalParameter(["sgd", "adam"])}, {})
    with pytest.raises(ConfigError) as e:
        check_against(model, "image-classification", {
            "learning_rate": ContinuousParameter(1e-4, 2.0),        # le=1
            "optimizer": CategoricalParameter(["sgd", "adamw"]),   # not a choice
            "learnin_rate": ContinuousParameter(0.1, 0.2),          # typo
            "epochs": IntegerParameter(1, 3)}, {"epochs": "5"})     # fixed and tuned
    text = str(e.value)
    assert "4 problems" in text
    assert "learning_rate=2.0 is outside its valid values" in text
    assert "optimizer=adamw" in text and "Did you mean learning_rate" in text
    assert "epochs is both fixed (-p epochs=5) and tuned" in text
    with pytest.raises(ConfigError, match="`mini_batch_size` got '0'"):  # a bad -p value is named as such
        check_against(model, "image-classification", {"learning_rate": ContinuousParameter(0.01, 0.1)},
                      {"mini_batch_size": "0"})


def test_grid_takes_categorical_ranges_and_hyperband_no_auto() -> None:
    with pytest.raises(ConfigError, match="categorical ranges only"):
        TuningConfig("validation:accuracy", {"learning_rate": ContinuousParameter(0.1, 0.2)}, strategy="grid").check()
    with pytest.raises(ConfigError, match="--early-stopping off"):
        TuningConfig("validation:accuracy", {"optimizer": CategoricalParameter(["sgd"])}, strategy="hyperband",
                     max_jobs=3, early_stopping="auto").check()
    with pytest.raises(ConfigError, match="--max-jobs is required"):
        TuningConfig("validation:accuracy", {"optimizer": CategoricalParameter(["sgd"])}).check()


def test_scaled_values_stay_in_range() -> None:
    p = ContinuousParameter(0.5, 0.99, "ReverseLogarithmic")
    dist = distribution(p)
    assert dist.log and math.isclose(dist.low, 0.01) and math.isclose(dist.high, 0.5)
    assert [float(value_of(p, x)) for x in (dist.low, dist.high)] == [0.99, 0.5]
    assert value_of(IntegerParameter(8, 32, "Logarithmic"), 15.0) == "15"


def test_random_search_with_a_seed_is_reproducible() -> None:
    import optuna

    from oculi.tuning.study import distributions, sampler

    cfg = TuningConfig("validation:accuracy", {"learning_rate": ContinuousParameter(1e-4, 0.1, "Logarithmic"),
                                               "optimizer": CategoricalParameter(["sgd", "adam", "nag"])},
                       strategy="random", max_jobs=5, random_seed=11).check()

    def draws(seed_cfg: TuningConfig) -> list[dict]:
        study = optuna.create_study(sampler=sampler(seed_cfg), direction="maximize")
        return [study.ask(distributions(seed_cfg)).params for _ in range(5)]

    first = draws(cfg)
    assert first == draws(cfg)
    assert len({round(d["learning_rate"], 12) for d in first}) == 5
    cfg.random_seed = 12
    assert draws(cfg) != first
