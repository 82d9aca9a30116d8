"""Label issues for classification data: cleanlab's ``find_label_issues`` on class probabilities that did not
see the label they judge — out-of-fold predictions of ``k`` short seeded trainings of the built-in
image-classification algorithm (ordinary training jobs, listed by ``oculi jobs list``) — or, with ``--model``,
the given bundle's in-sample probabilities (weaker: a model that trained on a wrong label tends to agree with it).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from oculi.analysis.audit import AuditContext, AuditFinding, Item, _finding, progress_bar
from oculi.errors import ConfigError, DataError
from oculi.types import BoxTarget, SampleSet

# Fold trainings: ImageNet transfer learning with a frozen backbone, short and seeded; `-p key=value` overrides.
FOLD_HYPERPARAMETERS = {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "freeze": "backbone",
                        "epochs": "4", "image_shape": "3,160,160", "mini_batch_size": "16", "learning_rate": "0.01",
                        "augmentation_type": "crop"}


def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per sample, stratified by class (each class dealt round-robin after a seeded shuffle)."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    offset = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return fold


def out_of_fold(sample_set: SampleSet, context: AuditContext, algorithm: str, defaults: dict[str, str],
                strata: np.ndarray, predict: Callable[[Any, list[Path]], list[Any]]) -> list[Any]:
    """Each sample's prediction (``predict(predictor, images)``, one per image) from the fold model that did not
    train on it. The folds are stratified by ``strata``; each is an attached ``algorithm`` training job on
    manifests (the task contract's ``write_manifest``) written under ``context.output/folds/``; ``defaults`` are
    its hyperparameters below ``context.hyperparameters``."""
    from oculi.jobs.runner import JobSpec, run_attached, submit
    from oculi.tasks import get_task, load_predictor

    write = get_task(sample_set.task).write_manifest
    fold = fold_assignment(strata, context.folds, context.seed)
    out: list[Any] = [None] * len(sample_set)
    hyperparameters = {**defaults, "seed": str(context.seed), **context.hyperparameters}
    for k in range(context.folds):
        held = np.flatnonzero(fold == k)
        folder = context.output / "folds" / f"fold-{k}"
        folder.mkdir(parents=True, exist_ok=True)
        write(sample_set.with_samples([sample_set.samples[n] for n in np.flatnonzero(fold != k)]),
              folder / "train.manifest")
        write(sample_set.with_samples([sample_set.samples[n] for n in held]), folder / "validation.manifest")
        context.echo(f"fold {k + 1}/{context.folds}: training on {len(sample_set) - len(held)} images, "
                     f"predicting {len(held)}")
        job = submit(JobSpec(algorithm=algorithm, channels={"train": str(folder / "train.manifest"),
                                                            "validation": str(folder / "validation.manifest")},
                             hyperparameters=hyperparameters), attached=True)
        done = run_attached(job, echo=None)
        context.jobs.append(job["name"])
        if done.get("status") != "Completed":
            raise DataError(f"fold {k + 1} training job {job['name']} ended {done.get('status')}: "
                            f"{done.get('failure_reason') or 'see `oculi jobs logs ' + job['name'] + '`'}")
        predictor = load_predictor(job["model_dir"], precision="float32")
        if k == 0:
            context.embedding_model = Path(job["model_dir"])
        for n, prediction in zip(held, predict(predictor, [sample_set.samples[n].image for n in held]),
                                 strict=True):
            out[n] = prediction
    return out


def _probabilities(predictor: Any, images: list[Path], classes: list[str], progress: bool) -> np.ndarray:
    """The predictor's probabilities ``[N, len(classes)]`` in the data's class order (matched by name)."""
    missing = [c for c in classes if c not in predictor.classes]
    if missing:
        raise DataError(f"{predictor.bundle.path}: the model does not know the data's classes {missing}; audit "
                        "with a model trained on these classes, or leave out --model to train fold models.")
    order = [predictor.classes.index(c) for c in classes]
    out = []
    with progress_bar("predicting", len(images), progress) as advance:
        for start in range(0, len(images), 32):
            out.append(predictor.probabilities(images[start:start + 32]).numpy()[:, order])
            advance(len(images[start:start + 32]))
    probabilities = np.concatenate(out) if out else np.zeros((0, len(classes)), np.float32)
    return probabilities / np.clip(probabilities.sum(1, keepdims=True), 1e-12, None)


def classification_label_issues(sets: dict[str, SampleSet], context: AuditContext) -> list[AuditFinding]:
    """Findings of kind ``label_issue`` over every split together: cleanlab's ``find_label_issues``
    (``prune_by_noise_rate``) on out-of-fold probabilities (or ``context.model``'s, in-sample); the score is
    1 − cleanlab's label quality (self-confidence), the fix names the class the model believes."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    train = sets["train"]
    if train.multi_label or any(isinstance(s.target, tuple) for ss in sets.values() for s in ss.samples):
        context.notes.append("label issues are not checked for multi-label data yet")
        return []
    items = [Item(split, n, s) for split, ss in sets.items() for n, s in enumerate(ss.samples)]
    together = train.with_samples([i.sample for i in items])
    counts = np.bincount([s.target for s in together.samples], minlength=train.num_classes)
    if (counts[counts > 0] < context.folds).any() or (counts > 0).sum() < 2:
        context.notes.append(f"label issues need at least 2 classes with {context.folds} images each")
        return []
    if context.model is not None:
        from oculi.tasks import load_predictor

        probabilities = _probabilities(load_predictor(context.model, precision="float32"),
                                       [s.image for s in together.samples], train.classes, context.progress)
        context.label_scores = "in_sample"
        context.notes.append("label scores come from --model, which may have trained on these labels "
                             "(in-sample): wrong labels it learned are missed")
    else:
        if context.folds > min(counts[counts > 0]):
            raise ConfigError(f"--folds {context.folds} exceeds the smallest class's {min(counts[counts > 0])} "
                              "images; pass a smaller --folds.")
        defaults = dict(FOLD_HYPERPARAMETERS)
        if {"architecture", "num_layers"} & set(context.hyperparameters):  # another network: no transfer set-up
            for key in ("architecture", "use_pretrained_model", "freeze"):
                defaults.pop(key)
        labels = np.array([s.target for s in together.samples])
        probabilities = np.stack(out_of_fold(
            together, context, "image-classification", defaults, labels,
            lambda predictor, images: list(_probabilities(predictor, images, train.classes, context.progress))))
        context.label_scores = "out_of_fold"
    labels = np.array([s.target for s in together.samples])
    issues = find_label_issues(labels, probabilities, filter_by="prune_by_noise_rate")
    quality = get_label_quality_scores(labels, probabilities)
    findings = []
    for n in np.flatnonzero(issues):
        believed = int(np.argmax(probabilities[n]))
        findings.append(_finding(
            items[n], "label_issue", float(1 - quality[n]),
            f"check the label: given {train.classes[labels[n]]!r}, the model says {train.classes[believed]!r} "
            f"({probabilities[n, believed]:.2f})",
            detail=f"given {train.classes[labels[n]]}, P(given) = {probabilities[n, labels[n]]:.2f}"))
    return findings


# Detection folds: SSD on ImageNet EfficientNet-Lite0, short and seeded; `-p key=value` overrides.
DETECTION_FOLD_HYPERPARAMETERS = {"base_network": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": "10",
                                  "image_shape": "256", "mini_batch_size": "8"}
_DETECTION_KINDS = (  # cleanlab box score, finding kind, fix
    ("overlooked", "missing_box", "a {label} the model sees ({score:.2f}) at {box} has no box: add it"),
    ("swap", "swapped_class", "the {label} box at {box} looks like another class: check its class"),
    ("badloc", "misplaced_box", "the {label} box at {box} fits the object badly: redraw it"),
)


def _cleanlab_boxes(target: BoxTarget | None) -> dict[str, np.ndarray]:
    boxes = np.array(target.boxes if target else [], dtype=np.float32).reshape(-1, 4)
    return {"bboxes": boxes, "labels": np.array(target.labels if target else [], dtype=np.int64)}


def _cleanlab_predictions(result: Any, num_classes: int) -> np.ndarray:
    """A :class:`~oculi.inference.detection.Detections` as cleanlab's per-class ``[M, 5]`` arrays."""
    per_class = np.empty(num_classes, dtype=object)
    rows = np.array([[*box, score] for box, score in zip(result.boxes, result.scores, strict=True)],
                    dtype=np.float32).reshape(-1, 5)
    labels = np.array(result.labels, dtype=np.int64)
    for k in range(num_classes):
        per_class[k] = rows[labels == k]
    return per_class


def detection_findings(items: list[Item], classes: list[str], predictions: list[np.ndarray],
                       threshold: float = 0.5) -> list[AuditFinding]:
    """Label issues of detection samples from per-image predictions in cleanlab's format: an image is flagged
    when cleanlab's ``find_label_issues`` flags it, once per kind of its worst boxes — ``missing_box``
    (cleanlab's overlooked score), ``swapped_class`` (swap) and ``misplaced_box`` (badloc) — below
    ``threshold``; the score is 1 − that box score."""
    from cleanlab.object_detection.filter import find_label_issues
    from cleanlab.object_detection.rank import (
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
    )

    labels = [_cleanlab_boxes(item.sample.target) for item in items]
    flagged = find_label_issues(labels, predictions)
    scores = {"overlooked": compute_overlooked_box_scores(labels=labels, predictions=predictions),
              "swap": compute_swap_box_scores(labels=labels, predictions=predictions),
              "badloc": compute_badloc_box_scores(labels=labels, predictions=predictions)}
    findings = []
    for n in np.flatnonzero(flagged):
        for name, kind, fix in _DETECTION_KINDS:
            box_scores = np.nan_to_num(np.asarray(scores[name][n], dtype=np.float64), nan=1.0)
            if not len(box_scores) or box_scores.min() >= threshold:
                continue
            b = int(np.argmin(box_scores))
            if name == "overlooked":
                rows = np.concatenate([np.c_[p, np.full(len(p), k)] for k, p in enumerate(predictions[n])])
                box, label, seen = rows[b, :4], classes[int(rows[b, 5])], float(rows[b, 4])
            else:
                box, label, seen = labels[n]["bboxes"][b], classes[int(labels[n]["labels"][b])], 0.0
            where = "[" + ", ".join(f"{v:.0f}" for v in box) + "]"
            findings.append(_finding(items[n], kind, 1 - float(box_scores[b]),
                                     fix.format(label=label, box=where, score=seen),
                                     detail=f"cleanlab {name} score {box_scores[b]:.2f}"))
    return findings


def detection_label_issues(sets: dict[str, SampleSet], context: AuditContext) -> list[AuditFinding]:
    """Missing, swapped and misplaced boxes (:func:`detection_findings`) from out-of-fold detections of
    ``context.folds`` object-detection trainings, or ``context.model``'s (in-sample)."""
    train = sets["train"]
    items = [Item(split, n, s) for split, ss in sets.items() for n, s in enumerate(ss.samples)]
    together = train.with_samples([i.sample for i in items])
    if len(together) < 2 * context.folds:
        context.notes.append(f"label issues need at least {2 * context.folds} images")
        return []

    def predict(predictor: Any, images: list[Path]) -> list[np.ndarray]:
        if predictor.classes != train.classes:
            raise DataError(f"{predictor.bundle.path}: the model's classes {predictor.classes} differ from the "
                            f"data's {train.classes}; audit with a model trained on these classes.")
        out = []
        with progress_bar("detecting", len(images), context.progress) as advance:
            for image in images:
                out.append(_cleanlab_predictions(predictor.predict(image, min_score=0.05), train.num_classes))
                advance(1)
        return out

    if context.model is not None:
        from oculi.tasks import load_predictor

        predictions = predict(load_predictor(context.model, precision="float32"), [s.image for s in together.samples])
        context.label_scores = "in_sample"
        context.notes.append("label scores come from --model, which may have trained on these boxes (in-sample)")
    else:
        strata = np.array([min(s.target.labels) if s.target and s.target.labels else -1 for s in together.samples])
        predictions = out_of_fold(together, context, "object-detection", DETECTION_FOLD_HYPERPARAMETERS, strata,
                                  predict)
        context.label_scores = "out_of_fold"
    return detection_findings(items, train.classes, predictions)


SEGMENTATION_SIDE = 64  # masks and probabilities are compared at this square size (cleanlab needs one shape)
SEGMENTATION_MIN_SHARE = 0.02  # an image is flagged when at least this share of its pixels look mislabelled
# Segmentation folds: ImageNet EfficientNet-Lite0 backbone, short and seeded; `-p key=value` overrides.
SEGMENTATION_FOLD_HYPERPARAMETERS = {"backbone": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": "10",
                                     "crop_size": "240", "mini_batch_size": "8"}


def segmentation_findings(items: list[Item], classes: list[str], masks: np.ndarray,
                          probabilities: np.ndarray) -> list[AuditFinding]:
    """``wrong_mask`` findings from cleanlab's segmentation ``find_label_issues``: ``masks int64 [N, S, S]`` (class
    indices; ignored pixels set to the predicted class first) against ``probabilities float32 [N, K, S, S]``.
    An image is flagged when at least :data:`SEGMENTATION_MIN_SHARE` of its pixels are; the score is that share,
    the fix names the region (in the image's pixels) and the classes involved."""
    from cleanlab.segmentation.filter import find_label_issues

    predicted = probabilities.argmax(1)
    masks = np.where((masks < 0) | (masks >= len(classes)), predicted, masks)
    issues = find_label_issues(masks, probabilities, n_jobs=1, verbose=False)
    findings = []
    for n in np.flatnonzero(issues.mean(axis=(1, 2)) >= SEGMENTATION_MIN_SHARE):
        ys, xs = np.nonzero(issues[n])
        target = items[n].sample.target
        sx, sy = (target.width or SEGMENTATION_SIDE) / SEGMENTATION_SIDE, \
            (target.height or SEGMENTATION_SIDE) / SEGMENTATION_SIDE
        given = classes[int(np.bincount(masks[n][ys, xs]).argmax())]
        seen = classes[int(np.bincount(predicted[n][ys, xs]).argmax())]
        region = f"[{xs.min() * sx:.0f}, {ys.min() * sy:.0f}, {(xs.max() + 1) * sx:.0f}, {(ys.max() + 1) * sy:.0f}]"
        share = float(issues[n].mean())
        findings.append(_finding(items[n], "wrong_mask", share, f"check the mask in {region}: labelled {given!r} "
                                 f"where the model sees {seen!r}", detail=f"{share:.0%} of pixels look mislabelled"))
    return findings


def _segmentation_arrays(predictor: Any, samples: list[Any], classes: list[str],
                         progress: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(masks [N, S, S], probabilities [N, K, S, S])`` of ``samples`` at :data:`SEGMENTATION_SIDE`."""
    import torch
    import torch.nn.functional as F

    from oculi.data.formats.masks import load_mask

    if predictor.classes != classes:
        raise DataError(f"{predictor.bundle.path}: the model's classes {predictor.classes} differ from the data's "
                        f"{classes}; audit with a model trained on these classes.")
    size = (SEGMENTATION_SIDE, SEGMENTATION_SIDE)
    masks, probabilities = [], []
    with progress_bar("segmenting", len(samples), progress) as advance:
        for sample in samples:
            logits = predictor.logits(predictor.to_tensor(sample.image))
            probabilities.append(F.interpolate(logits[None].float(), size=size, mode="bilinear",
                                               align_corners=False)[0].softmax(0).numpy())
            mask = torch.from_numpy(load_mask(sample.target))[None, None].float()
            masks.append(F.interpolate(mask, size=size, mode="nearest")[0, 0].to(torch.int64).numpy())
            advance(1)
    return np.stack(masks), np.stack(probabilities).astype(np.float32)


def segmentation_label_issues(sets: dict[str, SampleSet], context: AuditContext) -> list[AuditFinding]:
    """Images with likely wrong masks (:func:`segmentation_findings`) from out-of-fold probabilities of
    ``context.folds`` segmentation trainings, or ``context.model``'s (in-sample)."""
    train = sets["train"]
    items = [Item(split, n, s) for split, ss in sets.items() for n, s in enumerate(ss.samples)]
    together = train.with_samples([i.sample for i in items])
    if len(together) < 2 * context.folds:
        context.notes.append(f"label issues need at least {2 * context.folds} images")
        return []
    if context.model is not None:
        from oculi.tasks import load_predictor

        masks, probabilities = _segmentation_arrays(load_predictor(context.model, precision="float32"),
                                                    together.samples, train.classes, context.progress)
        context.label_scores = "in_sample"
        context.notes.append("label scores come from --model, which may have trained on these masks (in-sample)")
    else:
        by_path = {s.image: s for s in together.samples}
        pairs = out_of_fold(together, context, "semantic-segmentation", SEGMENTATION_FOLD_HYPERPARAMETERS,
                            np.zeros(len(together), dtype=np.int64),
                            lambda predictor, images: list(zip(*_segmentation_arrays(
                                predictor, [by_path[p] for p in images], train.classes, context.progress),
                                strict=True)))
        masks, probabilities = np.stack([m for m, _ in pairs]), np.stack([p for _, p in pairs])
        context.label_scores = "out_of_fold"
    return segmentation_findings(items, train.classes, masks, probabilities)
