"""Convert object detection data between formats, with a ledger of everything counted, dropped or changed.

The source is read into ``xyxy`` pixel :class:`~oculi.types.BoxTarget` samples, written in the target format, and
the written data is read back, so the ledger's "out" counts are what a reader of the output will see."""

from __future__ import annotations

from collections import defaultdict
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
from oculi.data.formats.sagemaker_json import write_sagemaker_json
from oculi.data.formats.voc import write_voc
from oculi.data.formats.yolo import write_yolo
from oculi.errors import ConfigError
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
    findings += write_yolo(sample_set, out, copy_images=copy_images)
    return findings, out


def convert(source: Path, to: str, out: Path, *, task: str = "auto", **options: Any) -> Ledger:
    """Convert the data at ``source`` to the format ``to`` under ``out`` and return the :class:`Ledger` of what was
    read, written and changed. ``task`` (``auto``: recognised from the data, see :mod:`oculi.data.tasks`) picks the
    converter: :func:`convert_detection` for boxes, :func:`~oculi.data.segmentation.convert_segmentation` for
    masks; ``options`` are theirs (``copy_images``, ``source_format``, ``image_roots``, ``names``,
    ``annotations``)."""
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
) -> Ledger:
    """Convert the detection data at ``source`` (any of :data:`DETECTION_FORMATS`, recognised by content unless
    ``source_format`` names it) to the format ``to``, written under ``out``; boxes stay ``xyxy`` pixels in between.

    Output layouts: ``sagemaker-json`` → ``out/train_annotation/*.json`` (+ ``out/train/`` images when copied);
    ``manifest`` → ``out/train.manifest`` (or ``out`` itself when it ends in ``.manifest``/``.jsonl``); ``coco`` →
    ``out/annotations.json`` (or ``out`` when it ends in ``.json``); ``voc`` → ``out/Annotations`` (+
    ``JPEGImages``); ``yolo`` → ``out/labels``, ``out/images`` (links unless copied), ``out/data.yaml``. Images are
    referenced by path unless ``copy_images`` (``shutil.copy2``, never re-encoded). ``image_roots``, ``names`` and
    ``annotations`` are passed to :func:`~oculi.data.detection.read_detection`. Returns the :class:`Ledger`."""
    if to not in DETECTION_FORMATS:
        raise ConfigError(f"--to got {to!r}; expected one of {', '.join(DETECTION_FORMATS)}.")
    source, out = Path(source), Path(out)
    read = read_detection(source, annotations=annotations, image_roots=image_roots, names=names,
                          format=source_format)
    written_findings, back_path = _write(read, to, out, copy_images)
    back = read_detection(back_path, format=to)
    boxes_in, per_class_in = _box_counts(read)
    boxes_out, per_class_out = _box_counts(back)
    changes = [*read.findings, *written_findings, *(f for f in back.findings if f.level != "info")]
    return Ledger(
        source=str(source), source_format=read.format, target=str(back_path), target_format=to,
        images_in=len(read), images_out=len(back), boxes_in=boxes_in, boxes_out=boxes_out,
        boxes_per_class_in=per_class_in, boxes_per_class_out=per_class_out, changes=changes,
    )

