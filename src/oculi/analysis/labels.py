"""Label issues for classification data: cleanlab's ``find_label_issues`` on class probabilities that did not
see the label they judge — out-of-fold predictions of ``k`` short seeded trainings of the built-in
image-classification algorithm (ordinary training jobs, listed by ``oculi jobs list``) — or, with ``--model``,
the given bundle's in-sample probabilities (weaker: a model that trained on a wrong label tends to agree with it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from oculi.analysis.audit import AuditContext, AuditFinding, Item, _finding, progress_bar
from oculi.errors import ConfigError, DataError
from oculi.types import SampleSet

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


def out_of_fold_probabilities(sample_set: SampleSet, context: AuditContext) -> np.ndarray:
    """``float32 [N, C]``: each sample's probabilities from the fold model that did not train on it. Each fold
    is an attached training job on manifests written under ``context.output/folds/``."""
    from oculi.data.formats.manifest import write_manifest
    from oculi.jobs.runner import JobSpec, run_attached, submit
    from oculi.tasks import load_predictor

    labels = np.array([s.target for s in sample_set.samples])
    fold = fold_assignment(labels, context.folds, context.seed)
    probabilities = np.zeros((len(labels), sample_set.num_classes), dtype=np.float32)
    defaults = dict(FOLD_HYPERPARAMETERS)
    if {"architecture", "num_layers"} & set(context.hyperparameters):  # another network: drop the transfer set-up
        for key in ("architecture", "use_pretrained_model", "freeze"):
            defaults.pop(key)
    hyperparameters = {**defaults, "seed": str(context.seed), **context.hyperparameters}
    for k in range(context.folds):
        held = np.flatnonzero(fold == k)
        folder = context.output / "folds" / f"fold-{k}"
        train = write_manifest(sample_set.with_samples([sample_set.samples[n] for n in np.flatnonzero(fold != k)]),
                               folder / "train.manifest")
        validation = write_manifest(sample_set.with_samples([sample_set.samples[n] for n in held]),
                                    folder / "validation.manifest")
        context.echo(f"fold {k + 1}/{context.folds}: training on {len(labels) - len(held)} images, "
                     f"predicting {len(held)}")
        job = submit(JobSpec(algorithm="image-classification", channels={"train": str(train),
                                                                          "validation": str(validation)},
                             hyperparameters=hyperparameters), attached=True)
        done = run_attached(job, echo=None)
        context.jobs.append(job["name"])
        if done.get("status") != "Completed":
            raise DataError(f"fold {k + 1} training job {job['name']} ended {done.get('status')}: "
                            f"{done.get('failure_reason') or 'see `oculi jobs logs ' + job['name'] + '`'}")
        predictor = load_predictor(job["model_dir"], precision="float32")
        if k == 0:
            context.embedding_model = Path(job["model_dir"])
        probabilities[held] = _probabilities(predictor, [sample_set.samples[n].image for n in held],
                                             sample_set.classes, context.progress)
    return probabilities


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
        probabilities = out_of_fold_probabilities(together, context)
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
