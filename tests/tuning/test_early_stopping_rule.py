"""SageMaker's median stopping rule (oculi.tuning.early_stopping.median_rule) on real Optuna trials."""

from __future__ import annotations

import optuna

from oculi.tuning.early_stopping import median_rule


def _trial(number: int, values: list[float]):
    t = optuna.trial.create_trial(value=values[-1], intermediate_values=dict(enumerate(values, 1)))
    t.number = number
    return t


def test_median_of_running_averages() -> None:
    others = [_trial(0, [0.5, 0.9]), _trial(1, [0.6, 0.8]), _trial(2, [0.2, 0.4]), _trial(3, [0.9])]
    # running averages at epoch 2: 0.7, 0.7, 0.3 → median 0.7; trial 3 has not reached epoch 2
    reason = median_rule(others, 9, 2, 0.65, maximize=True, min_trials=3)
    assert reason is not None and "median 0.7000 of 3 other trials" in reason
    assert median_rule(others, 9, 2, 0.75, maximize=True, min_trials=3) is None
    assert median_rule(others, 9, 2, 0.65, maximize=True, min_trials=4) is None  # too few reached epoch 2
    # minimising: worse is higher
    assert median_rule(others, 9, 2, 0.75, maximize=False, min_trials=3) is not None
    assert median_rule(others, 9, 2, 0.65, maximize=False, min_trials=3) is None


def test_a_trial_is_not_compared_with_itself() -> None:
    me = _trial(4, [0.1, 0.1])
    assert median_rule([me], 4, 2, 0.1, maximize=True, min_trials=1) is None
