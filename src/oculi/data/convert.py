"""Convert object detection data between formats, with a ledger of everything counted, dropped or changed.

The source is read into ``xyxy`` pixel :class:`~oculi.types.BoxTarget` samples, written in the target format, and
the written data is read back, so the ledger's "out" counts are what a reader of the output will see."""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from oculi.data.detection import DETECTION_FORMATS, read_detection
from oculi.data.formats.boxes import copy_image, unique_stems
from oculi.data.formats.coco import write_coco
from oculi.data.formats.manifest import write_detection_manifest
from oculi.data.formats.recordio import extract_images, write_recordio
from oculi.data.formats.sagemaker_json import write_sagemaker_json
from oculi.data.formats.tools import WRITTEN_TOOL_FORMATS, tool_output, write_tool
from oculi.data.formats.voc import write_voc
from oculi.data.formats.yolo import write_yolo
from oculi.errors import ConfigError, DataError
from oculi.types import Finding, SampleSet

_SHOWN_PER_CODE = 5
_STYLES = {"error": "red", "warning": "yellow", "info": "cyan"}


@dataclass
class Ledger:
    """What a conversion read and wrote. ``boxes_per_class_in/out``: boxes per class name (for segmentation,
    ``unit`` is ``pixels`` and these count labelled pixels per class, ignored pixels excluded); ``changes``: every
    box or image dropped or changed, with its reason (reader findings, writer findings, and problems found
    reading the output back)."""

    source: str
    source_format: str
    target: str
    target_format: str
    images_in: int
    images_out: int
    boxes_in: int
    boxes_out: int
    boxes_per_class_in: dict[str, int]
    boxes_per_class_out: dict[str, int]
    changes: list[Finding] = field(default_factory=list)
    unit: str = "boxes"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the whole ledger."""
        return {**asdict(self), "changes": [asdict(f) for f in self.changes]}

    def render(self, console: Console) -> None:
        """Print the per-class box table with image and box totals, then the changes grouped by code."""
        table = Table(title=f"{self.source_format} → {self.target_format}")
        table.add_column("class")
        table.add_column(f"{self.unit} in", justify="right")
        table.add_column(f"{self.unit} out", justify="right")
        for name in dict.fromkeys([*self.boxes_per_class_in, *self.boxes_per_class_out]):
            table.add_row(name, str(self.boxes_per_class_in.get(name, 0)), str(self.boxes_per_class_out.get(name, 0)))
        table.add_section()
        table.add_row(self.unit, str(self.boxes_in), str(self.boxes_out), style="bold")
        table.add_row("images", str(self.images_in), str(self.images_out), style="bold")
        console.print(table)
        by_code: dict[str, list[Finding]] = defaultdict(list)
        for change in self.changes:
            by_code[change.code].append(change)
        if by_code:
            console.print(Text(f"\nChanges ({len(self.changes)})", style="bold"))
        for code, group in by_code.items():
            style = _STYLES[group[0].level]
            for change in group[:_SHOWN_PER_CODE]:
                line = Text("  ")
                line.append(f"{change.level} {code}", style=style)
                line.append(f"  {change.location()}: " if change.location() else "  ", style="bold")
                line.append(change.message)
                console.print(line, soft_wrap=True)
            if len(group) > _SHOWN_PER_CODE:
                console.print(f"  … and {len(group) - _SHOWN_PER_CODE} more {code} (all of them with --json)")
        console.print(f"\nWrote {self.images_out} images and {self.boxes_out} {self.unit} as {self.target_format} to "
                      f"{self.target}", soft_wrap=True)


def output_paths(to: str, out: Path, *, copy_images: bool = False, task: str = "detection") -> list[Path]:
    """The files and folders a conversion to ``to`` under ``out`` writes (``task``: ``classification``,
    ``detection`` or ``segmentation``), for the overwrite checks of :func:`guard_output`."""
    out = Path(out)
    if to in WRITTEN_TOOL_FORMATS:
        path = tool_output(to, out)
        return [path, *([path.parent / "images"] if copy_images else [])]
    if task == "segmentation":
        return {"sagemaker-masks": [out / "train", out / "train_annotation"],
                "manifest": [out / "train.manifest", out / "masks"],
                "voc": [out / "JPEGImages", out / "SegmentationClass", out / "ImageSets" / "Segmentation" /
                        "default.txt", out / "labelmap.txt"],
                "coco": [out / "annotations.json"]}[to]
    if to == "recordio":
        path = out if out.suffix.lower() == ".rec" else out / "train.rec"
        return [path, path.with_suffix(".idx"), path.with_suffix(".classes")]
    if to == "sagemaker-json":
        return [out / "train_annotation", *([out / "train"] if copy_images else [])]
    if to in ("manifest", "coco"):
        suffixes = (".manifest", ".jsonl") if to == "manifest" else (".json",)
        path = out if out.suffix.lower() in suffixes else out / ("train.manifest" if to == "manifest"
                                                                 else "annotations.json")
        return [path, *([path.parent / "images"] if copy_images else [])]
    if to == "voc":
        return [out / "Annotations", *([out / "JPEGImages"] if copy_images else [])]
    return [out / "labels", out / "images", out / "data.yaml"]


def _exists(path: Path) -> bool:
    if path.is_symlink() or path.is_file():
        return True
    return path.is_dir() and any(path.iterdir())


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def guard_output(sources: Iterable[Path], images: Iterable[Path], out: Path, outputs: list[Path],
                 overwrite: bool) -> None:
    """Refuse a conversion that would write over its own input, or over existing files without consent.

    ``sources``: the annotation file(s) or dataset folder(s) read; ``images``: the images they list; ``outputs``:
    what the conversion writes (:func:`output_paths`). Raises :class:`ConfigError` when ``out`` is a source, when
    an output is (or holds) a source or an image, or is a file or folder inside a source folder that exists; and,
    unless ``overwrite``, when an output already exists (a non-empty folder or a file). With ``overwrite`` the
    existing outputs are removed first, so what is read back is exactly what this conversion wrote."""
    out_resolved = Path(out).resolve()
    inputs = [Path(p).resolve() for p in sources if p is not None]
    pictures = {Path(p).resolve() for p in images}
    for source in inputs:
        if out_resolved == source:
            suggestion = Path(out).with_name(f"{Path(out).stem}-converted")
            raise ConfigError(f"the output {out} is the input {source}; converting would overwrite the data being "
                              f"read. Pass another output folder, e.g. {suggestion}.")
    folders = [source for source in inputs if source.is_dir()]
    for output in outputs:
        target = output.resolve()
        exists = _exists(output)
        clash = next((s for s in inputs if _inside(s, target)), None) or \
            next((f for f in folders if exists and target.is_relative_to(f)), None)
        picture = None if clash else next((p for p in pictures if _inside(p, target)), None)
        if clash or picture:
            what = f"an image the annotations list ({picture})" if picture else f"the input ({clash})"
            raise ConfigError(f"the output {output} is, holds or would overwrite {what}; converting there would "
                              "change the data being read. Pass another output folder.")
    existing = [p for p in outputs if _exists(p)]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise ConfigError(f"the output already exists: {names}. Pass --overwrite (Python: overwrite=True) to "
                          "replace it, or choose another output folder.")
    for path in existing:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def require_images(read: SampleSet, source: Path) -> None:
    """Raise :class:`DataError` when the data read from ``source`` holds no image to convert: naming the
    images looked for and where when every listed image is missing, else what was read and found empty."""
    if len(read):
        return
    missing = [f for f in read.findings if f.code == "missing_image"]
    if missing:
        first = missing[0]
        raise DataError(f"{source}: none of the {len(missing)} image(s) listed was found (read as {read.format}), "
                        f"e.g. {first.location()}: {first.message} Nothing was written.")
    errors = [f for f in read.findings if f.level == "error"]
    detail = f" {len(errors)} error(s), e.g. {errors[0].location()}: {errors[0].message}" if errors else ""
    raise DataError(f"{source}: read as {read.format} ({read.source}), it holds no annotated image to convert."
                    f"{detail} Check the path (and the format with --from); nothing was written.")


def _box_counts(sample_set: SampleSet) -> tuple[int, dict[str, int]]:
    counts = sample_set.class_counts()
    return sum(counts.values()), {name: counts.get(i, 0) for i, name in enumerate(sample_set.classes)}


def _copied(sample_set: SampleSet, folder: Path, findings: list[Finding]) -> SampleSet:
    """``sample_set`` with its images copied (byte for byte) into ``folder`` and the samples pointing there."""
    stems = unique_stems(sample_set.samples, findings, str(folder))
    samples = [replace(s, image=copy_image(s.image, folder, stem)) for s, stem in zip(sample_set.samples, stems,
                                                                                      strict=True)]
    return replace(sample_set, samples=samples)


def _write(sample_set: SampleSet, to: str, out: Path, copy_images: bool) -> tuple[list[Finding], Path]:
    """Write ``sample_set`` as ``to`` under ``out``; returns the findings and the path to read back."""
    findings: list[Finding] = []
    if to == "recordio":  # the images go into the records (copy_images is implied)
        path = out if out.suffix.lower() == ".rec" else out / "train.rec"
        return findings, write_recordio(sample_set, path)
    if to == "sagemaker-json":
        images = out / "train" if copy_images else None
        findings += write_sagemaker_json(sample_set, images, out / "train_annotation")
        return findings, out
    if to == "manifest":
        path = out if out.suffix.lower() in (".manifest", ".jsonl") else out / "train.manifest"
        if copy_images:
            sample_set = _copied(sample_set, path.parent / "images", findings)
        findings += write_detection_manifest(sample_set, path)
        return findings, path
    if to == "coco":
        path = out if out.suffix.lower() == ".json" else out / "annotations.json"
        if copy_images:
            sample_set = _copied(sample_set, path.parent / "images", findings)
        findings += write_coco(sample_set, path)
        return findings, path
    if to == "voc":
        findings += write_voc(sample_set, out, copy_images=copy_images)
        return findings, out
    if to in WRITTEN_TOOL_FORMATS:
        path = tool_output(to, out)
        if copy_images:
            sample_set = _copied(sample_set, path.parent / "images", findings)
        findings += write_tool(sample_set, to, path)
        return findings, path
    findings += write_yolo(sample_set, out, copy_images=copy_images)
    return findings, out


def _from_records(read: SampleSet, to: str, out: Path) -> SampleSet:
    """RecordIO read for another format: its images written to ``out/images`` (the other formats reference
    image files)."""
    if read.format != "recordio" or to == "recordio":
        return read
    return extract_images(read, (out.parent if out.suffix else out) / "images")


def convert(source: Path, to: str, out: Path, *, task: str = "auto", **options: Any) -> Ledger:
    """Convert the data at ``source`` to the format ``to`` under ``out`` and return the :class:`Ledger` of what was
    read, written and changed. ``task`` (``auto``: recognised from the data, see :mod:`oculi.data.tasks`) picks the
    converter: :func:`convert_detection` for boxes, :func:`~oculi.data.segmentation.convert_segmentation` for
    masks, :func:`convert_classification` for image-level classes; ``options`` are theirs (``copy_images``,
    ``source_format``, ``image_roots``, ``names``, ``annotations``, ``overwrite``, ``label_attribute``,
    ``default_class``)."""
    from oculi.data.tasks import convert_data

    return convert_data(Path(source), to, Path(out), task=task, **options)


def convert_detection(
    source: Path,
    to: str,
    out: Path,
    *,
    copy_images: bool = False,
    source_format: str = "auto",
    image_roots: dict[str, Path] | None = None,
    names: Path | None = None,
    annotations: Path | None = None,
    overwrite: bool = False,
    label_attribute: str | None = None,
    default_class: str | None = None,
) -> Ledger:
    """Convert the detection data at ``source`` (any of :data:`DETECTION_READ_FORMATS`, recognised by content unless
    ``source_format`` names it) to the format ``to``, written under ``out``; boxes stay ``xyxy`` pixels in between.

    Output layouts: ``sagemaker-json`` → ``out/train_annotation/*.json`` (+ ``out/train/`` images when copied);
    ``manifest`` → ``out/train.manifest`` (or ``out`` itself when it ends in ``.manifest``/``.jsonl``); ``coco`` →
    ``out/annotations.json`` (or ``out`` when it ends in ``.json``); ``voc`` → ``out/Annotations`` (+
    ``JPEGImages``); ``yolo`` → ``out/labels``, ``out/images`` (links unless copied), ``out/data.yaml``;
    ``labelstudio`` → ``out/labelstudio.json``; ``cvat`` → ``out/annotations.xml`` (or ``out`` when it ends in
    ``.json`` / ``.xml``; + ``images/`` when copied). Images are
    referenced by path unless ``copy_images`` (``shutil.copy2``, never re-encoded). ``image_roots``, ``names`` and
    ``annotations`` are passed to :func:`~oculi.data.detection.read_detection`. Returns the :class:`Ledger`.

    Nothing of the input is ever written over: an output that is (or holds) the input is refused, and so is an
    output that exists unless ``overwrite`` (then it is replaced). Data in which no image is found (or every listed
    image is missing) raises :class:`~oculi.errors.DataError` and writes nothing. ``label_attribute``: a
    manifest's label attribute, when its lines have several. ``default_class``: the class of VIA regions without
    a class attribute."""
    if to not in (*DETECTION_FORMATS, "recordio"):
        raise ConfigError(f"--to got {to!r}; expected one of {', '.join(DETECTION_FORMATS)}, recordio.")
    source, out = Path(source), Path(out)
    read = read_detection(source, annotations=annotations, image_roots=image_roots, names=names,
                          format=source_format, label_attribute=label_attribute, default_class=default_class)
    require_images(read, source)
    guard_output([source, annotations, names], (s.image for s in read.samples), out,
                 output_paths(to, out, copy_images=copy_images), overwrite)
    read = _from_records(read, to, out)
    written_findings, back_path = _write(read, to, out, copy_images)
    back = read_detection(back_path, format=to)
    if not len(back):
        problems = [f for f in [*written_findings, *back.findings] if f.level == "error"]
        example = f" e.g. {problems[0].location()}: {problems[0].message}" if problems else ""
        raise DataError(f"{back_path}: the {to} data written from {len(read)} image(s) reads back with none;"
                        f"{example or ' nothing usable was written.'}")
    boxes_in, per_class_in = _box_counts(read)
    boxes_out, per_class_out = _box_counts(back)
    changes = [*read.findings, *written_findings, *(f for f in back.findings if f.level != "info")]
    return Ledger(
        source=str(source), source_format=read.format, target=str(back_path), target_format=to,
        images_in=len(read), images_out=len(back), boxes_in=boxes_in, boxes_out=boxes_out,
        boxes_per_class_in=per_class_in, boxes_per_class_out=per_class_out, changes=changes,
    )



CLASSIFICATION_FORMATS = (*WRITTEN_TOOL_FORMATS, "recordio")


def convert_classification(source: Path, to: str, out: Path, *, copy_images: bool = False,
                           source_format: str = "auto", image_roots: dict[str, Path] | None = None,
                           annotations: Path | None = None, overwrite: bool = False,
                           label_attribute: str | None = None, names: Path | None = None,
                           default_class: str | None = None) -> Ledger:
    """Convert image-classification data at ``source`` (class folders, a ``.lst``, a manifest, a Label Studio
    export with Choices or a CVAT XML with tags; see :func:`~oculi.data.channels.read_channel`) to ``to`` (one of
    :data:`CLASSIFICATION_FORMATS`: Label Studio ``choices``, CVAT ``<tag>``) under ``out``
    (``out/labelstudio.json`` or ``out/annotations.xml``; + ``images/`` when ``copy_images``). The output is read
    back; the ledger counts class labels per class (``unit="labels"``; a multi-label image counts once per
    class). ``source_format``, ``annotations``, ``names``
    and ``default_class`` do not apply to classification data and are refused when given."""
    from oculi.data.channels import read_channel

    if to not in CLASSIFICATION_FORMATS:
        raise ConfigError(f"--to got {to!r}; image-classification data converts to one of "
                          f"{', '.join(CLASSIFICATION_FORMATS)}.")
    given = [name for name, value in (("--from", source_format != "auto"), ("--annotations", annotations),
                                      ("--names", names), ("--default-class", default_class)) if value]
    if given:
        raise ConfigError(f"{', '.join(given)} do(es) not apply to image-classification data; leave it out.")
    source, out = Path(source), Path(out)
    read = read_channel(source, image_roots=image_roots, label_attribute=label_attribute)
    require_images(read, source)
    guard_output([source], (s.image for s in read.samples), out, output_paths(to, out, copy_images=copy_images,
                                                                             task="classification"), overwrite)
    read = _from_records(read, to, out)
    written, back_path = _write(read, to, out, copy_images)
    back = read_channel(back_path)
    if not len(back):
        raise DataError(f"{back_path}: the {to} file written from {len(read)} image(s) reads back with none.")
    images_in, per_class_in = _box_counts(read)
    images_out, per_class_out = _box_counts(back)
    changes = [*read.findings, *written, *(f for f in back.findings if f.level != "info")]
    return Ledger(source=str(source), source_format=read.format, target=str(back_path), target_format=to,
                  images_in=len(read), images_out=len(back), boxes_in=images_in, boxes_out=images_out,
                  boxes_per_class_in=per_class_in, boxes_per_class_out=per_class_out, changes=changes,
                  unit="labels")
