"""`oculi data check` for image classification: decode every image, count images per class and split, and report
each problem with the file (and manifest/list line) it comes from.

Finding codes (besides the readers' own, which are carried over):

- errors: ``unreadable``, ``truncated``, ``not_an_image``, ``missing_image`` (the image does not decode or is not
  there), ``too_large`` (the header claims more pixels than the decompression-bomb limit), ``empty_class`` (a
  training class without a usable image), ``no_images``, ``label_out_of_range``,
  ``class_mismatch`` (a split whose classes differ from the training classes), ``duplicate_across_splits``
  (identical file bytes in two splits);
- warnings: ``duplicate_within_split``, ``empty_class`` for a non-training split;
- segmentation (from :mod:`oculi.data.formats.masks`): errors ``missing_mask``, ``unreadable_mask``, ``rgb_mask``,
  ``mask_size``, ``value_outside_label_map``; warnings ``extra_mask`` and ``empty_class`` (a class that never
  appears in the masks);
- info (handled for you): ``converted_mode`` (grayscale, palette, RGBA, CMYK, 16-bit … converted to RGB),
  ``exif_rotation``, ``animated`` (first frame used), ``extension_mismatch``."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from oculi.data.formats.recordio import is_record_path, record_image
from oculi.data.image import ImageInfo, inspect_image
from oculi.errors import DataError
from oculi.types import Finding, Sample, SampleSet

_FORMAT_EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg"),
    "MPO": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "BMP": (".bmp",),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
    "PPM": (".ppm", ".pgm"),
}
# Errors that `skip_bad_images=true` turns into skipped samples (the image is left out, the rest trains).
SKIPPABLE_CODES = ("unreadable", "truncated", "not_an_image", "missing_image", "too_large")
# Class ids outside the classes (a .lst / manifest line, a box): the reader already left the line or box out, and
# a sample whose label is out of range is dropped; `skip_bad_images=true` trains on the rest.
SKIPPABLE_LABEL_CODES = ("label_out_of_range", "unknown_class")
_LEVELS = (("error", "Errors", "red"), ("warning", "Warnings", "yellow"), ("info", "Notes", "cyan"))
_SHOWN_PER_CODE = 10


@dataclass(frozen=True)
class _Decoded:
    """What decoding one file gave: ``info`` on success, else the finding ``code`` and ``problem``."""

    info: ImageInfo | None
    digest: str | None = None
    code: str = ""
    problem: str = ""


def _decode(path: Path) -> _Decoded:
    try:
        data = record_image(path)  # an image inside a RecordIO record, or None for an ordinary file
        data = path.read_bytes() if data is None else data
    except DataError as e:
        return _Decoded(None, code="unreadable", problem=str(e))
    except FileNotFoundError:
        return _Decoded(None, code="missing_image", problem="file not found")
    except OSError as e:
        return _Decoded(None, code="unreadable", problem=f"cannot be read ({e})")
    if not data:
        return _Decoded(None, code="unreadable", problem="empty file (0 bytes)")
    try:
        info = inspect_image(path)
    except DataError as e:
        problem = str(e).removeprefix(f"{path}: ").rstrip(".")
        if "over the limit of" in problem:
            code = "too_large"
        elif "truncated" in problem.lower():
            code = "truncated"
        elif "not an image" in problem:
            code = "not_an_image"
        else:
            code = "unreadable"
        return _Decoded(None, code=code, problem=problem)
    return _Decoded(info, digest=hashlib.sha1(data).hexdigest())


def _note_code(note: str) -> str:
    if note.startswith("EXIF orientation"):
        return "exif_rotation"
    if note.startswith("animated"):
        return "animated"
    return "converted_mode"


def _listed_at(sample: Sample) -> str:
    return f"; listed at {sample.origin}" if sample.origin else ""


def _labels(target: Any) -> tuple[Any, ...]:
    labels = getattr(target, "labels", None)  # boxes and masks list their classes; classification is the index
    if labels is not None:
        return labels
    return target if isinstance(target, tuple) else (target,)


def _valid_target(target: Any, num_classes: int) -> bool:
    return all(
        isinstance(t, int) and not isinstance(t, bool) and 0 <= t < num_classes for t in _labels(target)
    )


@dataclass
class CheckReport:
    """The result of a data check.

    ``counts[split][class_name]``: usable images (decodable, label in range; a multi-label image counts once per
    label). ``num_images[split]``: samples listed in the split. ``size_range``: ``min_width``, ``max_width``,
    ``min_height``, ``max_height`` in pixels after EXIF rotation (None when nothing decoded). ``bad_images``: files
    that failed to decode."""

    findings: list[Finding]
    counts: dict[str, dict[str, int]]
    classes: list[str]
    size_range: dict[str, int] | None
    num_images: dict[str, int]
    bad_images: set[Path] = field(default_factory=set)
    task: str = "classification"
    bad_labels: set[tuple[Path, str]] = field(default_factory=set)  # (image, origin) of out-of-range samples

    @property
    def ok(self) -> bool:
        """True when there is no error finding: the data can be trained on."""
        return not self.errors()

    def errors(self) -> list[Finding]:
        """The error findings."""
        return [f for f in self.findings if f.level == "error"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of the whole report."""
        return {
            "ok": self.ok,
            "task": self.task,
            "classes": list(self.classes),
            "counts": self.counts,
            "num_images": self.num_images,
            "size_range": self.size_range,
            "bad_images": sorted(str(p) for p in self.bad_images),
            "findings": [asdict(f) for f in self.findings],
        }

    def render(self, console: Console) -> None:
        """Print the images-per-class table, the size range, every finding grouped by level, and a verdict."""
        splits = list(self.counts)
        titles = {"detection": "Boxes per class", "segmentation": "Images showing each class"}
        table = Table(title=titles.get(self.task, "Usable images per class"))
        table.add_column("class")
        for split in splits:
            table.add_column(split, justify="right")
        for name in self.classes:
            table.add_row(name, *(str(self.counts[s].get(name, 0)) for s in splits))
        table.add_section()
        table.add_row("images listed", *(str(self.num_images[s]) for s in splits), style="bold")
        console.print(table)
        if self.size_range:
            r = self.size_range
            console.print(
                f"Image sizes: width {r['min_width']}–{r['max_width']} px, "
                f"height {r['min_height']}–{r['max_height']} px"
            )
        for level, title, style in _LEVELS:
            found = [f for f in self.findings if f.level == level]
            if not found:
                continue
            console.print(Text(f"\n{title} ({len(found)})", style=f"bold {style}"))
            by_code: dict[str, list[Finding]] = defaultdict(list)
            for finding in found:
                by_code[finding.code].append(finding)
            for code, group in by_code.items():
                for finding in group[:_SHOWN_PER_CODE]:
                    line = Text("  ")
                    line.append(code, style=style)
                    line.append(f"  {finding.location()}: " if finding.location() else "  ", style="bold")
                    line.append(finding.message)
                    console.print(line, soft_wrap=True)  # paths stay whole for copy and paste
                if len(group) > _SHOWN_PER_CODE:
                    console.print(
                        f"  … and {len(group) - _SHOWN_PER_CODE} more {code} (all of them with --json)"
                    )
        console.print()
        console.print(Text(self.verdict(), style="bold green" if self.ok else "bold red"), soft_wrap=True)

    def verdict(self) -> str:
        """One line: can the data be trained on, and what to do when not."""
        if self.ok:
            warnings = sum(f.level == "warning" for f in self.findings)
            look = f" ({warnings} warning(s) to look at)" if warnings else ""
            total = sum(self.num_images.values())
            return f"✓ The data can be trained on: {total} images, {len(self.classes)} classes{look}."
        errors = self.errors()
        text = f"✗ The data cannot be trained on: {len(errors)} error(s) above."
        skippable = [f for f in errors if f.code in SKIPPABLE_CODES]
        labels = [f for f in errors if f.code in SKIPPABLE_LABEL_CODES]
        if skippable or labels:
            rest = ("trains on the rest" if len(skippable) + len(labels) == len(errors)
                    else "the other errors need fixing")
            what = " and ".join(part for part in (
                f"{len(skippable)} image(s) cannot be read or found" if skippable else "",
                f"{len(labels)} label(s) have a class id outside the classes" if labels else "") if part)
            text += (
                f" {what}: `-p skip_bad_images=true` skips them (your files stay as they are) and {rest}."
            )
        return text


