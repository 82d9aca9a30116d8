"""Hyperparameter ranges in SageMaker's shapes: the SDK's ``ContinuousParameter`` / ``IntegerParameter`` /
``CategoricalParameter``, the CLI's ``--range name=continuous:lo:hi[:log]`` strings and the ``ParameterRanges`` of
a ``HyperParameterTuningJobConfig`` JSON; checked against an algorithm's hyperparameter model before any trial
runs, and turned into Optuna distributions.

ScalingType (SageMaker's): ``Auto`` (linear here; SageMaker may pick log itself), ``Linear``, ``Logarithmic``
(both bounds > 0) and ``ReverseLogarithmic`` (continuous only, 0 ≤ lo < hi < 1: searched as log(1 − x), so values
near 1 are explored finely — e.g. a momentum).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oculi.errors import ConfigError

SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
_SHORT_SCALING = {"log": "Logarithmic", "linear": "Linear", "auto": "Auto", "reverse-log": "ReverseLogarithmic",
                  "reverselog": "ReverseLogarithmic"}


def _scaling(value: str, where: str) -> str:
    """A ScalingType name (or the CLI's short form) in SageMaker's spelling; anything else is a ConfigError."""
    canon = {s.lower(): s for s in SCALING_TYPES} | _SHORT_SCALING
    found = canon.get(str(value).strip().lower())
    if found is None:
        raise ConfigError(f"{where}: scaling {value!r} is not one of {', '.join(SCALING_TYPES)} (or log, linear).")
    return found


@dataclass(frozen=True)
class ContinuousParameter:
    """A real-valued range ``[min_value, max_value]`` (SageMaker SDK's ``ContinuousParameter``)."""

    min_value: float
    max_value: float
    scaling_type: str = "Auto"

    kind = "continuous"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scaling_type", _scaling(self.scaling_type, "ContinuousParameter"))


@dataclass(frozen=True)
class IntegerParameter:
    """An integer range ``[min_value, max_value]``, both included (SageMaker SDK's ``IntegerParameter``)."""

    min_value: int
    max_value: int
    scaling_type: str = "Auto"

    kind = "integer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scaling_type", _scaling(self.scaling_type, "IntegerParameter"))


@dataclass(frozen=True)
class CategoricalParameter:
    """A list of values tried as they are (SageMaker SDK's ``CategoricalParameter``); kept as strings, the way
    SageMaker passes every hyperparameter."""

    values: tuple[str, ...]

    kind = "categorical"

    def __init__(self, values: Any) -> None:
        items = [values] if isinstance(values, str | int | float) else list(values)
        object.__setattr__(self, "values", tuple(str(v) for v in items))


Parameter = ContinuousParameter | IntegerParameter | CategoricalParameter


def check_range(name: str, p: Parameter, where: str) -> None:
    """The range's own rules (bounds in order, log scales positive, categories unique and non-empty)."""
    if isinstance(p, CategoricalParameter):
        if not p.values:
            raise ConfigError(f"{where}: categorical range of {name} has no values; list them, e.g. "
                              f"--range {name}=categorical:sgd,adam.")
        if len(set(p.values)) != len(p.values):
            raise ConfigError(f"{where}: categorical range of {name} repeats a value ({', '.join(p.values)}).")
        return
    if isinstance(p, IntegerParameter) and (int(p.min_value) != p.min_value or int(p.max_value) != p.max_value):
        raise ConfigError(f"{where}: integer range of {name} needs whole-number bounds, got {p.min_value}:"
                          f"{p.max_value}; use continuous:{p.min_value}:{p.max_value} for a real-valued one.")
    if not (math.isfinite(p.min_value) and math.isfinite(p.max_value)) or p.min_value >= p.max_value:
        raise ConfigError(f"{where}: range of {name} needs min < max, got {p.min_value}:{p.max_value}.")
    if p.scaling_type == "Logarithmic" and p.min_value <= 0:
        raise ConfigError(f"{where}: Logarithmic scaling of {name} needs bounds > 0, got {p.min_value}; use Linear "
                          "or a positive lower bound.")
    if p.scaling_type == "ReverseLogarithmic":
        if isinstance(p, IntegerParameter):
            raise ConfigError(f"{where}: ReverseLogarithmic scaling is for continuous ranges only ({name}).")
        if not (0 <= p.min_value < p.max_value < 1):
            raise ConfigError(f"{where}: ReverseLogarithmic scaling of {name} needs 0 ≤ min < max < 1, got "
                              f"{p.min_value}:{p.max_value}.")


def parse_range(text: str) -> tuple[str, Parameter]:
    """``name=continuous:lo:hi[:log|linear|reverse-log]``, ``name=integer:lo:hi[:log]`` or
    ``name=categorical:a,b,c`` → ``(name, parameter)``; a malformed one is a ConfigError showing the forms."""
    forms = ("expected NAME=continuous:LO:HI[:log], NAME=integer:LO:HI[:log] or NAME=categorical:A,B,…, e.g. "
             "--range learning_rate=continuous:0.0001:0.1:log")
    name, sep, body = text.partition("=")
    name = name.strip()
    kind, _, rest = body.partition(":")
    kind = kind.strip().lower()
    where = f"--range {text}"
    if not sep or not name or kind not in ("continuous", "integer", "categorical"):
        raise ConfigError(f"{where}: {forms}.")
    if kind == "categorical":
        values = [v.strip() for v in rest.split(",") if v.strip()]
        p: Parameter = CategoricalParameter(values)
    else:
        parts = rest.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError(f"{where}: {forms}.")
        scaling = _scaling(parts[2], where) if len(parts) == 3 else "Auto"
        try:
            if kind == "integer":
                lo, hi = float(parts[0]), float(parts[1])
                if lo != int(lo) or hi != int(hi):
                    raise ValueError
                p = IntegerParameter(int(lo), int(hi), scaling)
            else:
                p = ContinuousParameter(float(parts[0]), float(parts[1]), scaling)
        except ValueError:
            raise ConfigError(f"{where}: the bounds must be {'integers' if kind == 'integer' else 'numbers'}; "
                              f"{forms}.") from None
    check_range(name, p, where)
    return name, p


def ranges_from_sagemaker(parameter_ranges: Mapping[str, Any], where: str) -> dict[str, Parameter]:
    """SageMaker's ``ParameterRanges`` (``ContinuousParameterRanges`` / ``IntegerParameterRanges`` /
    ``CategoricalParameterRanges``, each a list of ``{"Name", "MinValue", "MaxValue", "ScalingType"}`` or
    ``{"Name", "Values"}``; values are strings there) → ``{name: parameter}``."""
    known = {"ContinuousParameterRanges", "IntegerParameterRanges", "CategoricalParameterRanges",
             "AutoParameters"}
    unknown = set(parameter_ranges) - known
    if unknown:
        raise ConfigError(f"{where}: ParameterRanges has unknown key(s) {', '.join(sorted(unknown))}; expected "
                          f"{', '.join(sorted(known - {'AutoParameters'}))}.")
    if parameter_ranges.get("AutoParameters"):
        raise ConfigError(f"{where}: AutoParameters (SageMaker Autotune) is not supported; give the ranges.")
    out: dict[str, Parameter] = {}
    for key, kind in (("ContinuousParameterRanges", "continuous"), ("IntegerParameterRanges", "integer"),
                      ("CategoricalParameterRanges", "categorical")):
        for i, item in enumerate(parameter_ranges.get(key) or []):
            at = f"{where}: ParameterRanges.{key}[{i}]"
            if not isinstance(item, Mapping) or "Name" not in item:
                raise ConfigError(f"{at} needs a \"Name\".")
            name = str(item["Name"])
            if name in out:
                raise ConfigError(f"{at}: {name} has two ranges; give each hyperparameter one.")
            try:
                if kind == "categorical":
                    if not isinstance(item.get("Values"), list):
                        raise ConfigError(f"{at} ({name}) needs \"Values\": a list of strings.")
                    p: Parameter = CategoricalParameter(item["Values"])
                else:
                    lo, hi = float(item["MinValue"]), float(item["MaxValue"])
                    scaling = _scaling(item.get("ScalingType", "Auto"), at)
                    if kind == "integer":
                        if lo != int(lo) or hi != int(hi):
                            raise ConfigError(f"{at} ({name}): MinValue/MaxValue must be integers.")
                        p = IntegerParameter(int(lo), int(hi), scaling)
                    else:
                        p = ContinuousParameter(lo, hi, scaling)
            except KeyError as e:
                raise ConfigError(f"{at} ({name}) needs {e.args[0]!r}.") from None
            except ValueError:
                raise ConfigError(f"{at} ({name}): MinValue/MaxValue must be numbers (as strings), e.g. "
                                  "\"0.001\".") from None
            check_range(name, p, at)
            out[name] = p
    return out


def to_json(ranges: Mapping[str, Parameter]) -> dict[str, Any]:
    """Ranges → SageMaker's ``ParameterRanges`` JSON (what a tuning job stores and ``describe`` shows)."""
    out: dict[str, list[dict[str, Any]]] = {"ContinuousParameterRanges": [], "IntegerParameterRanges": [],
                                            "CategoricalParameterRanges": []}
    for name, p in ranges.items():
        if isinstance(p, CategoricalParameter):
            out["CategoricalParameterRanges"].append({"Name": name, "Values": list(p.values)})
        else:
            key = "IntegerParameterRanges" if isinstance(p, IntegerParameter) else "ContinuousParameterRanges"
            out[key].append({"Name": name, "MinValue": str(p.min_value), "MaxValue": str(p.max_value),
                             "ScalingType": p.scaling_type})
    return out


def check_against(model: Any, algorithm: str, ranges: Mapping[str, Parameter], static: Mapping[str, Any]) -> None:
    """Check every range against ``algorithm``'s hyperparameter model (a pydantic ``HyperParameters`` class):
    the name exists, is not also fixed with ``-p``, and each bound / category is a valid value of it — with the
    static hyperparameters around it, so cross-field rules count too. One ConfigError lists every problem."""
    from oculi.config import resolve, valid_values
    from oculi.registry import closest

    resolve(model, {k: v for k, v in static.items() if k not in ranges}, algorithm=algorithm)  # -p values alone
    problems = []
    for name, p in ranges.items():
        if name not in model.model_fields:
            near = closest(name, list(model.model_fields))
            hint = f" Did you mean {', '.join(near)}?" if near else ""
            problems.append(f"{name} is not a hyperparameter of {algorithm}.{hint} See `oculi algorithms describe "
                            f"{algorithm}`.")
            continue
        if name in static:
            problems.append(f"{name} is both fixed (-p {name}={static[name]}) and tuned; drop one.")
            continue
        if isinstance(p, CategoricalParameter):
            values = list(p.values)
        elif isinstance(p, IntegerParameter):
            values = [str(int(p.min_value)), str(int(p.max_value))]
        else:
            values = [repr(float(p.min_value)), repr(float(p.max_value))]
        for value in values:
            try:
                resolve(model, static, {name: value}, algorithm=algorithm)
            except ConfigError as e:
                detail = str(e).splitlines()[-1].strip().removeprefix("- ").split(" Pass `-p")[0]
                problems.append(f"{name}={value} is outside its valid values ({valid_values(model.model_fields[name])})"
                                f": {detail}")
                break
    if problems:
        raise ConfigError(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} with the tuning ranges of "
                          f"{algorithm}:\n" + "\n".join(f"  - {p}" for p in problems))


def distribution(p: Parameter) -> Any:
    """The Optuna distribution searched for ``p`` (ReverseLogarithmic: ``log(1 − x)`` on a log scale, mapped back
    by :func:`value_of`)."""
    import optuna.distributions as D

    if isinstance(p, CategoricalParameter):
        return D.CategoricalDistribution(list(p.values))
    log = p.scaling_type == "Logarithmic"
    if isinstance(p, IntegerParameter):
        return D.IntDistribution(int(p.min_value), int(p.max_value), log=log)
    if p.scaling_type == "ReverseLogarithmic":
        return D.FloatDistribution(1 - p.max_value, 1 - p.min_value, log=True)
    return D.FloatDistribution(float(p.min_value), float(p.max_value), log=log)


def value_of(p: Parameter, searched: Any) -> str:
    """The hyperparameter's value (a SageMaker string) for the value Optuna suggested."""
    if isinstance(p, CategoricalParameter):
        return str(searched)
    if isinstance(p, IntegerParameter):
        return str(int(searched))
    x = 1 - float(searched) if p.scaling_type == "ReverseLogarithmic" else float(searched)
    return f"{x:.6g}"
