"""Where a tuning job's Optuna study lives, and the samplers/pruners of each strategy.

Storage: with ``OCULI_DATABASE_URL`` (PostgreSQL) the study is in that database (Optuna's RDB storage, so
``oculi tune worker NAME`` on other machines shares it); otherwise in an append-only journal file in the tuning
job's folder (Optuna's ``JournalFileBackend``: several local processes append under a file lock, a killed process
loses nothing already written — no "database is locked")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oculi.errors import ConfigError, JobError
from oculi.settings import settings
from oculi.tuning.config import TuningConfig
from oculi.tuning.ranges import distribution


def quiet() -> None:
    """Optuna logs every trial at INFO; oculi prints its own lines."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage_kind() -> str:
    """``database`` when ``OCULI_DATABASE_URL`` names a server database, else ``journal``."""
    url = settings().database_url
    return "database" if url and not url.startswith("sqlite") else "journal"


def storage(kind: str, job_dir: Path | str, create: bool = False) -> Any:
    """The Optuna storage of a tuning job stored as ``kind`` (see :func:`storage_kind`); a journal that is not
    there (the job's folder was removed) is a JobError unless ``create``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    if kind == "database":
        url = settings().database_url
        if not url or url.startswith("sqlite"):
            raise ConfigError("This tuning job keeps its study in PostgreSQL: set OCULI_DATABASE_URL to the same "
                              "database as the process that created it.")
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True})
    path = Path(job_dir) / "study.journal"
    if not create and not path.exists():
        raise JobError(f"The study of this tuning job is missing: {path} is not there (was the job's folder "
                       "removed?). Its trials are still training jobs of their own (`oculi jobs list`).")
    return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def sampler(cfg: TuningConfig, seed_offset: int = 0) -> Any:
    """The strategy's sampler: TPE (bayesian, hyperband), random, or grid over the categorical ranges.
    ``seed_offset`` varies the seed between processes of one study and between runs of a resumed one (each
    would draw the values already drawn else). The grid's seed never varies: it orders the combinations, and
    every process must agree on that order (trial n runs combination n)."""
    import optuna

    if cfg.strategy == "grid":
        return optuna.samplers.GridSampler({n: list(p.values) for n, p in cfg.ranges.items()},
                                           seed=cfg.random_seed or 0)
    seed = None if cfg.random_seed is None else cfg.random_seed + seed_offset
    if cfg.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    startup = max(2, min(10, (cfg.max_jobs or 10) // 3))  # random trials before TPE models the results
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)


def pruner(cfg: TuningConfig, epochs: int | None) -> Any:
    """Hyperband over epochs for ``--strategy hyperband`` (needs the number of epochs); no pruner otherwise
    (``--early-stopping auto`` is oculi's median rule, :mod:`oculi.tuning.early_stopping`)."""
    import optuna

    if cfg.strategy != "hyperband":
        return optuna.pruners.NopPruner()
    top = cfg.hyperband_max_resource or epochs
    if not top:
        raise ConfigError("--strategy hyperband needs a fixed number of epochs (its largest budget): pass "
                          "-p epochs=N (or StrategyConfig.HyperbandStrategyConfig.MaxResource).")
    return optuna.pruners.HyperbandPruner(min_resource=cfg.hyperband_min_resource or 1, max_resource=top,
                                          reduction_factor=3)


def distributions(cfg: TuningConfig) -> dict[str, Any]:
    """Each range's Optuna distribution."""
    return {n: distribution(p) for n, p in cfg.ranges.items()}


def fixed_epochs(hyperparameters: dict[str, Any]) -> int | None:
    """``epochs`` among the static hyperparameters, when it is a number."""
    value = str(hyperparameters.get("epochs", "")).strip()
    return int(value) if value.isdigit() else None


def load(name: str, kind: str, job_dir: Path | str, cfg: TuningConfig, epochs: int | None,
         seed_offset: int = 0) -> Any:
    """The tuning job's study with its strategy's sampler and pruner."""
    import optuna

    quiet()
    return optuna.load_study(study_name=name, storage=storage(kind, job_dir), sampler=sampler(cfg, seed_offset),
                             pruner=pruner(cfg, epochs))
