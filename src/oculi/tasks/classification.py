"""The image-classification task: class probabilities per image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel

from oculi.algorithms.base import ExportPlan
from oculi.data.formats.manifest import write_manifest
from oculi.data.synthetic import sample_images
from oculi.data.tasks import DATA_TASKS
from oculi.data.transforms import normalize
from oculi.inference.classification import ClassificationPredictor, ClassPrediction
from oculi.inference.codecs import TaskCodec, json_bytes
from oculi.tasks.base import PredictOptions, Proposal, TaskContract

if TYPE_CHECKING:
    from rich.console import Console


class ClassScore(BaseModel):
    """One class and its probability."""

    label: str
    score: float


class ClassificationResponse(BaseModel):
    """Friendly classification answer: classes by decreasing probability."""

    endpoint: str
    variant: str
    task: Literal["classification"]
    predicted_label: str
    predictions: list[ClassScore]
    predicted_labels: list[str] | None = None
    unsure: bool | None = None
    calibration: dict[str, Any] | None = None


CODEC = TaskCodec("classification", "application/json", {
    "application/json": lambda r: json_bytes(r.sagemaker()),
    "application/json;verbose": lambda r: json_bytes(r.sagemaker(verbose=True)),
})


def friendly(result: ClassPrediction, top_k: int | None, min_score: float) -> dict[str, Any]:
    """The friendly answer's body: the predicted label and the ``top_k`` classes (all by default), best first;
    a calibrated answer adds ``predicted_labels`` (multi-label) or ``unsure`` (single-label) and ``calibration``
    (what was applied)."""
    ranked = result.top(top_k or len(result.labels))
    return {"predicted_label": result.predicted_label,
            "predictions": [{"label": label, "score": score} for label, score in ranked], **result.decisions()}


def export_plan(model: Any, spec: dict[str, Any]) -> ExportPlan:
    """``images [batch, 3, H, W]`` → ``logits [batch, num_classes]`` at the bundle's crop size; batches of 3 and 1."""
    mean, std = tuple(spec["mean"]), tuple(spec["std"])
    height, width = int(spec["height"]), int(spec["width"])
    images = sample_images(4, height, width, seed=1)
    samples = [normalize(torch.stack(images[:3]), mean, std), normalize(images[3][None], mean, std)]
    return ExportPlan(["logits"], {"images": {0: "batch"}, "logits": {0: "batch"}}, samples[0], samples)


def evaluate(predictor: ClassificationPredictor, data: Any, **options: Any) -> Any:
    """:func:`~oculi.evaluation.classification.evaluate_classification`; with ``output``, the top-loss gallery
    shows each image's heat map (:func:`heat_maps`) unless ``overlay`` is given (None: plain images)."""
    from oculi.evaluation.classification import evaluate_classification

    if options.get("output") is not None and "overlay" not in options:
        options["overlay"] = heat_maps(predictor)
    return evaluate_classification(predictor, data, **options)


def heat_maps(predictor: ClassificationPredictor) -> Any:
    """The error-analysis galleries' heat-map hook: ``(image path, class name) → uint8 [H, W, 3]``, the class's
    map (the task's default CAM method, float32, no faithfulness test) over the crop the model saw; a name that is
    not one class (a multi-label row such as ``"a, b"``) gets the top-1 class's map."""
    import numpy as np

    from oculi.explain import Explainer
    from oculi.explain.render import overlay

    explainer = Explainer(predictor, faithfulness=False)

    def draw(image: Path, class_name: str) -> Any:
        result = explainer.explain(image, [class_name] if class_name in predictor.classes else None)
        return np.asarray(overlay(result.view, result.explanations[0].saliency))

    return draw


def calibration_data(report: Any) -> Any:
    """The report's probabilities for calibration: softmax log-probabilities with class targets (single-label:
    one "unsure" threshold), or every image × class sigmoid score with its 0/1 truth (multi-label: a threshold per
    class)."""
    from oculi.evaluation.calibration import CalibrationData, logits_of_scores

    probs, targets = report.probabilities.double(), report.targets
    common = {"classes": list(report.classes), "num_images": report.num_images, "source": report.data,
              "fingerprint": report.fingerprint}
    if not report.multi_label:
        return CalibrationData(softmax=True, logits=torch.log(probs.clamp_min(1e-7)), targets=targets.long(),
                               **common)
    rows, columns = probs.shape
    positives = targets.sum(dim=0).tolist()
    return CalibrationData(softmax=False, logits=logits_of_scores(probs).flatten(),
                           targets=targets.double().flatten(), groups=torch.arange(columns).repeat(rows),
                           positives={i: int(v) for i, v in enumerate(positives)}, **common)


