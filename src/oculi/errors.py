"""The error hierarchy. Every user mistake raises an ``OculiError`` subclass whose message names the value,
the rule and the fix; the CLI maps them to exit codes (and the server, later, to HTTP statuses) in one place."""

from __future__ import annotations


class OculiError(Exception):
    """Base class of every error oculi raises on purpose. ``exit_code`` is what the CLI exits with."""

    exit_code = 1
    http_status = 400


class ConfigError(OculiError):
    """Hyperparameters or options that are unknown, of the wrong type, out of range or in conflict."""

    exit_code = 2


class DataError(OculiError):
    """Input data that cannot be read or trained on. ``report`` may carry the full data-check report."""

    exit_code = 3

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class ArtifactError(OculiError):
    """A model bundle that is missing, truncated, or does not match what was asked of it."""

    exit_code = 4


class RegistryError(ConfigError):
    """A name that is not registered (algorithm, architecture, …)."""


class JobError(OculiError):
    """A training job that failed or cannot be found."""

    exit_code = 5
