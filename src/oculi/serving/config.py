"""The endpoint configuration: which endpoints a server hosts, their production variants (a model bundle and a
traffic weight each) and their dynamic-batching settings.

A YAML or JSON file (``oculi serve --config endpoint.yaml``)::

    max_batch_size: 8          # defaults for every variant below (optional)
    max_latency_ms: 5
    endpoints:
      - name: ants
        variants:
          - {name: resnet18, model: models/ants-r18, weight: 3}
          - {name: lite0, model: models/ants-lite0, weight: 1, max_batch_size: 16}
      - name: bees
        variants:
          - {name: main, model: models/bees}

A model may be ``group:NAME``: the latest approved version of that model package group (``oculi models``).
SageMaker's names are accepted too (``EndpointName``, ``ProductionVariants``, ``VariantName``, ``ModelName`` or
``ModelDataUrl``, ``InitialVariantWeight``). Model paths are relative to the file's folder. Weights are relative
(1:3 sends a quarter of the traffic to the first variant); a variant with weight 0 gets only the requests that name
it with ``TargetVariant``. A setting on a variant wins over its endpoint's, an endpoint's over the file's, and the
file's over the ``oculi serve`` options; the server prints what each variant resolved to.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from oculi.errors import ConfigError

# SageMaker's rule for endpoint and variant names.
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
NAME_RULE = "1–63 letters, digits and hyphens, starting and ending with a letter or digit (SageMaker's rule)"
DEFAULT_MAX_BATCH_SIZE = 8
DEFAULT_MAX_LATENCY_MS = 5.0
DEFAULT_MAX_QUEUE_SIZE = 32


def _name(value: str) -> str:
    if len(value) > 63 or not NAME_PATTERN.match(value):
        raise ValueError(f"{value!r} is not a valid name: use {NAME_RULE}, e.g. 'ants-v2'")
    return value


class Batching(BaseModel):
    """Dynamic-batching settings; ``None`` inherits from the enclosing level."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_batch_size: int | None = Field(None, ge=1, le=1024, description="Most images one model forward takes.")
    max_latency_ms: float | None = Field(None, ge=0, le=10_000, description="Longest a request waits for others "
                                         "to join its batch (only while more requests are on their way).")
    max_queue_size: int | None = Field(None, ge=1, le=100_000, description="Requests a variant holds (decoding "
                                       "or queued) before answering 503 with Retry-After.")


class VariantConfig(Batching):
    """One production variant: a model bundle and its share of the endpoint's traffic."""

    name: str = Field(validation_alias=AliasChoices("name", "VariantName"), description="Variant name.")
    model: Path = Field(validation_alias=AliasChoices("model", "ModelName", "ModelDataUrl"),
                        description="Model bundle folder or model.tar.gz.")
    weight: float = Field(1.0, ge=0, validation_alias=AliasChoices("weight", "InitialVariantWeight"),
                          description="Relative traffic weight.")
    _package_arn: str | None = PrivateAttr(None)  # set when ``model`` was ``group:NAME`` (the model registry)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)


class EndpointConfig(Batching):
    """One endpoint: a name and its production variants."""

    name: str = Field(validation_alias=AliasChoices("name", "EndpointName"), description="Endpoint name.")
    variants: list[VariantConfig] = Field(validation_alias=AliasChoices("variants", "ProductionVariants"),
                                          min_length=1, description="Production variants.")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        return _name(value)

    @model_validator(mode="after")
    def _variants(self) -> EndpointConfig:
        names = [v.name for v in self.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"variant name {twice[0]!r} is used twice in endpoint {self.name!r}; give each "
                             "variant its own name")
        if not any(v.weight > 0 for v in self.variants):
            raise ValueError(f"every variant of endpoint {self.name!r} has weight 0, so no request could be "
                             "routed; give at least one variant a weight > 0")
        return self


