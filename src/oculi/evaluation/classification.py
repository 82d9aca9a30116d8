"""Image-classification evaluation: run a classifier over labelled data and measure it (accuracy, top-k
accuracy, per-class precision/recall/F1, confusion matrix), optionally writing a report folder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from oculi.artifacts import dataset_fingerprint
from oculi.data.channels import read_channel, split_layout
from oculi.data.image import decode_image
from oculi.errors import ConfigError, DataError
from oculi.evaluation.analysis import Overlay
from oculi.evaluation.metrics import (
    MULTI_LABEL_THRESHOLD,
    check_evaluation_data,
    check_top_k,
    multi_label_scores,
    single_label_scores,
)
from oculi.evaluation.report import EvaluationResult
from oculi.inference.classification import ClassificationPredictor
from oculi.types import SampleSet

WORKER_THRESHOLD = 64  # more images than this are decoded in DataLoader worker processes
NUM_WORKERS = 2


class _Images(Dataset):
    """Items are the model-ready ``uint8 [3, H, W]`` crops of ``paths`` — or, for an image that cannot be decoded,
    the error message, so the error is raised in the main process without a worker traceback around it."""

    def __init__(self, paths: list[Path], transform: Callable[[torch.Tensor], torch.Tensor], min_side: int) -> None:
        self.paths = paths
        self.transform = transform
        self.min_side = min_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor | str:
        try:
            return self.transform(decode_image(self.paths[index], min_side=self.min_side))
        except DataError as e:
            return str(e)


def _batches(predictor: ClassificationPredictor, paths: list[Path], batch_size: int) -> Iterator[torch.Tensor]:
    """``uint8 [B, 3, H, W]`` batches of the preprocessed images, in ``paths`` order."""
    dataset = _Images(paths, predictor.transform, int(predictor.spec["resize"]))
    workers = NUM_WORKERS if len(paths) > WORKER_THRESHOLD else 0
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=list)
    for items in loader:
        failed = [item for item in items if isinstance(item, str)]
        if failed:
            raise DataError(f"{failed[0]} Run `oculi data check` on the data to list every unreadable image.")
        yield torch.stack(items)


@torch.inference_mode()
def _predict_all(predictor: ClassificationPredictor, paths: list[Path], batch_size: int,
                 progress: bool) -> torch.Tensor:
    """Probabilities ``float32 [N, C]`` of every image in ``paths``, with a progress bar when ``progress``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    rows: list[torch.Tensor] = []
    columns = (TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True, disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(paths))
        for batch in _batches(predictor, paths, batch_size):
            rows.append(predictor.probabilities_of_batch(batch))
            bar.advance(task, len(batch))
    return torch.cat(rows)


def _read_data(data: Path, classes: list[str], image_roots: dict[str, Path] | None,
               notes: list[str], label_attribute: str | None = None) -> tuple[SampleSet, Path]:
    """Read ``data`` against the model's ``classes``; a split layout (``train/``, ``val/`` …) is evaluated on its
    validation split (else its test split), with a note saying so."""
    splits = split_layout(data)
    if splits is not None:
        chosen = splits.get("validation") or splits.get("test")
        if chosen is None:
            raise DataError(f"{data}: holds only a training split ({splits['train']}); evaluating on training "
                            f"images says little. Pass held-out data, or {splits['train']} to do it anyway.")
        others = ", ".join(f"{p.name}/" for p in splits.values() if p != chosen)
        notes.append(f"{data} holds the splits {others} and {chosen.name}/; evaluating {chosen} (pass another "
                     "split folder to evaluate it instead).")
        data = chosen
    return read_channel(data, image_roots=image_roots, classes=classes, label_attribute=label_attribute), data


def _check_data(sample_set: SampleSet, classes: list[str], multi_label: bool, model: str) -> None:
    """Raise :class:`DataError` for error findings (unknown classes, bad lines, missing images), an empty set,
    or multi-label data for a single-label model."""
    check_evaluation_data(sample_set, classes, model, "no labelled images to evaluate. Pass class folders, a .lst "
                          "or a manifest holding images of the model's classes.")
    source = sample_set.source or "the data"
    if sample_set.multi_label and not multi_label:
        raise DataError(f"{source}: multi-label annotations, but the model {model} is single-label "
                        "(softmax). Evaluate a model trained with -p multi_label=1.")


def _align(sample_set: SampleSet, classes: list[str], model: str) -> SampleSet:
    """``sample_set`` with targets re-indexed to the model's ``classes`` by name (an in-memory set may order its
    classes differently); a class the model does not know raises :class:`DataError`."""
    if sample_set.classes == classes:
        return sample_set
    used = {i for s in sample_set.samples for i in (s.target if isinstance(s.target, tuple) else (s.target,))}
    unknown = [name for i, name in enumerate(sample_set.classes) if i in used and name not in classes]
    if unknown:
        raise DataError(f"{sample_set.source or 'the data'}: class(es) {', '.join(map(repr, unknown))} are not "
                        f"classes of the model {model} ({', '.join(classes)}). Leave those images out, or "
                        "evaluate a model trained on them.")
    index = {i: classes.index(name) for i, name in enumerate(sample_set.classes) if name in classes}

    def remap(target: int | tuple[int, ...]) -> int | tuple[int, ...]:
        return tuple(sorted(index[i] for i in target)) if isinstance(target, tuple) else index[target]

    samples = [replace(s, target=remap(s.target)) for s in sample_set.samples]
    return SampleSet(samples, list(classes), multi_label=sample_set.multi_label, format=sample_set.format,
                     source=sample_set.source, findings=list(sample_set.findings))


