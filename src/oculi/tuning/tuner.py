"""Hyperparameter tuning jobs: a study (Optuna) whose every trial is an ordinary oculi training job.

A tuning job is a job record of ``kind`` ``tuning`` (``Pending → Starting → Tuning → Completed``; ``oculi jobs
list|describe|stop|resume`` cover it). Its process — ``oculi tune`` in the foreground, or ``python -m oculi.tuning
NAME`` with ``--detach`` — loops: it reconciles the study with the store, asks the sampler for new trials while
fewer than ``max_parallel_jobs`` of its trials are unfinished, submits each as a detached training job named
``<tuning job>-NNN`` (tagged ``TuningJob``/``TrialNumber``) to the local queue, and records each finished job's
objective in the study. ``OCULI_MAX_PARALLEL_JOBS`` still caps how many jobs train at once (the rest wait queued).

Nothing is lost: the trials are separate processes that outlive a killed tuner; the study and the store are both
on disk, so ``oculi jobs resume NAME`` reconciles them again — finished jobs are recorded, running ones are
waited for, a trial asked for but not yet submitted is submitted, a job whose worker died is resumed from its
checkpoint (or run again once, recorded as such), and trial numbers past ``max_jobs`` are never submitted.
Other processes (``oculi tune worker NAME``, on other machines with PostgreSQL) run the same loop on the same
study; the store's unique job names make sure no trial is submitted twice.

``MaxRuntimeInSeconds`` (``--max-runtime``) limits the tuning job's wall clock: once it has been in progress that
long (:func:`oculi.tuning.report.runtime_seconds`: from its first start, across resumes, not counting the time it
waited Stopped or Failed) no trial is submitted, the running ones are stopped as ``oculi jobs stop`` stops them
(each ends Stopped with its checkpoint) and the job ends with the end reason ``MaxRuntimeExceeded``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError

from oculi.errors import ConfigError, JobError
from oculi.jobs import runner
from oculi.jobs import status as S
from oculi.jobs.store import JobStore
from oculi.processes import start_background
from oculi.tuning import study as studies
from oculi.tuning.config import TuningConfig
from oculi.tuning.early_stopping import EARLY_STOP
from oculi.tuning.ranges import check_against, value_of
from oculi.tuning.report import runtime_seconds

MAX_NAME = 32  # SageMaker's HyperParameterTuningJobName limit (trial jobs append -NNN)
POLL_SECONDS = 1.0
CONVERGENCE_WINDOW, CONVERGENCE_TOLERANCE = 5, 1e-3
STALE_ASK_SECONDS = 120  # a trial still without all its values after this long was asked by a tuner that died
Echo = Callable[[str], None]


# ---- creating --------------------------------------------------------------------------------------------------
def check(cfg: TuningConfig, training: runner.JobSpec) -> None:
    """Check the tuning settings and the ranges against the algorithm's hyperparameter model (with the static
    hyperparameters), before anything is recorded. Script mode: names are free (the script reads them)."""
    cfg.check()
    if training.algorithm:
        from oculi.algorithms import get_algorithm

        algorithm = get_algorithm(training.algorithm)
        check_against(algorithm.hyperparameters, training.algorithm, cfg.ranges, training.hyperparameters)
    elif not training.metric_definitions:
        raise ConfigError("Tuning a script needs the objective among its metric definitions: pass "
                          f"--metric-definition '{cfg.objective}=REGEX'.")
    elif cfg.objective not in [str(d).partition("=")[0] if isinstance(d, str) else d.get("Name")
                               for d in training.metric_definitions]:
        raise ConfigError(f"The objective {cfg.objective} is not one of the script's metric definitions; add "
                          f"--metric-definition '{cfg.objective}=REGEX'.")
    if training.entry_point and (cfg.early_stopping == "Auto" or cfg.strategy == "hyperband"):
        raise ConfigError("Early stopping and Hyperband need per-epoch reports from a built-in algorithm; tune a "
                          "script with --early-stopping off and another strategy.")
    if training.algorithm and cfg.strategy == "hyperband":
        studies.pruner(cfg, studies.fixed_epochs(training.hyperparameters))


def create(cfg: TuningConfig, training: runner.JobSpec, name: str | None = None,
           store: JobStore | None = None) -> dict[str, Any]:
    """Check everything (the training template through :func:`oculi.jobs.runner.submit`'s own checks on the
    first trial's values), record the tuning job (``Pending``) and create its study (with the warm-start
    parents' trials). Returns the record."""
    import optuna

    store = store or JobStore()
    check(cfg, training)
    if cfg.strategy == "grid":
        combos = 1
        for p in cfg.ranges.values():
            combos *= len(p.values)
        cfg.max_jobs = min(cfg.max_jobs or combos, combos)
    if name is not None and len(name) > MAX_NAME:
        raise JobError(f"Tuning job name {name!r} is {len(name)} characters; SageMaker allows {MAX_NAME} (trial "
                       "jobs add -NNN). Pass a shorter --name.")
    first = {n: value_of(p, _first_value(p)) for n, p in cfg.ranges.items()}
    probe = runner.JobSpec(**{**asdict(training), "hyperparameters": {**training.hyperparameters, **first}})
    runner.check(probe)
    training.channels = {k: str(Path(v).expanduser().resolve()) for k, v in training.channels.items()}
    parents = _warm_start_trials(cfg, training, store)
    kind = studies.storage_kind()

    def record(job_name: str, folder: Path) -> dict[str, Any]:
        return {"name": job_name, "kind": "tuning", "algorithm": training.algorithm or "script",
                "spec": {"attached": True, "tuning": cfg.to_json(), "training": asdict(training),
                         "storage": kind, "warm_trials": len(parents)},
                "job_dir": str(folder), "model_dir": "", "log_path": str(folder / "logs" / "tune.log"), "host": None}

    job = runner.create_named(store, name, "tune", record, "--name", message="tuning job created")
    Path(job["job_dir"]).mkdir(parents=True, exist_ok=True)
    studies.quiet()
    study = optuna.create_study(study_name=job["name"], storage=studies.storage(kind, job["job_dir"], create=True),
                                direction=cfg.direction, load_if_exists=True)
    for trial in parents:
        study.add_trial(trial)
    return job


def _first_value(p: Any) -> Any:
    return p.values[0] if p.kind == "categorical" else (p.min_value if p.scaling_type != "ReverseLogarithmic"
                                                        else 1 - p.max_value)


def _warm_start_trials(cfg: TuningConfig, training: runner.JobSpec, store: JobStore) -> list[Any]:
    """The parents' finished trials as new FrozenTrials of this study's search space (SageMaker's warm start).
    Identical: same algorithm, data, static hyperparameters and ranges required. Transfer: any parent; its trials
    whose values lie in this job's ranges are kept."""
    import optuna

    out = []
    dists = studies.distributions(cfg)
    for parent in cfg.warm_start_parents:
        job = store.get(parent)
        if job.get("kind") != "tuning":
            raise ConfigError(f"--warm-start {parent}: not a tuning job (it is a {job.get('kind')} job).")
        pcfg = TuningConfig.from_record(job["spec"]["tuning"])
        ptrain = job["spec"]["training"]
        if cfg.warm_start_type == "IdenticalDataAndAlgorithm":
            same = (ptrain["algorithm"] == training.algorithm and ptrain["channels"] == training.channels
                    and ptrain["hyperparameters"] == training.hyperparameters
                    and pcfg.to_sagemaker()["ParameterRanges"] == cfg.to_sagemaker()["ParameterRanges"])
            if not same:
                raise ConfigError(f"--warm-start {parent} --warm-start-type identical needs the same algorithm, data, "
                                  "static hyperparameters and ranges; use --warm-start-type transfer.")
        if pcfg.objective != cfg.objective:
            raise ConfigError(f"--warm-start {parent}: it tuned {pcfg.objective}, this job tunes {cfg.objective}.")
        pstudy = optuna.load_study(study_name=parent, storage=studies.storage(job["spec"]["storage"], job["job_dir"]))
        for t in pstudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t.user_attrs.get("warm_start_parent") or set(t.params) != set(dists):
                continue
            if not all(dists[k]._contains(dists[k].to_internal_repr(v)) for k, v in t.params.items()):
                continue
            out.append(optuna.trial.create_trial(
                params=dict(t.params), distributions=dists, value=t.value,
                intermediate_values=dict(t.intermediate_values),
                user_attrs={"warm_start_parent": parent, "job": t.user_attrs.get("job")}))
    return out


# ---- running ---------------------------------------------------------------------------------------------------
def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "process_token": runner.process_token(os.getpid())}


