"""``oculi evaluate MODEL DATA --choose-thresholds RULE [--write]``: evaluate, fit temperature scaling, choose
score thresholds by a rule through the task's ``calibration_data`` hook, and optionally store them in the bundle's
``model.json`` (see :mod:`oculi.evaluation.calibration` and :mod:`oculi.inference.calibration`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from oculi.artifacts import MODEL_JSON, update_meta
from oculi.errors import ArtifactError, ConfigError
from oculi.evaluation.calibration import Rule, ThresholdReport, choose_thresholds
from oculi.inference.calibration import CALIBRATION_KEY
from oculi.inference.predictor import Predictor
from oculi.tasks import evaluate, load_predictor, task_of

THRESHOLDS_FILE = "thresholds.json"


def thresholds_of(predictor: Predictor, report: Any, rule: str | Rule) -> ThresholdReport:
    """Choose thresholds and fit the temperature on an evaluation ``report`` of ``predictor``'s task. A task
    without thresholds (segmentation) is a :class:`ConfigError`."""
    contract = task_of(predictor)
    if contract.calibration_data is None:
        raise ConfigError(f"{predictor.bundle.path} is a {contract.title} model; --choose-thresholds applies to "
                          "classification and object-detection models. Leave it out.")
    return choose_thresholds(contract.calibration_data(report), rule if isinstance(rule, Rule) else Rule.parse(rule))


def evaluate_with_thresholds(model: str | Path | Predictor, data: Any, rule: str, *, write: bool = False,
                             output: Path | None = None, **options: Any) -> tuple[Any, ThresholdReport]:
    """Evaluate ``model`` on ``data`` (as :func:`oculi.tasks.evaluate`, ``options`` passed on), then choose
    thresholds by ``rule`` (``max_f1``, ``precision=P``, ``recall=R``) and fit temperature scaling. With
    ``output`` the report folder also gets ``thresholds.json``; with ``write`` the calibration is stored in the
    bundle folder's ``model.json`` (with the data's fingerprint and the rule) — without it the bundle is not
    touched. Returns ``(report, threshold report)``."""
    parsed = Rule.parse(rule)
    if isinstance(model, Predictor):
        predictor = model
    else:
        predictor = load_predictor(model, "cuda" if torch.cuda.is_available() else "cpu", precision="float32")
    source = predictor.bundle.source
    if write and source is not None and source.is_file():
        raise ArtifactError(f"{source} is an archive; --write stores thresholds in a bundle folder's model.json. "
                            f"Unpack it (mkdir model && tar -xzf {source} -C model) and evaluate the folder.")
    if task_of(predictor).calibration_data is None:
        thresholds_of(predictor, None, parsed)  # raises the task's ConfigError before the evaluation runs
    report = evaluate(predictor, data, output=output, **options)
    chosen = thresholds_of(predictor, report, parsed)
    if output is not None:
        path = Path(output).expanduser() / THRESHOLDS_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(chosen.to_dict(), indent=2) + "\n")
        tmp.replace(path)
        report.files["thresholds"] = path
    if write:
        update_meta(predictor.bundle.path, {CALIBRATION_KEY: chosen.calibration.to_meta()})
        report.files["calibration written to"] = predictor.bundle.path / MODEL_JSON
    return report, chosen


__all__ = ["THRESHOLDS_FILE", "evaluate_with_thresholds", "thresholds_of"]
