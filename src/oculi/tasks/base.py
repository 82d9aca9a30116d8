"""The task contract: everything that differs per task (classification, detection, segmentation) after training,
as one registered :class:`TaskContract` per task. Consumers (cli, serving, batch, export, evaluation, and the
milestone-2 rooms) look a task up in :data:`oculi.tasks.TASKS` instead of branching on its name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from oculi.algorithms.base import ExportPlan
from oculi.data.tasks import DataTask
from oculi.inference.codecs import TaskCodec
from oculi.inference.predictor import Predictor
from oculi.types import SampleSet

if TYPE_CHECKING:
    from rich.console import Console


@dataclass(frozen=True)
class PredictOptions:
    """What ``oculi predict`` was asked for; each task uses the options that apply to it.

    ``top_k`` (classification rows), ``as_json`` (SageMaker's JSON per image), ``verbose`` (classification's verbose
    JSON), ``annotation`` (detection's training-schema JSON), ``min_score`` (detection threshold), ``png`` (write the
    segmentation mask PNG here), ``draw`` (write the image with the prediction drawn here); with several images,
    ``png``/``draw`` get the image's stem appended. ``threshold``: overrides the bundle's calibrated thresholds
    (see :func:`~oculi.inference.calibration.parse_threshold`)."""

    top_k: int = 5
    as_json: bool = False
    verbose: bool = False
    annotation: bool = False
    min_score: float = 0.0
    png: Path | None = None
    draw: Path | None = None
    threshold: str | None = None


def numbered(path: Path, image: Path, many: bool) -> Path:
    """``path`` itself for one image; ``<stem>-<image stem><suffix>`` beside it when several images share it."""
    return path.with_name(f"{path.stem}-{image.stem}{path.suffix}") if many else path


def histogram(name: str, title: str, unit: str, values: Any, edges: list[float], note: str = "") -> dict[str, Any]:
    """``{"name", "title", "unit", "note", "bins": [bin labels in order], "counts": {bin label: n}}``: ``values``
    counted into the bins between consecutive ``edges`` (the last bin open-ended), labelled ``"lo–hi"`` and
    ``"≥ lo"``."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    bounds = [*edges, np.inf]
    labels = [f"{edges[i]:g}–{edges[i + 1]:g}" for i in range(len(edges) - 1)] + [f"≥ {edges[-1]:g}"]
    counts = np.histogram(values, bins=bounds)[0] if values.size else np.zeros(len(labels), dtype=int)
    return {"name": name, "title": title, "unit": unit, "note": note, "bins": labels,
            "counts": {label: int(n) for label, n in zip(labels, counts, strict=True)}}


@dataclass(frozen=True)
class Proposal:
    """A model's pre-label of one image for the labeling room: ``label`` in the annotation kind's JSON
    (``{"classes": [index, …]}``; ``{"boxes": [{"box": [x1, y1, x2, y2] pixels, "label", "confidence"}], "width",
    "height"}``; for masks ``{"width", "height"}`` with the class-index ``mask`` ``uint8 [H, W]`` beside it),
    ``confidence`` in [0, 1] (what automated labeling thresholds) and ``uncertainty`` (higher = label first)."""

    label: dict[str, Any]
    confidence: float
    uncertainty: float
    mask: Any = None