def start_detached(name: str, store: JobStore | None = None) -> int:
    """Run tuning job ``name`` in a background process (``python -m oculi.tuning NAME``); returns its pid."""
    store = store or JobStore()
    job = store.get(name)
    return start_background(["oculi.tuning", name], Path(job["log_path"])).pid


def run(name: str, store: JobStore | None = None, echo: Echo | None = None) -> dict[str, Any]:
    """Own and run tuning job ``name`` (``Pending``) in this process until it ends; returns its record."""
    store = store or JobStore()
    log = _log(store, name, echo)
    if store.get(name)["secondary_status"] == S.STOPPING:  # stopped before its tuner started
        return store.transition(name, S.STOPPED, "stopped before it started", training_end=time.time())
    job = store.transition(name, S.STARTING, "tuner starting", expect=S.PENDING, **_me())
    job = store.transition(name, S.TUNING, "tuning", expect=S.STARTING,
                           training_start=job["training_start"] or time.time())
    try:
        reason = Tuner(store, name, log, owner=True).loop()
    except BaseException as e:  # noqa: BLE001 - recorded, then raised again
        with contextlib.suppress(JobError):
            reason_text = str(e) if isinstance(e, ConfigError | JobError) else f"{type(e).__name__}: {e}"
            if isinstance(e, KeyboardInterrupt):
                reason_text = (f"interrupted (Ctrl-C); trials already running go on. Continue with `oculi jobs "
                               f"resume {name}`.")
            store.transition(name, S.FAILED, reason_text[:200], failure_reason=reason_text[:1024], pid=None,
                             training_end=time.time())
        raise
    job = store.get(name)
    spec = {**job["spec"], "end_reason": reason}
    if job["secondary_status"] == S.STOPPING:
        job = store.transition(name, S.STOPPED, "tuning stopped", pid=None, training_end=time.time(), spec=spec)
    else:
        job = store.transition(name, S.COMPLETED, reason, pid=None, training_end=time.time(), spec=spec)
    return job