def _decision(result: ClassPrediction) -> str:
    """A calibrated prediction's decision for the table: sure/unsure, or the classes over their thresholds."""
    if result.unsure is not None:
        return "unsure" if result.unsure else "sure"
    if result.predicted_labels is not None:
        return ", ".join(result.predicted_labels) or "none"
    return ""


def show(predictor: ClassificationPredictor, images: list[Path], options: PredictOptions, console: Console) -> None:
    """``oculi predict``: the ``top_k`` classes per image as a table, or SageMaker's JSON per image."""
    from rich.table import Table

    results = predictor.predict(list(images), threshold=options.threshold)
    if options.as_json or options.verbose:
        for result in results:
            console.print_json(json.dumps(result.sagemaker(verbose=options.verbose)), indent=None)
        return
    table = Table("image", "class", "probability", "decision")
    for path, result in zip(images, results, strict=True):
        decision = _decision(result)
        for rank, (label, prob) in enumerate(result.top(options.top_k)):
            table.add_row(str(path) if rank == 0 else "", label, f"{prob:.4f}", decision if rank == 0 else "")
    console.print(table)


def view_labels(target: Any, classes: list[str]) -> dict[str, Any]:
    """The console's labels of a sample: ``{"classes": [name, …]}`` (one name, or several for multi-label)."""
    indices = [] if target is None else list(target) if isinstance(target, tuple | list) else [int(target)]
    return {"classes": [classes[i] if 0 <= i < len(classes) else str(i) for i in indices]}


def embedding_tap(network: Any) -> Any:
    """Penultimate features: the input of the classifier's last linear layer ``[B, D]``."""
    from oculi.analysis.embeddings import last_linear_tap

    return last_linear_tap(network)


def audit(sets: dict[str, Any], context: Any) -> Any:
    """Label issues from out-of-fold (or the given model's) class probabilities with cleanlab; see
    :func:`oculi.analysis.labels.classification_label_issues`."""
    from oculi.analysis.labels import classification_label_issues

    return classification_label_issues(sets, context)


def edge(predictor: ClassificationPredictor) -> tuple[dict[str, Any], dict[str, Any]]:
    """The edge package's settings: the input spec (resize, crop, mean/std, softmax or sigmoid)."""
    return {"input": predictor.spec}, {}


def propose(predictor: ClassificationPredictor, images: list[Path], threshold: float = 0.5,
            measure: str = "margin") -> list[Proposal]:
    """Pre-labels for labeling: the most probable class, its probability as the confidence, and the uncertainty
    by ``measure`` — ``margin`` (1 − (p₁ − p₂), the gap between the two best classes) or ``entropy`` (of the
    probabilities, divided by log(classes) so it lies in [0, 1])."""
    import math

    out = []
    for result in predictor.predict(list(images)):
        probs = sorted(result.probabilities, reverse=True)
        if measure == "entropy":
            uncertainty = -sum(p * math.log(p) for p in probs if p > 0) / math.log(max(2, len(probs)))
        else:
            uncertainty = 1.0 - (probs[0] - (probs[1] if len(probs) > 1 else 0.0))
        out.append(Proposal({"classes": [result.predicted_index]}, float(probs[0]), float(uncertainty)))
    return out
def explanation_target(predictor: Any) -> Any:
    """The CAM adapter of this task (:class:`~oculi.explain.targets.ClassificationTarget`)."""
    from oculi.explain.targets import ClassificationTarget

    return ClassificationTarget(predictor)


def monitoring_statistics(predictor: Any, images: list[Path]) -> list[dict[str, Any]]:
    """What a monitor tracks of each prediction: the predicted class and its probability."""
    return [{"predicted_class": r.predicted_label, "confidence": float(max(r.probabilities))}
            for r in predictor.predict(list(images))]


CONTRACT = TaskContract(
    name="classification", title="image classification", predictor=ClassificationPredictor, codec=CODEC,
    evaluate=evaluate, export_plan=export_plan, friendly=friendly, friendly_schema=ClassificationResponse,
    show=show, transform_batch_size=32, data=DATA_TASKS.get("classification"), metric="accuracy",
    annotation_kind="class",
    view="classification", view_labels=view_labels, edge=edge,
    audit=audit, embedding_tap=embedding_tap,
    write_manifest=write_manifest,
    propose=propose, monitoring_statistics=monitoring_statistics,
    explanation_target=explanation_target, calibration_data=calibration_data,
)
