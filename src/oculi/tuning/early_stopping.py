"""Early stopping of tuning trials: a small Lightning callback of oculi's own, built inside each trial's training
process (a :class:`~oculi.engine.callbacks.CallbackFactory` named in the trial's job spec).

After every validation it reports the objective as the trial's intermediate value (step = epoch) to the study,
then asks whether to stop:

* ``median`` (``--early-stopping auto``), SageMaker's rule: compute, for every other trial that reached this
  epoch, the running average of its objective up to this epoch; if this trial's objective is worse than the
  median of those averages, stop it. Applies once ``min_trials`` other trials reached the epoch, never at the
  last epoch.
* ``hyperband``: Optuna's Hyperband pruner decides (``--strategy hyperband``).

A stop moves the trial's job to ``Stopping`` with the reason (``early stopping: …``) and ends training at the
epoch boundary; the job ends ``Stopped`` with its best epoch's model, and the tuner records the trial as
stopped early.
"""

from __future__ import annotations

import statistics
from typing import Any

import lightning as L

EARLY_STOP = "early stopping"


def median_rule(trials: list[Any], number: int, epoch: int, value: float, maximize: bool,
                min_trials: int) -> str | None:
    """SageMaker's median stopping rule for trial ``number`` whose objective at ``epoch`` is ``value``:
    ``trials`` are Optuna FrozenTrials with intermediate values keyed by epoch. Returns the reason to stop, or
    None."""
    averages = []
    for t in trials:
        if t.number == number:
            continue
        upto = [v for step, v in t.intermediate_values.items() if step <= epoch]
        if epoch in t.intermediate_values and upto:
            averages.append(sum(upto) / len(upto))
    if len(averages) < min_trials:
        return None
    median = statistics.median(averages)
    worse = value < median if maximize else value > median
    if not worse:
        return None
    return (f"objective {value:.4f} at epoch {epoch} is {'below' if maximize else 'above'} the median {median:.4f} "
            f"of {len(averages)} other trials' running averages (median rule)")


class TrialReporter(L.Callback):
    """Reports the objective per epoch to the study and stops the trial by ``rule`` (``median``, ``hyperband``
    or ``none``)."""

    def __init__(self, study: Any, trial_id: int, number: int, job: str, objective: str, maximize: bool,
                 rule: str, min_trials: int) -> None:
        self.study, self.trial_id, self.number, self.job = study, trial_id, number, job
        self.objective, self.maximize, self.rule, self.min_trials = objective, maximize, rule, min_trials

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.should_stop:
            return
        raw = trainer.callback_metrics.get(self.objective)
        if raw is None:
            return
        value = float(raw.item() if hasattr(raw, "item") else raw)
        if value != value:  # NaN: nothing to compare
            return
        epoch = trainer.current_epoch + 1
        self.study._storage.set_trial_intermediate_value(self.trial_id, epoch, value)
        if trainer.max_epochs is not None and epoch >= trainer.max_epochs:
            return
        reason = None
        if self.rule == "median":
            reason = median_rule(self.study.get_trials(deepcopy=False), self.number, epoch, value, self.maximize,
                                 self.min_trials)
        elif self.rule == "hyperband":
            import optuna

            if optuna.trial.Trial(self.study, self.trial_id).should_prune():
                reason = f"Hyperband stopped it at epoch {epoch} (objective {value:.4f})"
        if reason:
            self._stop(trainer, reason)

    def _stop(self, trainer: L.Trainer, reason: str) -> None:
        import contextlib

        from oculi.errors import JobError
        from oculi.jobs import status as S
        from oculi.jobs.store import JobStore

        store = JobStore()
        with contextlib.suppress(JobError):  # already stopping (a stop request came first)
            store.transition(self.job, S.STOPPING, f"{EARLY_STOP}: {reason}", expect=S.TRAINING)
        store.dispose()
        trainer.should_stop = True


def callbacks(tuning_job: str, storage_kind: str, job_dir: str, trial_number: int, job: str, objective: str,
              maximize: bool, rule: str, min_trials: int) -> list[L.Callback]:
    """The trial's callbacks (called by :class:`~oculi.engine.callbacks.CallbackFactory` in the training process;
    only rank 0 of a distributed run reports)."""
    import os

    import optuna

    from oculi.tuning.study import quiet, storage

    if os.environ.get("RANK", "0") != "0":
        return []
    quiet()
    study = optuna.load_study(study_name=tuning_job, storage=storage(storage_kind, job_dir))
    if rule == "hyperband":
        from oculi.tuning.config import TuningConfig
        from oculi.tuning.study import pruner

        cfg = TuningConfig.from_record(_tuning_record(tuning_job))
        study.pruner = pruner(cfg, None if cfg.hyperband_max_resource else _trial_epochs(job))
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_number)
    return [TrialReporter(study, trial_id, trial_number, job, objective, maximize, rule, min_trials)]


def _tuning_record(name: str) -> dict[str, Any]:
    from oculi.jobs.store import JobStore

    return JobStore().get(name)["spec"]["tuning"]


def _trial_epochs(job: str) -> int | None:
    from oculi.jobs.store import JobStore
    from oculi.tuning.study import fixed_epochs

    return fixed_epochs(JobStore().get(job)["spec"]["hyperparameters"])