def work(name: str, store: JobStore | None = None, echo: Echo | None = None) -> None:
    """Take trials of tuning job ``name`` from its study in this process (``oculi tune worker NAME``) until the
    study is finished; the tuning job's own process keeps its status."""
    store = store or JobStore()
    job = store.get(name)
    if job.get("kind") != "tuning":
        raise JobError(f"{name} is not a tuning job.")
    if job["secondary_status"] in S.TERMINAL:
        raise JobError(f"Tuning job {name} has ended ({job['secondary_status']}); nothing to work on.")
    Tuner(store, name, _log(store, name, echo), owner=False).loop()


def resume(name: str, store: JobStore | None = None) -> dict[str, Any]:
    """Put a Failed (e.g. its tuner was killed) or Stopped tuning job back to ``Pending``; run it next with
    :func:`run` or :func:`start_detached`. Its trials are reconciled, nothing is run twice."""
    store = store or JobStore()
    with runner.queue_lock():
        runner.reap(store)
        job = store.get(name)
        at = job["secondary_status"]
        if at == S.COMPLETED:
            raise JobError(f"Tuning job {name} completed ({(job['spec'] or {}).get('end_reason')}); start a new one, "
                           f"e.g. with --warm-start {name}.")
        if at not in S.TERMINAL:
            raise JobError(f"Tuning job {name} is {job['status']}/{at}; only a Failed or Stopped one can be resumed.")
        return store.transition(name, S.PENDING, f"resume tuning (was {at})", expect=at, failure_reason=None,
                                attempts=job["attempts"] + 1, training_end=None, pid=None, process_token=None,
                                host=None)


