"""SageMaker-style named input channels for image classification.

A channel is a local path. ``train`` (required) and ``validation`` each hold class sub-folders, one ``.lst`` or one
augmented manifest — recognised by content, not by name. As in SageMaker's image + list-file mode, ``train_lst`` /
``validation_lst`` name a ``.lst`` (or a folder holding exactly one) whose paths are relative to the ``train`` /
``validation`` folder. ``model`` (incremental training) is accepted and left to the caller. The validation set is
always read against the training classes, so class index ``i`` means the same class in both."""

from __future__ import annotations

from pathlib import Path

from oculi.data.formats.folders import is_class_folders, read_folders
from oculi.data.formats.foreign import is_voc_xml, raise_if_foreign
from oculi.data.formats.lst import is_lst, read_lst
from oculi.data.formats.manifest import is_manifest, read_manifest
from oculi.data.formats.recordio import is_recordio, read_recordio
from oculi.data.formats.tools import read_tool, to_classification, tool_format
from oculi.errors import ConfigError, DataError
from oculi.registry import closest
from oculi.types import IMAGE_EXTENSIONS, Finding, SampleSet

CLASSIFICATION_CHANNELS = ("train", "validation", "train_lst", "validation_lst", "model")
_OTHER_TASK_CHANNELS = ("train_annotation", "validation_annotation", "label_map")
SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}


def _annotation_files(folder: Path) -> list[Path]:
    """Top-level files of ``folder`` that are a ``.lst`` or a manifest by content."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and p.suffix.lower() not in IMAGE_EXTENSIONS
        and (is_lst(p) or is_manifest(p) or is_recordio(p))
    )


def _split_holds_data(folder: Path) -> bool:
    return is_class_folders(folder) or len(_annotation_files(folder)) == 1


def split_layout(path: Path) -> dict[str, Path] | None:
    """``{"train": …, "validation": …, "test": …}`` (only the splits present) when every visible sub-folder of
    ``path`` is a split name (``train``, ``validation`` or ``val``, ``test``; any case), ``train`` is one of them
    and each holds class folders, a ``.lst`` or a manifest; otherwise None."""
    path = Path(path)
    if not path.is_dir():
        return None
    folders = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if not folders or any(p.name.lower() not in SPLIT_NAMES for p in folders):
        return None
    splits: dict[str, Path] = {}
    for folder in sorted(folders):
        split = SPLIT_NAMES[folder.name.lower()]
        if split in splits:
            raise DataError(
                f"{path}: both {splits[split].name}/ and {folder.name}/ look like the {split} split; "
                "keep one of them."
            )
        splits[split] = folder
    if "train" not in splits or not all(_split_holds_data(p) for p in splits.values()):
        return None
    return splits


def read_channel(
    path: Path,
    *,
    image_root: Path | None = None,
    image_roots: dict[str, Path] | None = None,
    classes: list[str] | None = None,
    num_classes: int | None = None,
    label_attribute: str | None = None,
) -> SampleSet:
    """Read one channel — a folder of class sub-folders, a ``.lst``, a manifest, or a folder holding exactly one
    ``.lst``/manifest next to its images — recognised by content.

    ``image_root``: folder ``.lst`` paths are relative to (default the ``.lst``'s folder). ``image_roots``: S3
    prefix → local folder for manifests. ``classes``: the training classes, for a validation channel.
    ``num_classes``: how many classes the training channel has (SageMaker's hyperparameter): a ``.lst`` or
    manifest class id at or above it is a ``label_out_of_range`` finding naming the line.
    ``label_attribute``: the manifest attribute holding the labels, when its lines have several. A Label Studio
    export or a CVAT XML (or a folder holding one) is read for its image-level tags (Choices, ``<tag>``); see
    :func:`~oculi.data.formats.tools.to_classification`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found. Pass a folder of class sub-folders, a .lst file or a manifest.")
    if path.is_file() and is_recordio(path):
        return _classification_recordio(path, classes, num_classes)
    if tool_format(path) is not None:
        label_file = read_tool(path, image_root=image_root)
        if label_file.items and "tag" not in label_file.kinds():
            held = ", ".join(sorted(label_file.kinds())) or "no label"
            raise DataError(f"{path}: a {label_file.format} file with no image-level class (Label Studio Choices, "
                            f"CVAT <tag>): it holds {held} regions, which are object detection or semantic "
                            "segmentation data. Train object-detection or semantic-segmentation on it.")
        return to_classification(label_file, classes)
    if path.is_dir():
        splits = split_layout(path)
        if splits is not None:
            names = ", ".join(f"{p.name}/" for p in splits.values())
            fix = f"--channel train={splits['train']}"
            if "validation" in splits:
                fix += f" --channel validation={splits['validation']}"
            raise DataError(
                f"{path}: holds splits ({names}), not classes. Pass each split as its channel: {fix}."
            )
        files = _annotation_files(path)
        if len(files) > 1:
            raise DataError(
                f"{path}: holds {len(files)} label files ({', '.join(p.name for p in files)}); pass the one to "
                "use as the channel (or as train_lst/validation_lst)."
            )
        if not files and len([p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]) <= 1:
            raise_if_foreign(path)  # e.g. a CVAT export, whose images/ would pass for a single class folder
        if files:
            sample_set = read_channel(
                files[0], image_root=image_root or path, image_roots=image_roots, classes=classes,
                num_classes=num_classes,
                label_attribute=label_attribute,
            )
            sample_set.findings.insert(
                0, Finding("info", "label_file", f"labels read from {files[0].name}", str(files[0]))
            )
            return sample_set
        return read_folders(path, classes)
    _refuse_empty(path)
    raise_if_foreign(path)
    if is_voc_xml(path):
        raise DataError(f"{path}: one Pascal VOC annotation (object detection); pass the folder that holds the .xml "
                        f"files ({path.parent}) or the VOC root holding Annotations/ and JPEGImages/.")
    if is_manifest(path):
        return read_manifest(path, image_roots=image_roots, classes=classes, num_classes=num_classes,
                             label_attribute=label_attribute)
    if is_lst(path):
        return read_lst(path, image_root=image_root, classes=classes, num_classes=num_classes)
    raise DataError(
        f"{path}: neither a .lst (tab-separated `index<TAB>class_id<TAB>path` lines) nor an augmented manifest "
        "(one JSON object per line). Pass one of those, or a folder of class sub-folders."
    )


def _classification_recordio(path: Path, classes: list[str] | None, num_classes: int | None) -> SampleSet:
    """A ``.rec`` channel of image classification; detection records are refused with the fix."""
    sample_set = read_recordio(path, classes=classes, num_classes=num_classes)
    if sample_set.task != "classification":
        raise DataError(f"{path}: RecordIO with SageMaker's packed object-detection labels (boxes); train "
                        "object-detection on it, or write class ids (im2rec on a classification .lst).")
    return sample_set


def _refuse_empty(path: Path) -> None:
    """Raise :class:`DataError` naming ``path`` when the label file holds nothing but white space."""
    try:
        with path.open("rb") as f:
            empty = not f.read(1 << 16).strip() and not f.read(1)
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e}).") from None
    if empty:
        raise DataError(f"{path}: the file is empty. A .lst needs one `index<TAB>class_id<TAB>path` line per image, "
                        "an augmented manifest one JSON object per line; write its lines (or pass a folder of class "
                        "sub-folders instead).")