@dataclass(frozen=True)
class TaskContract:
    """One task's contract.

    - ``predictor``: the :class:`~oculi.inference.predictor.Predictor` subclass for its bundles.
    - ``codec``: request/response content types (SageMaker's shapes) for endpoints and batch transform.
    - ``evaluate(predictor, data, *, output, top_k, image_roots, batch_size, progress)``: the evaluator; returns
      its report object (``metrics``, ``write(folder)``).
    - ``export_plan(model, spec)``: how its network is exported to ONNX and checked (an algorithm's own
      ``export_plan`` takes precedence, e.g. SSD's); None = the algorithm must supply one.
    - ``friendly(result, top_k, min_score)``: the body of the friendly JSON answer (``/endpoints/NAME/predict``)
      below the endpoint/variant/task head; ``friendly_schema`` its pydantic model (for the OpenAPI document).
    - ``show(predictor, images, options, console)``: ``oculi predict``'s output for a list of image files.
    - ``transform_batch_size``: batch transform's default images per model call.
    - ``data``: the data layer's half (:class:`~oculi.data.tasks.DataTask`): recognition, data check,
      conversion.
    - ``metric``: the headline key of its evaluator's ``report.metrics`` (higher is better): what gates a
      quantized export and what an edge benchmark reports.
    - ``annotation_kind``: what a labeler draws for it (``class``, ``box``, ``mask``).
    - ``view``: the console's drawing module for its labels and answers (``oculi/console/static/views/<view>.js``);
      ``view_labels(target, classes)``: a sample's target as the JSON that module draws (class names; boxes
      ``{"box": [x1, y1, x2, y2] absolute pixels, "label"}``; a mask as an RGBA PNG data URL).
    - ``edge(predictor)``: what its edge package's ``oculi_edge.json`` holds besides the task, classes and model
      file (input spec, output format, detection's decoder) and the arrays written beside it (file name → array).
    - Milestone-2 hooks, filled by the issues that need them (None until then): ``explanation_target`` (what a
      CAM explains for one result), ``monitoring_statistics(predictor, images)`` (per image file, what a monitor
      tracks of its prediction: name → number, text, or a list of either, one per box),
      ``audit`` (the data audit's label-issue finder: ``audit(sets, context)`` → findings, see
      :mod:`oculi.analysis.labels`).
    - Analysis hooks (:mod:`oculi.analysis`): ``embedding_tap(network)`` — where the penultimate features
      ``[B, D]`` of the predictor's ``network()`` are: ``(module, reduce(inputs, output))``, read by a forward hook
      (:mod:`oculi.analysis.embeddings`: alone, or during the predictor's own pass); ``embedding_regions(target)``
      — the ``xyxy`` pixel boxes of a sample worth embedding as crops besides the whole image (detection: its
      boxes); ``write_manifest(sample_set, path)`` — write samples of the task as an augmented manifest (the
      audit's ``clean.manifest``).
    - Labeling hook (:mod:`oculi.labeling`): ``propose(predictor, images, threshold)`` — one :class:`Proposal` per
      image file: the pre-label, its confidence and the uncertainty the labeling queue is ordered by (``threshold``
      is detection's decision threshold).
    - ``label_statistics(sample_set)``: histograms of its labels' geometry for the console's dataset page (boxes'
      sizes, masks' areas) as :func:`histogram` dicts; None = nothing beyond the class counts.
    - ``calibration_data(report)``: an evaluation report's scores as
      :class:`~oculi.evaluation.calibration.CalibrationData`, for ``oculi evaluate --choose-thresholds`` (None: the
      task takes no thresholds)."""

    name: str
    title: str
    predictor: type[Predictor]
    codec: TaskCodec
    evaluate: Callable[..., Any]
    export_plan: Callable[[Any, dict[str, Any]], ExportPlan] | None
    friendly: Callable[[Any, int | None, float], dict[str, Any]]
    friendly_schema: type[BaseModel]
    show: Callable[[Predictor, list[Path], PredictOptions, Console], None]
    transform_batch_size: int
    data: DataTask
    metric: str
    annotation_kind: str
    view: str
    view_labels: Callable[[Any, list[str]], dict[str, Any]]
    edge: Callable[[Any], tuple[dict[str, Any], dict[str, Any]]]
    explanation_target: Callable[..., Any] | None = None
    monitoring_statistics: Callable[..., Any] | None = None
    audit: Callable[..., Any] | None = None
    embedding_tap: Callable[[Any], Any] | None = None
    embedding_regions: Callable[[Any], list[tuple[float, float, float, float]]] = lambda target: []
    write_manifest: Callable[[SampleSet, Path], Any] | None = None
    propose: Callable[..., list[Proposal]] | None = None
    label_statistics: Callable[[Any], list[dict[str, Any]]] | None = None
    calibration_data: Callable[[Any], Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)
