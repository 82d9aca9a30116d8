"""Typed hyperparameters: one pydantic model per algorithm, SageMaker's names and string forms.

Values arrive as strings (from ``-p key=value``, a recipe file or pasted SageMaker hyperparameters) or as Python
values (the API). Precedence: model defaults < recipe < overrides. Every problem in one call is reported at once,
with the valid values and the closest names (:class:`~oculi.errors.ConfigError`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.fields import FieldInfo

from oculi.errors import ConfigError
from oculi.registry import closest

AUTO = "auto"
Auto = Literal["auto"]


def Range(kind: type, **bounds: Any) -> Any:  # noqa: N802 - reads like a type
    """``Annotated[kind, Field(**bounds)]``: a bounded number that can sit in a union with ``Auto``."""
    from pydantic import Field

    return Annotated[kind, Field(**bounds)]


class HyperParameters(BaseModel):
    """Base of every algorithm's hyperparameter model: unknown names are errors, values are validated on
    assignment too, and ``"auto"`` values are resolved by the algorithm before training (and printed)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    def changed(self) -> dict[str, Any]:
        """The values that differ from the defaults (what a user set, plus resolved autos)."""
        return {k: v for k, v in self.model_dump().items() if v != type(self).model_fields[k].default}


def parse_assignments(pairs: Iterable[str]) -> dict[str, str]:
    """Parse ``["key=value", …]`` into a dict; a pair without ``=`` or with an empty key is a ConfigError."""
    out: dict[str, str] = {}
    bad = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            bad.append(pair)
            continue
        out[key.strip()] = value.strip()
    if bad:
        raise ConfigError(
            "Expected key=value, got " + ", ".join(repr(b) for b in bad) + ". Example: -p learning_rate=0.01"
        )
    return out


def load_recipe(path: Path) -> dict[str, Any]:
    """Read a recipe file of hyperparameters: JSON (SageMaker's hyperparameters.json) or ``key=value`` lines."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"Cannot read recipe {path}: {e.strerror}.") from None
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}:{e.lineno}: invalid JSON ({e.msg}).") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object of hyperparameters.")
        return data
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return parse_assignments(lines)


def parse_int_list(value: Any) -> Any:
    """SageMaker's list form: ``"10,20"`` / ``"10, 20"`` / ``"[10, 20]"`` → ``[10, 20]``; empty → ``[]``."""
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        if not text:
            return []
        return [part.strip() for part in text.split(",")]
    return value


def _metadata(annotation: Any) -> list[Any]:
    """Constraint objects inside ``Annotated[...]`` members of an annotation, e.g.
    ``Annotated[int, Ge(1)] | Literal["auto"]``."""
    out = list(getattr(annotation, "__metadata__", ()))
    for arg in get_args(annotation):
        out.extend(_metadata(arg))
    return out


def _flatten(items: list[Any]) -> list[Any]:
    out = []
    for m in items:
        out.extend(m.metadata if isinstance(m, FieldInfo) else [m])
    return out


