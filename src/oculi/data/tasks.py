"""The data layer's half of each task's contract (:mod:`oculi.tasks` holds the whole one): how a dataset of the
task is recognised, read into splits for ``oculi data check``, converted between formats, and how its class
findings are worded. It lives in the data layer because the data check and the converters, which sit below the
algorithms, need it; :class:`oculi.tasks.TaskContract` points at it as its ``data`` field.

A new task registers a :class:`DataTask` in :data:`DATA_TASKS` (and its contract in :mod:`oculi.tasks`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oculi.errors import ConfigError
from oculi.registry import Registry
from oculi.types import Finding, SampleSet


def _no_findings(split: str, sample_set: SampleSet) -> list[Finding]:
    return []


@dataclass(frozen=True)
class DataTask:
    """One task's data behaviour.

    ``recognise(path)``: True when ``path`` holds data of this task (tried in ``order``; the last task accepts
    anything). ``read_splits(path, image_roots, num_classes, label_attribute)``: ``{"train": SampleSet, …}`` for the
    data check.
    ``convert(source, to, out, **options)``: a :class:`~oculi.data.convert.Ledger`; None = not convertible;
    ``convert_formats``: what it converts to. ``empty_class_is_error``: a class without training examples stops
    training (else a warning). ``empty_class_message(name, split, is_training)``: the finding's text (None = the
    generic one). ``split_findings(split, sample_set)``: extra findings about a split (e.g. detection negatives).
    ``synthesize(root, seed)``: write a tiny generated dataset of the task under ``root`` and return its training
    channels (what the contract tests train every algorithm of the task on)."""

    name: str
    order: int
    recognise: Callable[[Path], bool]
    read_splits: Callable[..., dict[str, SampleSet]]
    convert: Callable[..., Any] | None = None
    convert_formats: tuple[str, ...] = ()
    empty_class_is_error: bool = False
    empty_class_message: Callable[[str, str, bool], str] | None = None
    split_findings: Callable[[str, SampleSet], list[Finding]] = field(default=_no_findings)
    synthesize: Callable[[Path, int], dict[str, Path]] | None = None


DATA_TASKS: Registry[DataTask] = Registry("task", list_command="oculi algorithms list")


def ordered() -> list[DataTask]:
    """Every registered data task in recognition order."""
    return sorted((DATA_TASKS.get(name) for name in DATA_TASKS), key=lambda t: t.order)


def recognise(path: Path, *, convertible: bool = False) -> DataTask:
    """The task of the data at ``path``: the first (in recognition order) whose ``recognise`` accepts it, else the
    last one (classification; with ``convertible``, among the tasks that have a converter)."""
    candidates = [t for t in ordered() if t.convert is not None or not convertible]
    for task in candidates[:-1]:
        if task.recognise(Path(path)):
            return task
    return candidates[-1]


def convert_data(source: Path, to: str, out: Path, *, task: str = "auto", **options: Any) -> Any:
    """Convert the data at ``source`` to the format ``to`` under ``out`` with the converter of ``task`` (``auto``:
    recognised from the data; see :func:`recognise`). Raises :class:`ConfigError` for a task without a converter
    or a target format it does not write."""
    data_task = recognise(Path(source), convertible=True) if task == "auto" else DATA_TASKS.get(task)
    fallback = [t for t in ordered() if t.convert is not None][-1]
    separate_labels = options.get("annotations") is not None or options.get("names") is not None
    if task == "auto" and data_task is fallback and (to not in data_task.convert_formats or separate_labels):
        # no task recognised the data, and the fallback does not write ``to`` or the labels are in a separate
        # annotation folder / names file (never so for class folders): read it with the last task that writes
        # ``to``, whose reader then says what it expected
        writers = [t for t in ordered() if to in t.convert_formats and t is not fallback]
        data_task = writers[-1] if writers else data_task
    if data_task.convert is None:
        convertible = ", ".join(t.name for t in ordered() if t.convert is not None)
        raise ConfigError(f"{data_task.name} data has no converter; `oculi data convert` converts {convertible} "
                          "data.")
    if to not in data_task.convert_formats:
        raise ConfigError(f"--to got {to!r}; {data_task.name} data converts to one of "
                          f"{', '.join(data_task.convert_formats)}, e.g. `--to {data_task.convert_formats[0]}`.")
    return data_task.convert(Path(source), to, Path(out), **options)


# --- the built-in tasks -----------------------------------------------------------------------------------------

def _classification_splits(path: Path, image_roots: dict[str, Path] | None = None,
                           num_classes: int | None = None, label_attribute: str | None = None) -> dict[str, SampleSet]:
    from oculi.data.channels import read_channel, split_layout

    splits = split_layout(Path(path)) or {"train": Path(path)}
    sets: dict[str, SampleSet] = {"train": read_channel(splits["train"], image_roots=image_roots,
                                                        num_classes=num_classes, label_attribute=label_attribute)}
    for split, folder in splits.items():
        if split != "train":
            sets[split] = read_channel(folder, image_roots=image_roots, classes=sets["train"].classes,
                                       label_attribute=label_attribute)
    return sets


def _is_detection(path: Path) -> bool:
    """True when ``path`` holds detection annotations (a bounding-box manifest, COCO, VOC, YOLO or SageMaker
    per-image JSON) rather than classification data."""
    import json

    from oculi.data.detection import detect_format
    from oculi.data.formats.tools import TOOL_FORMATS, read_tool
    from oculi.errors import DataError

    try:
        fmt = detect_format(path)
    except (DataError, OSError):
        return False
    if fmt == "recordio":  # class ids or SageMaker's packed boxes: the first record tells
        from oculi.data.formats.recordio import holds_boxes

        return holds_boxes(path)
    if fmt in TOOL_FORMATS:  # a labeling tool's file: detection when it holds regions, not only image tags
        return bool(read_tool(path).kinds() & {"box", "polygon"})
    if fmt != "manifest":
        return True
    with path.open() as f:  # classification manifests are JSON lines too: look for a box label
        first = next((line for line in f if line.strip()), "{}")
    try:
        record = json.loads(first)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and any(isinstance(v, dict) and "annotations" in v for v in record.values())


def _detection_splits(path: Path, image_roots: dict[str, Path] | None = None,
                      num_classes: int | None = None, label_attribute: str | None = None) -> dict[str, SampleSet]:
    from oculi.data.detection import detection_splits

    return detection_splits(Path(path), image_roots=image_roots, num_classes=num_classes,
                            label_attribute=label_attribute)


def _detection_negatives(split: str, sample_set: SampleSet) -> list[Finding]:
    negatives = sum(not len(x.target.labels) for x in sample_set.samples if x.target is not None)
    if not negatives or any(f.code.startswith("negative") for f in sample_set.findings):
        return []
    return [Finding("info", "negatives", f"{negatives} {split} image(s) have no boxes; they are kept as negatives "
                    "(background-only examples).", sample_set.source)]


def _convert_detection(source: Path, to: str, out: Path, **options: Any) -> Any:
    from oculi.data.convert import convert_detection

    return convert_detection(source, to, out, **options)


def _convert_classification(source: Path, to: str, out: Path, **options: Any) -> Any:
    from oculi.data.convert import convert_classification

    return convert_classification(source, to, out, **options)


def _is_segmentation(path: Path) -> bool:
    from oculi.data.segmentation import is_segmentation

    return is_segmentation(path)


def _segmentation_splits(path: Path, image_roots: dict[str, Path] | None = None,
                         num_classes: int | None = None, label_attribute: str | None = None) -> dict[str, SampleSet]:
    from oculi.data.segmentation import split_sets

    return split_sets(Path(path), image_roots=image_roots, num_classes=num_classes, label_attribute=label_attribute)


def _convert_segmentation(source: Path, to: str, out: Path, *, copy_images: bool = False,
                          names: Path | None = None, **options: Any) -> Any:
    from oculi.data.segmentation import convert_segmentation

    if names is not None:
        raise ConfigError("--names applies to YOLO detection data; segmentation class names come from the label "
                          "map or the format itself. Leave out --names.")
    return convert_segmentation(source, to, out, **options)


def _segmentation_empty_class(name: str, split: str, is_training: bool) -> str:
    if is_training:
        return (f"class {name!r} never appears in the {split} masks. The model cannot learn it: add images showing "
                "it, or leave it out (num_classes / the label map).")
    return f"class {name!r} never appears in the {split} masks. Its accuracy will not be measured."


def _register_builtins() -> None:
    from oculi.data import synthetic
    from oculi.data.convert import CLASSIFICATION_FORMATS
    from oculi.data.detection import DETECTION_FORMATS
    from oculi.data.segmentation import SEGMENTATION_FORMATS

    DATA_TASKS.register("segmentation", DataTask(
        "segmentation", 0, _is_segmentation, _segmentation_splits, _convert_segmentation, SEGMENTATION_FORMATS,
        empty_class_message=_segmentation_empty_class, synthesize=synthetic.write_segmentation_data))
    DATA_TASKS.register("detection", DataTask(
        "detection", 1, _is_detection, _detection_splits, _convert_detection, (*DETECTION_FORMATS, "recordio"),
        split_findings=_detection_negatives, synthesize=synthetic.write_detection_data))
    DATA_TASKS.register("classification", DataTask(
        "classification", 2, lambda path: True, _classification_splits, _convert_classification,
        CLASSIFICATION_FORMATS, empty_class_is_error=True, synthesize=synthetic.write_classification_data))


_register_builtins()
