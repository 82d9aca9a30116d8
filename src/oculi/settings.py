"""Every ``OCULI_*`` environment variable in one typed object, read with pydantic-settings.

:func:`settings` reads the environment on every call (a few microseconds), so a test's
``monkeypatch.setenv("OCULI_HOME", …)`` takes effect at once and nothing is read at import. A bad value is a
:class:`~oculi.errors.ConfigError` naming the variable, its value, the rule and the fix. Parsing is
cached while those variables stay the same. The README's
"Environment variables" table documents the same fields (a test keeps the two in step)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from oculi.errors import ConfigError

PREFIX = "OCULI_"


class Settings(BaseSettings):
    """oculi's process-wide settings; each field is the environment variable ``OCULI_<FIELD>``. Empty values
    count as unset."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore", frozen=True, env_ignore_empty=True)

    home: Path = Field(Path("~/.oculi"), description="Where oculi keeps state: the job store (oculi.db) and "
                       "jobs/<name>/ (logs, checkpoints, output/model).",
                       json_schema_extra={"example": "/data/oculi"})
    database_url: str | None = Field(None, description="The job store's SQLAlchemy URL (default: SQLite at "
                                     "$OCULI_HOME/oculi.db).",
                                     json_schema_extra={"example": "postgresql+psycopg://user@host/oculi"})
    token: str | None = Field(None, description="Bearer token of the servers' control planes (`oculi serve`'s "
                              "/api/…, `oculi jobs serve`, every page of `oculi console`); required to listen on "
                              "anything but loopback.",
                              json_schema_extra={"example": "$(openssl rand -hex 16)"})
    max_parallel_jobs: int = Field(1, ge=1, description="Jobs (training, transform) that run at once; the "
                                   "others wait in the queue.", json_schema_extra={"example": "2"})
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Extra names the servers answer to in the Host header, comma-separated (besides "
        "localhost and the bound address); `.example.com` allows its subdomains, `*` any name.",
        json_schema_extra={"example": "oculi.lan,.corp.example"})
    debug: bool = Field(False, description="Show full tracebacks for errors (what `oculi --debug` sets).",
                        json_schema_extra={"example": "1"})

    @field_validator("home")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value


def variable(field: str) -> str:
    """The environment variable of a :class:`Settings` field: ``max_parallel_jobs`` → ``OCULI_MAX_PARALLEL_JOBS``."""
    return f"{PREFIX}{field.upper()}"


_last: tuple[tuple[tuple[str, str], ...], Settings] | None = None  # (the OCULI_* variables, their settings)


def settings() -> Settings:
    """The settings as the environment has them now (parsed again whenever an ``OCULI_*`` variable changed).
    Raises :class:`~oculi.errors.ConfigError` naming every variable whose value is not valid."""
    global _last
    seen = tuple(sorted((k, v) for k, v in os.environ.items() if k.upper().startswith(PREFIX)))
    if _last is not None and _last[0] == seen:
        return _last[1]
    try:
        parsed = Settings()
    except ValidationError as e:
        problems = []
        for error in e.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            name = variable(field)
            info = Settings.model_fields.get(field)
            example = (info.json_schema_extra or {}).get("example") if info else None  # type: ignore[union-attr]
            problems.append(f"{name} is {os.environ.get(name, '')!r}: {error['msg'].lower()}. "
                            f"Set it like {name}={example}, or unset it for the default.")
        raise ConfigError("bad environment variable: " + " ".join(problems)) from None
    _last = (seen, parsed)
    return parsed


def oculi_home() -> Path:
    """Where oculi keeps state: ``$OCULI_HOME`` or ``~/.oculi``."""
    return settings().home