def _constraints(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in _flatten(list(info.metadata) + _metadata(info.annotation)):
        for attr in ("ge", "gt", "le", "lt"):
            if isinstance(m, getattr(annotated_types, attr.capitalize())):
                out[attr] = getattr(m, attr)
    return out


def _choices(annotation: Any) -> list[Any]:
    """Literal choices inside an annotation (``Literal[...]``, ``X | Literal[...]``)."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    out: list[Any] = []
    for arg in get_args(annotation):
        out.extend(_choices(arg))
    return out


def field_choices(info: FieldInfo) -> list[str]:
    """The values a hyperparameter field takes from a fixed list (its ``Literal`` choices, ``auto`` among them), as
    strings; [] for a field with free values (numbers, paths)."""
    return [str(c) for c in _choices(info.annotation)]


def valid_values(info: FieldInfo) -> str:
    """Human-readable valid values/range of a field, e.g. ``sgd | adam`` or ``≥ 1``."""
    if "valid" in (info.json_schema_extra or {}):
        return str(info.json_schema_extra["valid"])  # type: ignore[index]
    choices = _choices(info.annotation)
    c = _constraints(info)
    parts = []
    if c:
        symbols = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
        kind = "a number" if _has_float(info.annotation) else "an integer"
        parts.append(kind + " " + ", ".join(f"{symbols[k]} {v}" for k, v in c.items()))
    if choices:
        parts.append(" | ".join(str(x) for x in choices))
    return " or ".join(parts) if parts else _type_name(info.annotation)


def _has_float(annotation: Any) -> bool:
    if annotation is float:
        return True
    return any(_has_float(arg) for arg in get_args(annotation))


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", None)
    return name if name else str(annotation).replace("typing.", "")


def describe(model: type[HyperParameters]) -> list[dict[str, str]]:
    """One row per hyperparameter: ``name``, ``default``, ``valid``, ``description`` (for ``algorithms describe``)."""
    rows = []
    own = model.__dict__.get("__annotations__", {})  # the algorithm's own fields first, shared ones after
    for name, info in sorted(model.model_fields.items(), key=lambda item: item[0] not in own):
        default = info.get_default(call_default_factory=True)  # a default_factory field has no plain .default
        rows.append(
            {
                "name": name,
                "default": "required" if info.is_required() else _show(default),
                "valid": valid_values(info),
                "description": info.description or "",
            }
        )
    return rows


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def _example(model: type[HyperParameters], name: str) -> str:
    info = model.model_fields[name]
    extra = info.json_schema_extra or {}
    if isinstance(extra, dict) and "example" in extra:
        return str(extra["example"])
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    if default not in (None, AUTO, [], ()) and not info.is_required():
        return _show(default)
    choices = [c for c in _choices(info.annotation) if c != AUTO]
    if choices:
        return str(choices[0])
    c = _constraints(info)
    for key in ("ge", "gt"):
        if key in c:
            return str(c[key] + (1 if key == "gt" and isinstance(c[key], int) else 0))
    return "VALUE"


def _explain(model: type[HyperParameters], errors: list[Mapping[str, Any]], algorithm: str) -> str:
    """One message for all pydantic errors of one field (a union reports one error per member)."""
    err = errors[0]
    loc = [str(x) for x in err.get("loc", ()) if not isinstance(x, int)]
    name = loc[0] if loc else ""
    kind = err.get("type", "")
    given = err.get("input")
    if kind == "extra_forbidden":
        near = closest(name, list(model.model_fields))
        hint = f" Did you mean {', '.join(f'`{n}`' for n in near)}?" if near else ""
        return f"unknown hyperparameter `{name}`.{hint} See `oculi algorithms describe {algorithm}`."
    if name not in model.model_fields:  # a model-level (cross-field) rule
        return str(err.get("msg", "")).removeprefix("Value error, ")
    info = model.model_fields[name]
    fix = f"Pass `-p {name}={_example(model, name)}`."
    if kind == "missing":
        return f"`{name}` is required. {fix}"
    custom = [e for e in errors if e.get("type") == "value_error"]
    if custom:
        reason = str(custom[0].get("msg", "")).removeprefix("Value error, ").rstrip(".")
        return f"`{name}` got {given!r}: {reason}. {fix}"
    choices = field_choices(info)
    near = closest(str(given), choices) if choices else []
    hint = f" Did you mean {near[0]!r}?" if near else ""
    return f"`{name}` got {given!r}; expected {valid_values(info)}.{hint} {fix}"


def resolve(
    model: type[HyperParameters],
    *layers: Mapping[str, Any] | None,
    algorithm: str = "",
) -> HyperParameters:
    """Build ``model`` from defaults overlaid by each mapping in ``layers`` (recipe, then overrides).

    Raises one :class:`ConfigError` listing every problem with its valid values and the closest names."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            merged.update(layer)
    # SageMaker passes every value as a string; an empty string means "not set".
    merged = {k: v for k, v in merged.items() if not (isinstance(v, str) and v.strip() == "")}
    try:
        return model.model_validate(merged)
    except ValidationError as e:
        by_field: dict[str, list[Any]] = {}
        for err in e.errors():
            by_field.setdefault(str(err["loc"][0]) if err["loc"] else "", []).append(err)
        problems = [_explain(model, errs, algorithm) for errs in by_field.values()]
        lines = [line.strip().removeprefix("- ") for p in problems for line in p.split("\n") if line.strip()]
        head = f"{len(lines)} problem{'s' if len(lines) > 1 else ''} with the hyperparameters"
        raise ConfigError(head + ":\n" + "\n".join(f"  - {line}" for line in lines)) from None