def _log(store: JobStore, name: str, echo: Echo | None) -> Echo:
    path = Path(store.get(name)["log_path"])
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(line: str) -> None:
        with path.open("a") as f:
            f.write(line + "\n")
        if echo is not None:
            echo(line)

    return write


class Tuner:
    """One process's loop over a tuning job's study (see the module's docstring)."""

    def __init__(self, store: JobStore, name: str, log: Echo, owner: bool) -> None:
        self.store, self.name, self.log, self.owner = store, name, log, owner
        job = store.get(name)
        self.job_dir = job["job_dir"]
        self.cfg = TuningConfig.from_record(job["spec"]["tuning"])
        self.training = runner.JobSpec(**job["spec"]["training"])
        self.kind = job["spec"]["storage"]
        self.warm = int(job["spec"]["warm_trials"])
        self.epochs = studies.fixed_epochs(self.training.hyperparameters)
        asked = len(studies.load(name, self.kind, self.job_dir, self.cfg, self.epochs).get_trials(deepcopy=False))
        # a fresh run draws from the seed itself (reproducible); a resumed run or another process draws anew
        self.study = studies.load(name, self.kind, self.job_dir, self.cfg, self.epochs,
                                  seed_offset=asked + (0 if owner else 7919 * os.getpid()))
        self.dists = studies.distributions(self.cfg)
        self.waiting_said = False
        self.ended: str | None = None  # the end reason, once one was met

    # -- the loop
    def loop(self) -> str:
        """Run until the study is done (returns SageMaker's HyperParameterTuningEndReason) or the tuning job is
        stopped (its running trials are stopped first)."""
        self.log(f"tuning job {self.name}: {self.cfg.strategy}, {self.cfg.max_jobs} training jobs, at most "
                 f"{self.cfg.max_parallel_jobs} at once, objective {self.cfg.objective_type} {self.cfg.objective}"
                 + (f", {self.warm} warm-start trial(s)" if self.warm else "")
                 + (f", at most {self.cfg.max_runtime} s in all ({runtime_seconds(self.store, self.name):.0f} s "
                    "used)" if self.cfg.max_runtime is not None else "") + f"; log {self._where()}")
        while True:
            job = self.store.get(self.name)
            if job["secondary_status"] == S.STOPPING or (not self.owner and job["secondary_status"] in S.TERMINAL):
                self._stop_trials()
                return "Stopped"
            trials = self.reconcile()
            # once met, an end reason stays: stopping the running trials must not turn it into another one
            ended = self.ended = self.ended or self._end_reason(trials)
            if ended and not self._unfinished(trials):
                self._summary(trials, ended)
                return ended
            if ended:  # a criterion was met: stop what still runs, then end
                for t in self._unfinished(trials):
                    if "stopped_because" not in t.user_attrs:
                        self.study._storage.set_trial_user_attr(t._trial_id, "stopped_because",
                                                                f"stopped: the tuning job ended ({ended})")
                    with contextlib.suppress(JobError):
                        runner.stop(self._job_name(t), self.store)
            else:
                self._fill(trials)
            runner.dispatch(self.store)
            time.sleep(POLL_SECONDS)

    def _where(self) -> str:
        return str(self.store.get(self.name)["log_path"])

    def own_trials(self) -> list[Any]:
        """This job's own trials, by number: not warm-start ones, not numbers past max_jobs, not enqueued ones
        still waiting to be asked for (``study.enqueue_trial``)."""
        import optuna

        return [t for t in self.study.get_trials(deepcopy=False)
                if t.number >= self.warm and not t.user_attrs.get("discarded")
                and t.state != optuna.trial.TrialState.WAITING]

    def _job_name(self, trial: Any) -> str:
        return f"{self.name}-{trial.number - self.warm + 1:03d}"

    def _unfinished(self, trials: list[Any]) -> list[Any]:
        import optuna

        return [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]

    # -- asking for new trials
    def _fill(self, trials: list[Any]) -> None:
        running = len(self._unfinished(trials))
        while running < self.cfg.max_parallel_jobs:
            with runner.queue_lock():  # local processes of one study count and ask one at a time
                trials = self.own_trials()
                running = len(self._unfinished(trials))
                if len(trials) >= (self.cfg.max_jobs or 0) or running >= self.cfg.max_parallel_jobs:
                    return
                trial = self.study.ask(self.dists)
                if trial.number - self.warm + 1 > (self.cfg.max_jobs or 0):  # another machine took the last one
                    self._discard(trial)
                    return
                self._submit(trial)
            running += 1
        if runner.max_parallel() < self.cfg.max_parallel_jobs and not self.waiting_said:
            self.log(f"OCULI_MAX_PARALLEL_JOBS={runner.max_parallel()} < --max-parallel-jobs "
                     f"{self.cfg.max_parallel_jobs}: trials wait in the queue for a slot")
            self.waiting_said = True

    def _discard(self, trial: Any) -> None:
        """Drop a trial that was asked for but will never be submitted (not one of the job's own trials)."""
        import optuna

        self.study._storage.set_trial_user_attr(trial._trial_id, "discarded", True)
        self.study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)

    def _out_of_time(self) -> bool:
        """Whether the tuning job has used up ResourceLimits.MaxRuntimeInSeconds."""
        return self.cfg.max_runtime is not None and runtime_seconds(self.store, self.name) >= self.cfg.max_runtime

    def _hyperparameters(self, trial: Any) -> dict[str, str]:
        return {n: value_of(p, trial.params[n]) for n, p in self.cfg.ranges.items()}

    def _submit(self, trial: Any) -> None:
        """Submit ``trial`` as a training job; a job of that name already there means another process did."""
        name = self._job_name(trial)
        if self.store.find(name) is not None:
            return
        values = self._hyperparameters(trial)
        spec = runner.JobSpec(**{**asdict(self.training), "name": name,
                                 "hyperparameters": {**self.training.hyperparameters, **values},
                                 "tags": {"TuningJob": self.name, "TrialNumber": trial.number - self.warm + 1}})
        rule = {"Auto": "median"}.get(self.cfg.early_stopping, "none")
        if self.cfg.strategy == "hyperband":
            rule = "hyperband"
        if not spec.entry_point:
            spec.callbacks = [{"target": "oculi.tuning.early_stopping:callbacks", "kwargs": {
                "tuning_job": self.name, "storage_kind": self.kind, "job_dir": self.job_dir,
                "trial_number": trial.number, "job": name, "objective": self.cfg.objective,
                "maximize": self.cfg.objective_type == "Maximize", "rule": rule,
                "min_trials": self.cfg.early_stopping_min_trials}}]
        self.study._storage.set_trial_user_attr(trial._trial_id, "job", name)
        try:
            runner.submit(spec, self.store)
        except JobError:
            if self.store.find(name) is None:
                raise
            return
        shown = " ".join(f"{k}={v}" for k, v in values.items())
        self.log(f"[{trial.number - self.warm + 1}/{self.cfg.max_jobs}] {name} submitted: {shown}")

    # -- recording finished trials
    def reconcile(self) -> list[Any]:
        """Bring the study up to date with the store: submit asked-for trials without a job, record ended jobs,
        resume trials whose worker died (once) or that a tuning stop interrupted — none of that once the tuning
        job is out of time (an unsubmitted trial is dropped then). Returns the own trials."""
        import optuna

        out_of_time = self._out_of_time()
        for t in self._unfinished(self.own_trials()):
            name = self._job_name(t)
            job = self.store.find(name)
            if job is None:
                missing = [n for n in self.cfg.ranges if n not in t.params]
                if missing and time.time() - t.datetime_start.timestamp() < STALE_ASK_SECONDS:
                    continue  # another process is between ask and submit (or it died there, long ago: below)
                if out_of_time:
                    self._discard(t)
                    continue
                if missing:
                    t = self._complete(t, missing)
                self._submit(t)
                continue
            at = job["secondary_status"]
            if at not in S.TERMINAL:
                continue
            if t.user_attrs.get("interrupted") and at == S.STOPPED and not out_of_time:
                self._restart(t, job, "resumed after the tuning job was resumed")
                continue
            if at == S.FAILED and (job["failure_reason"] or "").startswith(runner.WORKER_DIED) \
                    and not t.user_attrs.get("retried") and not out_of_time:
                self._restart(t, job, "its worker process died")
                continue
            value = (job["final_metrics"] or {}).get(self.cfg.objective)
            early = self._early_stop_reason(name) if at == S.STOPPED else None
            if at in (S.COMPLETED, S.MAX_RUNTIME_EXCEEDED) and value is not None:
                state, values = optuna.trial.TrialState.COMPLETE, [value]
            elif at == S.STOPPED:
                state, values = optuna.trial.TrialState.PRUNED, None
                self.study._storage.set_trial_user_attr(
                    t._trial_id, "reason", early or t.user_attrs.get("stopped_because") or "stopped by a user")
            else:
                state, values = optuna.trial.TrialState.FAIL, None
                reason = job["failure_reason"] or (f"the job did not report {self.cfg.objective} (its metrics: "
                                                   f"{', '.join(job['final_metrics'] or {}) or 'none'})")
                self.study._storage.set_trial_user_attr(t._trial_id, "reason", reason)
            try:  # through the storage: a sampler's after_trial (GridSampler's study.stop()) is for optimize()
                self.study._storage.set_trial_state_values(t._trial_id, state, values)
            except UpdateFinishedTrialError:  # another process recorded it first
                continue
            self._recorded(name, job, value if values else None, at, early)
        return self.own_trials()

    def _complete(self, trial: Any, missing: list[str]) -> Any:
        """Values for the hyperparameters a trial was never given (its tuner died while asking): drawn at random,
        recorded on the trial."""
        import optuna

        draw = optuna.samplers.RandomSampler()
        for n in missing:
            value = draw.sample_independent(self.study, trial, n, self.dists[n])
            self.study._storage.set_trial_param(trial._trial_id, n, self.dists[n].to_internal_repr(value),
                                                self.dists[n])
        self.study._storage.set_trial_user_attr(trial._trial_id, "completed_after_crash", missing)
        return self.study._storage.get_trial(trial._trial_id)

    def _restart(self, trial: Any, job: dict[str, Any], why: str) -> None:
        name = job["name"]
        self.study._storage.set_trial_user_attr(trial._trial_id, "retried", True)
        self.study._storage.set_trial_user_attr(trial._trial_id, "interrupted", False)
        try:
            runner.resume(name, store=self.store)
            self.log(f"{name}: {why}; resumed from its checkpoint")
        except JobError:
            runner.rerun(name, f"run again: {why} before its first checkpoint", self.store)
            self.log(f"{name}: {why} before its first checkpoint; running it again (recorded in its history)")

    def _early_stop_reason(self, name: str) -> str | None:
        for t in reversed(self.store.transitions(name)):
            if t["secondary_status"] == S.STOPPING:
                return t["message"] if t["message"].startswith(EARLY_STOP) else None
        return None

    def _recorded(self, name: str, job: dict[str, Any], value: float | None, at: str, early: str | None) -> None:
        best = self.best()
        index = int(name.rsplit("-", 1)[1])
        seconds = (job["training_end"] or time.time()) - (job["training_start"] or job["created_at"])
        shown = f"{self.cfg.objective} {value:.4f}" if value is not None else (early or job["failure_reason"]
                                                                               or "stopped")
        best_shown = f"best {best['value']:.4f} ({best['job']})" if best else "no objective yet"
        self.log(f"[{index}/{self.cfg.max_jobs}] {name} {at}: {shown}  ({seconds:.1f} s)  {best_shown}")
        if value is not None:
            self.store.add_metrics(self.name, {"objective": value, "best_objective": best["value"]},
                                   step=index - 1)  # `oculi jobs metrics` shows step + 1: the trial's index
        if best and self.owner:
            best_job = self.store.find(best["job"])
            self.store.update(self.name, final_metrics={self.cfg.objective: best["value"]},
                              model_dir=best_job["model_dir"] if best_job else "")

    def best(self) -> dict[str, Any] | None:
        """``{"job", "value", "number"}`` of the best completed own trial (ties: the earlier one)."""
        import optuna

        done = [t for t in self.own_trials() if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            return None
        sign = 1 if self.cfg.objective_type == "Maximize" else -1
        top = max(done, key=lambda t: (sign * t.value, -t.number))
        return {"job": self._job_name(top), "value": top.value, "number": top.number}

    # -- ending
    def _end_reason(self, trials: list[Any]) -> str | None:
        import optuna

        done = [t for t in trials if t.state.is_finished()]
        best = self.best()
        if best and self.cfg.target_value is not None:
            reached = (best["value"] >= self.cfg.target_value if self.cfg.objective_type == "Maximize"
                       else best["value"] <= self.cfg.target_value)
            if reached:
                return "TargetObjectiveMetricValueReached"
        values = [t.value for t in sorted(done, key=lambda t: t.datetime_complete or 0)
                  if t.state == optuna.trial.TrialState.COMPLETE]
        sign = 1 if self.cfg.objective_type == "Maximize" else -1
        if self.cfg.not_improving and len(values) > self.cfg.not_improving:
            best_before = max(sign * v for v in values[:-self.cfg.not_improving])
            if max(sign * v for v in values[-self.cfg.not_improving:]) <= best_before:
                return "BestObjectiveNotImproving"
        if self.cfg.convergence and len(values) > CONVERGENCE_WINDOW:
            gains = []
            for i in range(len(values) - CONVERGENCE_WINDOW, len(values)):
                before = max(sign * v for v in values[:i])
                gains.append((sign * values[i] - before) / max(abs(before), 1e-12))
            if max(gains) < CONVERGENCE_TOLERANCE:
                return "ConvergenceDetected"
        if len(trials) >= (self.cfg.max_jobs or 0) and len(done) == len(trials):
            return "MaxNumberOfTrainingJobsReached"
        if self._out_of_time():
            return "MaxRuntimeExceeded"
        return None

    def _stop_trials(self) -> None:
        """A tuning stop: stop every unfinished trial (marked, so a resume continues it) and wait for them."""
        names = []
        for t in self._unfinished(self.own_trials()):
            name = self._job_name(t)
            self.study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            if self.store.find(name) is not None:
                with contextlib.suppress(JobError):
                    runner.stop(name, self.store)
                names.append(name)
        for name in names:
            runner.wait(name, self.store, poll=0.3)
        self.log(f"tuning job {self.name} stopped; {len(names)} running trial(s) stopped with checkpoints. "
                 f"Continue with `oculi jobs resume {self.name}`.")

    def _summary(self, trials: list[Any], reason: str) -> None:
        best = self.best()
        self.log(f"tuning job {self.name} ended: {reason}. " + (
            f"Best: {best['job']} {self.cfg.objective} {best['value']:.4f}; model "
            f"{self.store.get(best['job'])['model_dir']}" if best else "No trial reported the objective."))
