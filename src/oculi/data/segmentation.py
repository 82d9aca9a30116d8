"""Read semantic segmentation data in any supported format, recognised by its content.

Every reader returns a segmentation :class:`~oculi.types.SampleSet` whose targets are
:class:`~oculi.types.MaskTarget` (loaded as ``int64 [H, W]`` class-index masks with ignore index 255); the
format-specific encodings (label maps, palettes, colour maps, polygons) are decoded in ``oculi.data.formats``."""

from __future__ import annotations

import json
from pathlib import Path

from oculi.errors import ConfigError, DataError
from oculi.types import SampleSet

SEGMENTATION_FORMATS = ("sagemaker-masks", "manifest", "voc", "coco", "labelstudio", "cvat")
SEGMENTATION_READ_FORMATS = (*SEGMENTATION_FORMATS, "labelme", "via")  # labelme and VIA are read, not written


def _first_record(path: Path) -> dict | None:
    try:
        with path.open(encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    return record if isinstance(record, dict) else None
    except (OSError, ValueError, RecursionError, UnicodeDecodeError):
        return None
    return None


def is_segmentation_manifest(path: Path) -> bool:
    """True when ``path`` is an augmented manifest whose label attribute ends in ``-ref`` (Ground Truth semantic
    segmentation output: a mask file per line)."""
    if not Path(path).is_file():
        return False
    record = _first_record(Path(path))
    return record is not None and any(k.endswith("-ref") and k not in ("source-ref", "image-ref") for k in record)


def _holds_masks(folder: Path) -> bool:
    """False for an annotation folder of per-image JSON without any image (SageMaker's object detection layout,
    which shares the ``train``/``train_annotation`` folder names with the segmentation layout)."""
    from oculi.types import IMAGE_EXTENSIONS

    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return not any(p.suffix.lower() == ".json" for p in files) or any(p.suffix.lower() in IMAGE_EXTENSIONS
                                                                      for p in files)


def _split_root(path: Path, split: str) -> tuple[Path, Path] | None:
    for name in (split, "train", "validation"):
        if (path / name).is_dir() and (path / f"{name}_annotation").is_dir() and \
                _holds_masks(path / f"{name}_annotation"):
            return path / name, path / f"{name}_annotation"
    return None


def is_segmentation(path: Path) -> bool:
    """True when ``path`` holds segmentation data oculi recognises without being told (SageMaker's mask layout —
    ``train/`` + ``train_annotation/`` holding masks, not per-image JSON — a Pascal VOC folder with
    ``SegmentationClass``, a ``-ref`` manifest, or a labeling tool's file holding masks: Label Studio brushes,
    CVAT ``<mask>``). COCO files and the tools' polygons are ambiguous (boxes and polygons) and count as detection
    unless the task is named."""
    from oculi.data.formats.tools import read_tool, tool_format

    path = Path(path)
    if tool_format(path) is not None:
        return "mask" in read_tool(path).kinds()
    if path.is_dir():
        return _split_root(path, "train") is not None or (path / "SegmentationClass").is_dir()
    return is_segmentation_manifest(path)


def detect_format(path: Path, annotations: Path | None = None) -> str:
    """The segmentation format of ``path`` (one of :data:`SEGMENTATION_FORMATS`): ``annotations`` given or a
    folder with ``train/`` + ``train_annotation/`` → ``sagemaker-masks``; a folder with ``SegmentationClass/`` →
    ``voc``; a ``-ref`` manifest → ``manifest``; a COCO JSON (or a folder holding ``annotations.json``) → ``coco``;
    a labeling tool's file → ``labelstudio``, ``cvat``, ``labelme`` or ``via``. Raises :class:`DataError` when
    nothing matches."""
    from oculi.data.formats.coco import is_coco
    from oculi.data.formats.foreign import raise_if_foreign
    from oculi.data.formats.tools import tool_format

    path = Path(path)
    tool = tool_format(path) if path.exists() else None
    if tool is not None:
        return tool
    if annotations is not None:
        return "sagemaker-masks"
    if not path.exists():
        raise DataError(f"{path}: not found.")
    if path.is_dir():
        if _split_root(path, "train") is not None:
            return "sagemaker-masks"
        if (path / "SegmentationClass").is_dir():
            return "voc"
        if is_coco(path / "annotations.json"):
            return "coco"
        manifests = sorted(path.glob("*.manifest"))
        if len(manifests) == 1 and is_segmentation_manifest(manifests[0]):
            return "manifest"
        raise_if_foreign(path)
    else:
        if is_segmentation_manifest(path):
            return "manifest"
        if is_coco(path):
            return "coco"
        raise_if_foreign(path)
    raise DataError(
        f"{path}: not segmentation data oculi recognises. Expected SageMaker's layout (train/ + train_annotation/ "
        "PNG masks, or pass the images folder with its annotation folder), an augmented manifest with a `…-ref` "
        "mask attribute, a Pascal VOC folder (JPEGImages/ + SegmentationClass/) or a COCO JSON with polygons; "
        f"name the format with `--from {{{','.join(SEGMENTATION_READ_FORMATS)}}}` if it is one of them."
    )


def read_segmentation(
    path: Path,
    *,
    annotations: Path | None = None,
    label_map: Path | None = None,
    image_roots: dict[str, Path] | None = None,
    classes: list[str] | None = None,
    num_classes: int | None = None,
    split: str = "train",
    format: str = "auto",
    encoding: dict | None = None,
    label_attribute: str | None = None,
    default_class: str | None = None,
) -> SampleSet:
    """Read segmentation data at ``path`` into a :class:`SampleSet` of :class:`~oculi.types.MaskTarget` samples,
    in ``format`` (one of :data:`SEGMENTATION_READ_FORMATS`, or ``"auto"``: see :func:`detect_format`).

    ``annotations``: the mask folder (SageMaker's ``train_annotation``) when ``path`` is the image folder, or
    the image folder for VOC / COCO. ``label_map``: a SageMaker label map file or folder (``<split>_label_map.json``
    is used); without one, a dataset root's ``label_map/`` folder, else ``encoding`` (e.g. a model's). ``split``:
    which split of a dataset root to read (``train`` or ``validation``). ``image_roots``: ``{"s3://bucket/prefix":
    folder}`` for manifests. ``classes``: class names to read against (validation against training, evaluation
    against a model); ``num_classes``: how many classes (SageMaker's hyperparameter), else inferred.
    ``label_attribute``: a manifest's ``…-ref`` mask attribute, when its lines have several. A labeling tool's
    file (``annotations``: its image folder) has its polygons, masks and boxes painted into class masks (see
    :func:`~oculi.data.formats.tools.to_segmentation`); ``default_class``: the class of VIA regions without one,
    ``label_attribute`` the VIA region attribute holding the class."""
    from oculi.data.formats.coco_masks import read_coco_masks
    from oculi.data.formats.mask_manifest import read_mask_manifest
    from oculi.data.formats.masks import read_mask_folders
    from oculi.data.formats.tools import TOOL_FORMATS, read_tool, to_segmentation
    from oculi.data.formats.voc_masks import read_voc_masks

    path = Path(path)
    if format != "auto" and format not in SEGMENTATION_READ_FORMATS:
        raise ConfigError(f"segmentation format {format!r} is unknown; expected one of "
                          f"{', '.join(SEGMENTATION_READ_FORMATS)}.")
    fmt = detect_format(path, annotations) if format == "auto" else format
    if fmt in TOOL_FORMATS:
        sample_set = to_segmentation(read_tool(path, format=fmt, image_root=annotations, default_class=default_class,
                                               class_attribute=label_attribute), classes)
    elif fmt == "sagemaker-masks":
        images, masks = (path, annotations) if annotations is not None else (_split_root(path, split) or
                                                                             (path, path))
        if annotations is None and _split_root(path, split) is None:
            raise DataError(f"{path}: expected {split}/ and {split}_annotation/ folders (SageMaker's layout), or "
                            "pass the mask folder as the annotation channel.")
        if label_map is None and annotations is None and (path / "label_map").is_dir():
            label_map = path / "label_map"
        sample_set = read_mask_folders(images, masks, label_map=label_map, split=split, classes=classes,
                                       num_classes=num_classes, encoding=None if label_map else encoding)
    elif fmt == "manifest":
        if path.is_dir():
            path = sorted(path.glob("*.manifest"))[0]
        sample_set = read_mask_manifest(path, image_roots=image_roots, classes=classes, num_classes=num_classes,
                                        label_attribute=label_attribute)
    elif fmt == "voc":
        sample_set = read_voc_masks(path, image_root=annotations, classes=classes)
    else:
        json_path = path / "annotations.json" if path.is_dir() else path
        sample_set = read_coco_masks(json_path, image_root=annotations, classes=classes)
    return sample_set


def layout_channels(path: Path) -> dict[str, Path]:
    """The SageMaker channels a segmentation dataset root holds in SageMaker's layout: ``train`` +
    ``train_annotation`` (required), ``validation`` + ``validation_annotation`` and ``label_map`` when present
    (``{"train": ROOT/train, …}``); empty when ``path`` is not such a root. Training and the data check both use
    every channel found."""
    path = Path(path)
    found: dict[str, Path] = {}
    for split in ("train", "validation"):
        if (path / split).is_dir() and (path / f"{split}_annotation").is_dir():
            found[split], found[f"{split}_annotation"] = path / split, path / f"{split}_annotation"
    if "train" not in found:
        return {}
    if (path / "label_map").is_dir():
        found["label_map"] = path / "label_map"
    return found


def describe_channels(path: Path, found: dict[str, Path]) -> str:
    """One line naming the channels :func:`layout_channels` found under ``path`` (and the label map files)."""
    names = []
    for channel, folder in found.items():
        if channel == "label_map":
            files = ", ".join(sorted(p.name for p in folder.glob("*.json"))) or "no .json file"
            names.append(f"label_map ({folder.name}/: {files})")
        else:
            names.append(f"{channel} ({folder.name}/)")
    missing = [c for c in ("validation", "label_map") if c not in found]
    absent = f"; no {' or '.join(missing)} there" if missing else ""
    return f"{path}: SageMaker's segmentation layout — channels found: {', '.join(names)}{absent}"



def split_sets(path: Path, *, image_roots: dict[str, Path] | None = None, classes: list[str] | None = None,
               num_classes: int | None = None, label_attribute: str | None = None) -> dict[str, SampleSet]:
    """The splits of a segmentation dataset for the data check: ``train`` and, for SageMaker's layout with
    ``validation/`` + ``validation_annotation/``, ``validation`` (read against the training classes and label
    map); any other format is one ``train`` split. ``num_classes`` (SageMaker's hyperparameter) makes mask values
    at or above it findings instead of inferring the class count from the masks."""
    path = Path(path)
    sets = {"train": read_segmentation(path, image_roots=image_roots, classes=classes, num_classes=num_classes,
                                       label_attribute=label_attribute)}
    if "validation" in layout_channels(path):
        sets["validation"] = read_segmentation(path, split="validation", classes=sets["train"].classes)
    return sets


def _pixel_counts(sample_set: SampleSet) -> tuple[int, dict[str, int]]:
    import numpy as np

    from oculi.data.formats.masks import load_mask

    counts = np.zeros(256, dtype=np.int64)
    for sample in sample_set.samples:
        counts += np.bincount(load_mask(sample.target).ravel().clip(0, 255), minlength=256)
    per_class = {name: int(counts[i]) for i, name in enumerate(sample_set.classes)}
    return sum(per_class.values()), per_class


def convert_segmentation(source: Path, to: str, out: Path, *, source_format: str = "auto",
                         image_roots: dict[str, Path] | None = None, annotations: Path | None = None,
                         overwrite: bool = False, label_attribute: str | None = None,
                         default_class: str | None = None):  # noqa: ANN201
    """Convert segmentation data at ``source`` (any of :data:`SEGMENTATION_READ_FORMATS`) to ``to`` under ``out``,
    read the output back and return a :class:`~oculi.data.convert.Ledger` counting labelled pixels per class in
    and out (``unit="pixels"``) with every change. Layouts: ``sagemaker-masks`` → ``out/train`` +
    ``out/train_annotation`` (images copied); ``manifest`` → ``out/train.manifest`` + ``out/masks/``; ``voc`` →
    ``out/JPEGImages`` + ``out/SegmentationClass``; ``coco`` → ``out/annotations.json`` (RLE; images referenced);
    ``labelstudio`` → ``out/labelstudio.json`` (brush RLE); ``cvat`` → ``out/annotations.xml`` (``<mask>``); both
    reference the images. ``default_class``: the class of VIA regions without one. An output that is (or holds)
    the input is refused, an existing one unless ``overwrite``; no image found is a :class:`DataError` (see
    :func:`~oculi.data.convert.guard_output`)."""
    from oculi.data.convert import Ledger, guard_output, output_paths, require_images
    from oculi.data.formats.coco_masks import write_coco_masks
    from oculi.data.formats.mask_manifest import write_mask_manifest
    from oculi.data.formats.masks import write_mask_folders
    from oculi.data.formats.tools import WRITTEN_TOOL_FORMATS, tool_output, write_tool
    from oculi.data.formats.voc_masks import write_voc_masks

    if to not in SEGMENTATION_FORMATS:
        raise ConfigError(f"--to got {to!r}; segmentation data converts to one of {', '.join(SEGMENTATION_FORMATS)}.")
    read = read_segmentation(source, annotations=annotations, image_roots=image_roots, format=source_format,
                             label_attribute=label_attribute, default_class=default_class)
    errors = [f for f in read.findings if f.level == "error"]
    if errors:
        raise DataError(f"{errors[0].location()}: {errors[0].message} Fix the {len(errors)} error(s) first (see "
                        f"`oculi data check {source}`).")
    require_images(read, Path(source))
    inputs = [p for s in read.samples for p in (s.image, getattr(s.target, "mask", None)) if p is not None]
    guard_output([source, annotations], inputs, out,
                 output_paths(to, out, task="segmentation"), overwrite)
    if to == "sagemaker-masks":
        written, back_path = write_mask_folders(read, out / "train", out / "train_annotation"), out
    elif to == "manifest":
        back_path = out / "train.manifest"
        written = write_mask_manifest(read, back_path)
    elif to == "voc":
        written, back_path = write_voc_masks(read, out), out
    elif to in WRITTEN_TOOL_FORMATS:
        back_path = tool_output(to, out)
        written = write_tool(read, to, back_path)
    else:
        back_path = out / "annotations.json"
        written = write_coco_masks(read, back_path)
    back = read_segmentation(back_path, format=to)
    pixels_in, per_class_in = _pixel_counts(read)
    pixels_out, per_class_out = _pixel_counts(back)
    changes = [*read.findings, *written, *(f for f in back.findings if f.level != "info")]
    return Ledger(source=str(source), source_format=read.format, target=str(back_path), target_format=to,
                  images_in=len(read), images_out=len(back), boxes_in=pixels_in, boxes_out=pixels_out,
                  boxes_per_class_in=per_class_in, boxes_per_class_out=per_class_out, changes=changes, unit="pixels")