def _targets(sample_set: SampleSet, multi_label: bool) -> torch.Tensor:
    """Single-label: ``int64 [N]`` class indices. Multi-label: multi-hot ``int64 [N, C]`` (a single-label
    sample becomes a one-hot row)."""
    if not multi_label:
        return torch.tensor([s.target for s in sample_set.samples], dtype=torch.int64)
    hot = torch.zeros(len(sample_set), sample_set.num_classes, dtype=torch.int64)
    for row, sample in enumerate(sample_set.samples):
        hot[row, list(sample.target if isinstance(sample.target, tuple) else (sample.target,))] = 1
    return hot


def _misclassified(sample_set: SampleSet, probs: torch.Tensor, targets: torch.Tensor,
                   multi_label: bool) -> list[tuple[Path, str, str, float]]:
    """``(image, true, predicted, probability)`` of every wrong prediction, most confident first."""
    classes = sample_set.classes
    wrong: list[tuple[Path, str, str, float]] = []
    if multi_label:
        predicted = probs >= MULTI_LABEL_THRESHOLD
        for row in torch.nonzero((predicted != targets.bool()).any(dim=1)).flatten().tolist():
            chosen = predicted[row].nonzero().flatten().tolist()
            confidence = float(probs[row, chosen].max()) if chosen else float(probs[row].max())
            wrong.append((sample_set.samples[row].image,
                          ", ".join(classes[i] for i in targets[row].nonzero().flatten().tolist()) or "none",
                          ", ".join(classes[i] for i in chosen) or "none", confidence))
    else:
        confidence, predicted = probs.max(dim=1)
        for row in torch.nonzero(predicted != targets).flatten().tolist():
            wrong.append((sample_set.samples[row].image, classes[int(targets[row])], classes[int(predicted[row])],
                          float(confidence[row])))
    return sorted(wrong, key=lambda item: -item[3])


def evaluate_classification(
    predictor: ClassificationPredictor,
    data: Path | SampleSet,
    *,
    output: Path | None = None,
    top_k: int | None = None,
    image_roots: dict[str, Path] | None = None,
    batch_size: int = 32,
    progress: bool = True,
    label_attribute: str | None = None,
    overlay: Overlay | None = None,
) -> EvaluationResult:
    """Evaluate an image-classification ``predictor`` on labelled data (see :func:`oculi.tasks.evaluate`).

    ``data``: class folders, a ``.lst``, an augmented manifest (``image_roots`` maps its S3 prefixes to local
    folders), a split layout folder (``train/`` + ``val/``: the validation split is evaluated, else ``test/``) or
    an in-memory :class:`SampleSet`; classes are matched to the model's by name. ``top_k``: also report
    ``top_k_accuracy`` (single-label models). ``output``: write the report there (``metrics.json``,
    ``per_class.csv``, ``confusion_matrix.png``, ``misclassified.png``). ``label_attribute``: the manifest
    attribute holding the labels, when its lines have several. ``overlay``: the top-loss gallery's heat-map hook
    (see :mod:`oculi.evaluation.analysis`).

    Images are decoded and cropped as ``uint8`` (in 2 DataLoader workers above 64 images) and normalised on the
    model's device in batches of ``batch_size``. Raises :class:`DataError` for classes the model does not know,
    unreadable images, or no images; :class:`ConfigError` for a bad ``top_k``."""
    model_name = str(predictor.bundle.path)
    classes = predictor.classes
    multi_label = predictor.spec.get("output") == "sigmoid"
    if multi_label and top_k is not None:
        raise ConfigError(f"`top_k` applies to single-label models; {model_name} is multi-label. Leave out "
                          "--top-k.")
    if top_k is not None:
        check_top_k(top_k, len(classes))
    notes: list[str] = []
    if isinstance(data, SampleSet):
        sample_set, data_name = _align(data, classes, model_name), data.source or "the given samples"
    else:
        sample_set, data_path = _read_data(Path(data).expanduser(), classes, image_roots, notes, label_attribute)
        data_name = str(data_path)
    _check_data(sample_set, classes, multi_label, model_name)

    probs = _predict_all(predictor, [s.image for s in sample_set.samples], batch_size, progress)
    targets = _targets(sample_set, multi_label)
    if multi_label:
        scores = multi_label_scores(probs, targets, classes)
    else:
        scores = single_label_scores(probs, targets, classes, top_k=top_k)
    result = EvaluationResult(
        metrics=scores.metrics, per_class=scores.per_class, confusion=scores.confusion, classes=list(classes),
        misclassified=_misclassified(sample_set, probs, targets, multi_label), num_images=len(sample_set),
        model=model_name, data=data_name, multi_label=multi_label, notes=notes, probabilities=probs,
        targets=targets, images=[s.image for s in sample_set.samples], fingerprint=dataset_fingerprint([sample_set]),
        overlay=overlay,
    )
    if output is not None:
        result.write(Path(output).expanduser())
    return result