def _single_lst(path: Path, channel: str) -> Path:
    if path.is_file():
        _refuse_empty(path)
        return path
    files = sorted(p for p in path.iterdir() if p.is_file() and is_lst(p)) if path.is_dir() else []
    if not files and path.is_dir():
        for candidate in sorted(path.glob("*.lst")):
            _refuse_empty(candidate)
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise ConfigError(
            f"channel {channel!r} ({path}) must be a .lst file or a folder holding exactly one; "
            f"found {found}."
        )
    return files[0]


def _check_names(channels: dict[str, str | Path]) -> None:
    for name in channels:
        if name in CLASSIFICATION_CHANNELS:
            continue
        if name in _OTHER_TASK_CHANNELS:
            raise ConfigError(
                f"channel {name!r} is for object detection / semantic segmentation. Image classification reads "
                "labels from class folders, a .lst (train_lst, validation_lst) or an augmented manifest in the "
                "train/validation channels."
            )
        near = closest(name, [*CLASSIFICATION_CHANNELS, *_OTHER_TASK_CHANNELS])
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ConfigError(
            f"unknown channel {name!r}.{hint} Valid channels for image classification: "
            f"{', '.join(CLASSIFICATION_CHANNELS)}."
        )


def resolve_classification_channels(
    channels: dict[str, str | Path], image_roots: dict[str, Path] | None = None, num_classes: int | None = None,
    label_attribute: str | None = None,
) -> dict[str, SampleSet]:
    """Read the ``train`` (and, when given, ``validation``) channels into ``{"train": …, "validation": …}``.

    ``train_lst`` / ``validation_lst`` name a ``.lst`` (or a folder holding one) whose paths are relative to the
    ``train`` / ``validation`` folder. ``model`` is ignored here. ``num_classes`` (SageMaker's hyperparameter)
    makes a ``.lst`` or manifest class id at or above it a finding naming the line. Unknown or
    detection/segmentation-only channel names raise :class:`ConfigError`. ``label_attribute`` names the label
    attribute of manifest channels."""
    _check_names(channels)
    paths = {name: Path(value) for name, value in channels.items()}
    if "train" not in paths:
        raise ConfigError("no `train` channel; pass `--train data/train` (or `--channel train=data/train`).")
    sets: dict[str, SampleSet] = {}
    for split in ("train", "validation"):
        lst_name = f"{split}_lst"
        if lst_name in paths and split not in paths:
            raise ConfigError(
                f"channel {lst_name!r} needs the {split!r} channel holding its images; pass "
                f"`--channel {split}=DIR` too."
            )
        if split not in paths:
            continue
        classes = sets["train"].classes if split == "validation" else None
        count = num_classes if split == "train" else None
        if lst_name in paths:
            if not paths[split].is_dir():
                raise ConfigError(
                    f"channel {split!r} ({paths[split]}) must be the folder holding the images "
                    f"that {lst_name!r} lists."
                )
            sets[split] = read_lst(
                _single_lst(paths[lst_name], lst_name), image_root=paths[split], classes=classes, num_classes=count
            )
        else:
            sets[split] = read_channel(paths[split], image_roots=image_roots, classes=classes, num_classes=count,
                                       label_attribute=label_attribute)
    return sets