def _decode_all(paths: list[Path], workers: int, progress: bool) -> dict[Path, _Decoded]:
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results: Iterable[_Decoded] = pool.map(_decode, paths)
        if progress:
            columns = (
                TextColumn("Decoding images"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
            )
            with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
                results = list(bar.track(results, total=len(paths)))
        return dict(zip(paths, results, strict=True))


def _duplicates(sets: dict[str, SampleSet], decoded: dict[Path, _Decoded]) -> list[Finding]:
    by_digest: dict[str, dict[str, list[Sample]]] = defaultdict(lambda: defaultdict(list))
    for split, sample_set in sets.items():
        for sample in sample_set.samples:
            digest = decoded[sample.image].digest
            if digest is not None:
                by_digest[digest][split].append(sample)
    findings = []
    for groups in by_digest.values():
        splits = list(groups)
        for i, a in enumerate(splits):
            for b in splits[i + 1 :]:
                first, second = groups[a][0], groups[b][0]
                findings.append(
                    Finding(
                        "error",
                        "duplicate_across_splits",
                        f"the same image is in {a} and in {b}: {first.image}{_listed_at(first)} and "
                        f"{second.image}{_listed_at(second)}. Remove it from one split, or validation scores "
                        "will be too optimistic.",
                        str(first.image),
                    )
                )
        for split, samples in groups.items():
            if len(samples) > 1:
                names = ", ".join(f"{s.image}{f' ({s.origin})' if s.origin else ''}" for s in samples[:5])
                more = f" and {len(samples) - 5} more" if len(samples) > 5 else ""
                findings.append(
                    Finding(
                        "warning",
                        "duplicate_within_split",
                        f"{len(samples)} identical images in {split}: {names}{more}. Each copy counts in "
                        "training; keep one unless that weighting is intended.",
                        str(samples[0].image),
                    )
                )
    return findings


def _image_findings(image: Path, result: _Decoded, sample: Sample) -> list[Finding]:
    if result.info is None:
        return [Finding("error", result.code, f"{result.problem}{_listed_at(sample)}.", str(image))]
    info = result.info
    findings = [
        Finding("info", _note_code(note), f"{note} ({info.format}, {info.width}×{info.height}).", str(image))
        for note in info.notes
    ]
    expected = _FORMAT_EXTENSIONS.get(info.format or "")
    if expected and image.suffix.lower() not in expected and not is_record_path(image):
        findings.append(
            Finding(
                "info",
                "extension_mismatch",
                f"a {info.format} file with a {image.suffix} extension; it is decoded by its content.",
                str(image),
            )
        )
    return findings


def _empty_class_findings(
    split: str, sample_set: SampleSet, counts: dict[str, int], is_training: bool
) -> list[Finding]:
    from oculi.data.tasks import DATA_TASKS

    data_task = DATA_TASKS.get(sample_set.task)
    reported = {f.path for f in sample_set.findings if f.code == "empty_class"}
    findings = []
    for name in sample_set.classes:
        if counts.get(name, 0):
            continue
        path = str(Path(sample_set.source) / name) if sample_set.format == "folders" else sample_set.source
        if path in reported and sample_set.format == "folders":
            continue
        level = "error" if is_training and data_task.empty_class_is_error else "warning"
        fix = (
            "Add images of it, or remove the class." if is_training else "Its accuracy will not be measured."
        )
        message = f"class {name!r} has no usable {split} images. {fix}"
        if data_task.empty_class_message is not None:
            message = data_task.empty_class_message(name, split, is_training)
        findings.append(Finding(level, "empty_class", message, path))
    return findings


def check_classification(
    sets: dict[str, SampleSet], *, workers: int = 2, progress: bool = False
) -> CheckReport:
    """Check classification splits (``{"train": …, "validation": …, "test": …}``; the first split, normally
    ``train``, defines the classes). Decodes every image with ``workers`` threads (a progress bar on stderr when
    ``progress``), carries over the readers' findings and adds those listed in the module docstring."""
    if not sets:
        raise DataError("nothing to check: no splits were given.")
    training = "train" if "train" in sets else next(iter(sets))
    classes = sets[training].classes
    findings = [f for s in sets.values() for f in s.findings]
    first_sample: dict[Path, Sample] = {}
    for sample_set in sets.values():
        for sample in sample_set.samples:
            first_sample.setdefault(sample.image, sample)
    decoded = _decode_all(list(first_sample), workers, progress)
    bad_images = {p for p, r in decoded.items() if r.info is None}
    for image, result in decoded.items():
        findings.extend(_image_findings(image, result, first_sample[image]))
    infos = [r.info for r in decoded.values() if r.info is not None]
    size_range = None
    if infos:
        size_range = {
            "min_width": min(i.width for i in infos),
            "max_width": max(i.width for i in infos),
            "min_height": min(i.height for i in infos),
            "max_height": max(i.height for i in infos),
        }
    from oculi.data.tasks import DATA_TASKS

    counts: dict[str, dict[str, int]] = {}
    bad_labels: set[tuple[Path, str]] = set()
    for split, sample_set in sets.items():
        if sample_set.classes != classes:
            findings.append(
                Finding(
                    "error",
                    "class_mismatch",
                    f"the {split} classes ({', '.join(sample_set.classes)}) differ from the {training} classes "
                    f"({', '.join(classes)}); read {split} against the {training} classes.",
                    sample_set.source,
                )
            )
        counts[split] = {name: 0 for name in sample_set.classes}
        for sample in sample_set.samples:
            if not _valid_target(sample.target, sample_set.num_classes):
                bad_labels.add((sample.image, sample.origin))
                findings.append(
                    Finding(
                        "error",
                        "label_out_of_range",
                        f"label {sample.target!r} is outside the class "
                        f"indices 0–{sample_set.num_classes - 1}{_listed_at(sample)}.",
                        str(sample.image),
                    )
                )
            elif sample.image not in bad_images:
                for label in _labels(sample.target):
                    counts[split][sample_set.classes[label]] += 1
        if split == training and not any(counts[split].values()):
            findings.append(Finding("error", "no_images", f"no usable {split} images.", sample_set.source))
        findings.extend(_empty_class_findings(split, sample_set, counts[split], split == training))
        findings.extend(DATA_TASKS.get(sample_set.task).split_findings(split, sample_set))
    findings.extend(_duplicates(sets, decoded))
    return CheckReport(
        findings=findings,
        counts=counts,
        classes=list(classes),
        size_range=size_range,
        num_images={split: len(s) for split, s in sets.items()},
        bad_images=bad_images,
        task=sets[training].task,
        bad_labels=bad_labels,
    )


def check_path(
    path: Path, image_roots: dict[str, Path] | None = None, *, workers: int = 2, progress: bool = False,
    num_classes: int | None = None, label_attribute: str | None = None,
) -> CheckReport:
    """Check a dataset path: a folder of split folders (``train``, ``validation``/``val``, ``test``) is checked
    split by split against the training classes, and so is SageMaker's detection layout with a validation split;
    segmentation data (SageMaker's mask layout, VOC
    ``SegmentationClass``, ``-ref`` manifests) is checked with its masks (see :mod:`oculi.data.formats.masks`);
    a YOLO dataset whose data YAML names split folders is checked split by split (``train``, ``validation``,
    ``test``); anything else is checked as one ``train`` channel. ``num_classes`` applies to segmentation masks
    (values at or above it are reported; without it the class count comes from the label map or the masks) and to
    class ids in files that may not name their classes (``.lst``, manifests, SageMaker JSON, YOLO without
    names): an id at or above it is a ``label_out_of_range`` finding naming the file and line.
    ``label_attribute``: a manifest's label attribute, when its lines have several."""
    from oculi.data.tasks import recognise

    sets = recognise(Path(path)).read_splits(Path(path), image_roots=image_roots, num_classes=num_classes,
                                             label_attribute=label_attribute)
    return check_classification(sets, workers=workers, progress=progress)


def drop_bad_images(sets: dict[str, SampleSet], report: CheckReport) -> dict[str, SampleSet]:
    """The same splits without the samples whose image is in ``report.bad_images`` or whose label is out of
    range (for ``skip_bad_images=true``). Only the in-memory sample lists change; no file is touched."""
    return {
        split: s.with_samples([x for x in s.samples if x.image not in report.bad_images
                               and (x.image, x.origin) not in report.bad_labels])
        for split, s in sets.items()
    }
