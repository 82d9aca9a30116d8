"""Classification metrics (torchmetrics) on predicted probabilities, returned as plain Python numbers.

Conventions: ``probabilities`` is ``float32 [N, C]`` (softmax rows for single-label models, independent sigmoids for
multi-label ones); single-label ``targets`` are ``int64 [N]`` class indices, multi-label ``targets`` are multi-hot
``[N, C]`` (0/1). The confusion matrix has one row per true class and one column per predicted class. A class with
no true and no predicted image is left out of the macro averages; a precision/recall/F1 whose denominator is zero
is 0."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchmetrics.functional import classification as tmf

from oculi.errors import ConfigError, DataError
from oculi.types import SampleSet

MULTI_LABEL_THRESHOLD = 0.5


@dataclass
class Scores:
    """Metrics of one evaluation: ``metrics`` (overall numbers: ``accuracy``, ``macro_precision`` …),
    ``per_class`` (class name → precision, recall, f1, support) and, for single-label models, ``confusion``
    (``C × C`` counts, rows = true class, columns = predicted class; None for multi-label models)."""

    metrics: dict[str, float]
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]] | None


def check_top_k(top_k: int, num_classes: int) -> None:
    """Raise :class:`ConfigError` unless ``1 ≤ top_k ≤ num_classes``."""
    if not 1 <= top_k <= num_classes:
        raise ConfigError(f"`top_k` got {top_k}; the model has {num_classes} classes, so pass a value from 1 to "
                          f"{num_classes} (e.g. --top-k {min(5, num_classes)}).")


def _per_class(precision: torch.Tensor, recall: torch.Tensor, f1: torch.Tensor, support: torch.Tensor,
               classes: list[str]) -> dict[str, dict[str, float]]:
    return {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])} for i, name in enumerate(classes)}


def single_label_scores(probabilities: torch.Tensor, targets: torch.Tensor, classes: list[str],
                        top_k: int | None = None) -> Scores:
    """Scores of a single-label model: ``accuracy`` (argmax = true class), ``top_k_accuracy`` and ``top_k``
    (true class among the ``top_k`` most probable; only when ``top_k`` is given), macro precision/recall/F1,
    per-class precision/recall/F1/support and the confusion matrix.

    ``probabilities``: ``float [N, C]``; ``targets``: ``int64 [N]`` in ``0 … C-1``; ``classes``: the ``C`` names.
    Raises :class:`ConfigError` when ``top_k`` is outside ``1 … C``."""
    num_classes = len(classes)
    if top_k is not None:
        check_top_k(top_k, num_classes)
    probs = probabilities.float().cpu()
    target = targets.long().cpu()
    common = {"num_classes": num_classes}
    metrics = {"accuracy": float(tmf.multiclass_accuracy(probs, target, average="micro", **common))}
    if top_k is not None:
        metrics["top_k_accuracy"] = float(tmf.multiclass_accuracy(probs, target, average="micro", top_k=top_k,
                                                                  **common))
        metrics["top_k"] = top_k
    for name, fn in (("precision", tmf.multiclass_precision), ("recall", tmf.multiclass_recall),
                     ("f1", tmf.multiclass_f1_score)):
        metrics[f"macro_{name}"] = float(fn(probs, target, average="macro", **common))
    per_class = _per_class(
        tmf.multiclass_precision(probs, target, average=None, **common),
        tmf.multiclass_recall(probs, target, average=None, **common),
        tmf.multiclass_f1_score(probs, target, average=None, **common),
        torch.bincount(target, minlength=num_classes),
        classes,
    )
    confusion = tmf.multiclass_confusion_matrix(probs, target, **common)
    return Scores(metrics, per_class, confusion.tolist())


def multi_label_scores(probabilities: torch.Tensor, targets: torch.Tensor, classes: list[str],
                       threshold: float = MULTI_LABEL_THRESHOLD) -> Scores:
    """Scores of a multi-label model, a class counting as predicted when its probability is ≥ ``threshold``:
    ``accuracy`` (subset accuracy: the predicted set equals the true set), ``hamming`` (fraction of correct
    image × class decisions), macro precision/recall/F1, ``threshold`` and per-class precision/recall/F1/support.

    ``probabilities``: ``float [N, C]``; ``targets``: multi-hot ``[N, C]``; ``classes``: the ``C`` names."""
    num_classes = len(classes)
    probs = probabilities.float().cpu()
    target = targets.long().cpu()
    common = {"num_labels": num_classes, "threshold": threshold}
    metrics = {
        "accuracy": float(tmf.multilabel_exact_match(probs, target, **common)),
        "hamming": float(tmf.multilabel_accuracy(probs, target, average="micro", **common)),
    }
    for name, fn in (("precision", tmf.multilabel_precision), ("recall", tmf.multilabel_recall),
                     ("f1", tmf.multilabel_f1_score)):
        metrics[f"macro_{name}"] = float(fn(probs, target, average="macro", **common))
    metrics["threshold"] = threshold
    per_class = _per_class(
        tmf.multilabel_precision(probs, target, average=None, **common),
        tmf.multilabel_recall(probs, target, average=None, **common),
        tmf.multilabel_f1_score(probs, target, average=None, **common),
        target.sum(dim=0),
        classes,
    )
    return Scores(metrics, per_class, None)


def check_evaluation_data(sample_set: SampleSet, classes: list[str], model: str, empty_hint: str) -> None:
    """Raise one :class:`DataError` listing the reader's error findings (unknown classes, bad lines, missing
    images), or saying the set is empty (``empty_hint`` says what to pass)."""
    source = sample_set.source or "the data"
    errors = [f for f in sample_set.findings if f.level == "error"]
    if errors:
        listed = "\n".join(f"  {f.location() or source}: {f.message}" for f in errors[:10])
        more = f"\n  … and {len(errors) - 10} more" if len(errors) > 10 else ""
        raise DataError(f"{source}: cannot be evaluated with the model {model} (classes: {', '.join(classes)}):"
                        f"\n{listed}{more}\nFix or leave out those entries (`oculi data check` lists them all).")
    if not sample_set.samples:
        raise DataError(f"{source}: {empty_hint}")
