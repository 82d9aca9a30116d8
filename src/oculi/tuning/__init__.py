"""Hyperparameter tuning with SageMaker's tuner API over Optuna; every trial is an ordinary training job
(:mod:`oculi.tuning.tuner`). Ranges: :mod:`oculi.tuning.ranges`; settings: :mod:`oculi.tuning.config`; the
SDK class: :class:`oculi.tuning.sdk.HyperparameterTuner`."""

from oculi.tuning.ranges import CategoricalParameter, ContinuousParameter, IntegerParameter

__all__ = ["CategoricalParameter", "ContinuousParameter", "IntegerParameter"]