class ServingConfig(Batching):
    """The whole file: endpoints plus batching defaults for all of them."""

    endpoints: list[EndpointConfig] = Field(min_length=1, description="Endpoints the server hosts.")

    @model_validator(mode="after")
    def _unique(self) -> ServingConfig:
        names = [e.name for e in self.endpoints]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"endpoint name {twice[0]!r} is used twice; give each endpoint its own name")
        return self

    def resolved(self, defaults: Batching | None = None) -> dict[str, dict[str, Batching]]:
        """``{endpoint: {variant: Batching}}`` with every setting filled: variant, else endpoint, else file,
        else ``defaults`` (the ``oculi serve`` options), else the built-in defaults."""
        builtin = Batching(max_batch_size=DEFAULT_MAX_BATCH_SIZE, max_latency_ms=DEFAULT_MAX_LATENCY_MS,
                           max_queue_size=DEFAULT_MAX_QUEUE_SIZE)
        out: dict[str, dict[str, Batching]] = {}
        for endpoint in self.endpoints:
            out[endpoint.name] = {}
            for variant in endpoint.variants:
                levels = [variant, endpoint, self, defaults or Batching(), builtin]
                out[endpoint.name][variant.name] = Batching(**{
                    key: next(getattr(level, key) for level in levels if getattr(level, key) is not None)
                    for key in Batching.model_fields})
        return out


def _location(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _explain(error: dict[str, Any]) -> str:
    where = _location(tuple(error["loc"]))
    kind = error["type"]
    if kind == "extra_forbidden":
        return (f"{where}: unknown key. Endpoints take name and variants; variants take name, model and weight; "
                "any level takes max_batch_size, max_latency_ms and max_queue_size.")
    if kind == "missing":
        return f"{where}: required key is missing; add it."
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message} (got {error.get('input')!r})." if kind != "value_error" else f"{where}: {message}."


def parse_config(data: Any, source: str, base: Path) -> ServingConfig:
    """Validate the content of an endpoint configuration (``source`` names it in errors); relative model paths
    are taken from ``base``. Raises :class:`ConfigError` listing every problem with its key and the fix, and
    naming any model path that does not exist."""
    if isinstance(data, list):  # a bare list of endpoints
        data = {"endpoints": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with an `endpoints` list, got {type(data).__name__}. "
                          "See `oculi serve --help` for an example.")
    try:
        config = ServingConfig.model_validate(data)
    except ValidationError as e:
        problems = [_explain(err) for err in e.errors()]
        raise ConfigError(f"{source}: {len(problems)} problem{'s' if len(problems) > 1 else ''}:\n"
                          + "\n".join(f"  - {p}" for p in problems)) from None
    from oculi.model_registry import resolve_model

    missing = []
    for n, endpoint in enumerate(config.endpoints):
        for m, variant in enumerate(endpoint.variants):
            path, variant._package_arn = resolve_model(variant.model)
            path = path.expanduser()
            variant.model = path if path.is_absolute() else base / path
            if not variant.model.exists():
                missing.append(f"endpoints[{n}].variants[{m}].model: {variant.model} does not exist (relative paths "
                               f"are taken from {base}); pass a model bundle folder or model.tar.gz.")
    if missing:
        raise ConfigError(f"{source}:\n" + "\n".join(f"  - {p}" for p in missing))
    return config


def load_config(path: Path) -> ServingConfig:
    """Read and validate an endpoint configuration file (``.yaml``/``.yml`` or ``.json``)."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"--config {path}: file not found. Pass a YAML or JSON endpoint configuration.")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}:{e.lineno}: invalid JSON ({e.msg}).") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', None) or e}).") from None
    return parse_config(data, str(path), path.parent.resolve())


def endpoint_name_for(model: Path) -> str:
    """The endpoint name of a model served without a config: its folder's name (for ``model.tar.gz``, the
    folder holding it), with other characters than letters and digits turned into hyphens."""
    from oculi.model_registry import GROUP_PREFIX

    if str(model).startswith(GROUP_PREFIX):
        return str(model)[len(GROUP_PREFIX):].partition("/")[0]
    path = Path(model).expanduser().resolve()
    stem = path.parent.name if path.name.endswith((".tar.gz", ".tgz")) else path.name
    return re.sub(r"[^a-zA-Z0-9]+", "-", stem).strip("-")[:63].strip("-") or "model"


def config_from_models(models: list[Path], names: list[str] | None = None) -> ServingConfig:
    """``oculi serve MODEL…``: one endpoint per model, named ``names`` or after its folder
    (:func:`endpoint_name_for`), with one variant ``AllTraffic`` (SageMaker's default variant name)."""
    endpoints = []
    for n, model in enumerate(models):
        name = names[n] if names else endpoint_name_for(model)
        endpoints.append({"name": name, "variants": [{"name": "AllTraffic", "model": str(Path(model).expanduser())}]})
    names = [e["name"] for e in endpoints]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"two models would both be served as endpoint {twice[0]!r} (named after their folders); "
                          "rename a folder or list them in --config with their own names.")
    return parse_config({"endpoints": endpoints}, "models", Path.cwd())
