"""What a batch transform reads: a folder of images (recursive), one image, an augmented manifest or a RecordIO
``.rec`` (SplitType RecordIO: each record is one image) — listed as
:class:`TransformItem` s in a fixed order, each with the relative name its output is called after
(``<name>.out``, SageMaker's convention)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from oculi.data.formats.manifest import is_manifest, read_image_references
from oculi.data.formats.recordio import RecordError, is_recordio, iter_records, record_path
from oculi.errors import DataError
from oculi.types import IMAGE_EXTENSIONS

InputKind = Literal["folder", "image", "manifest", "recordio"]


@dataclass(frozen=True)
class TransformItem:
    """One image to transform. ``name``: relative POSIX path (sub-folders kept) that names its output;
    ``path``: the local file, or None when the input already says it cannot be read (``problem``, e.g. a manifest
    line whose image is missing; ``name`` is empty when the line names no image); ``line``: its manifest line."""

    name: str
    path: Path | None
    problem: str = ""
    line: int | None = None


@dataclass(frozen=True)
class TransformInput:
    """The listed input: its ``kind``, the ``source`` path and the ``items`` in transform order (folder: sorted
    relative paths; manifest: line order)."""

    kind: InputKind
    source: Path
    items: list[TransformItem]


def _folder_images(folder: Path) -> list[TransformItem]:
    items = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # skip .git, .ipynb_checkpoints, …
        for file in files:
            if not file.startswith(".") and Path(file).suffix.lower() in IMAGE_EXTENSIONS:
                path = Path(root) / file
                items.append(TransformItem(path.relative_to(folder).as_posix(), path))
    return sorted(items, key=lambda item: item.name)


def _manifest_items(path: Path, image_roots: dict[str, Path] | None) -> list[TransformItem]:
    items: list[TransformItem] = []
    first_line: dict[str, int] = {}
    for ref in read_image_references(path, image_roots):
        problem = ref.problem
        if not problem and ref.name in first_line:
            problem = (f"{path}:{ref.lineno}: image {ref.reference} has the same output name ({ref.name}.out) as "
                       f"line {first_line[ref.name]}; each image gives one <name>.out, so list it once.")
        if not problem:
            first_line[ref.name] = ref.lineno
        items.append(TransformItem(ref.name, None if problem else ref.image, problem, ref.lineno))
    return items


def _record_items(path: Path) -> list[TransformItem]:
    """One item per record of a ``.rec`` (``record-000012`` names the 13th); a broken record ends the list with an
    item naming its index and byte offset."""
    items: list[TransformItem] = []
    try:
        for index, offset, _ in iter_records(path):
            items.append(TransformItem(f"record-{index:06d}", record_path(path, offset)))
    except RecordError as e:
        items.append(TransformItem(f"record-{e.index:06d}", None, f"{e} The records after it cannot be read."))
    return items


def list_inputs(source: Path, image_roots: dict[str, Path] | None = None) -> TransformInput:
    """List what ``source`` holds: a folder (every image file below it by extension, hidden files and folders
    left out), a single image file, or an augmented manifest (JSON lines with ``source-ref``; ``image_roots``
    maps ``s3://`` prefixes to local folders). Raises :class:`DataError` naming the path when it is missing, holds
    no images, or is neither an image nor a manifest."""
    source = Path(source).expanduser()
    if not source.exists():
        raise DataError(f"{source}: not found. Pass a folder of images, one image or an augmented manifest as "
                        "--input.")
    source = source.resolve()  # results and errors.jsonl name the images by absolute path
    if source.is_dir():
        items = _folder_images(source)
        if not items:
            raise DataError(f"{source}: no images found below it (looked for {', '.join(IMAGE_EXTENSIONS)} "
                            "files, sub-folders included).")
        return TransformInput("folder", source, items)
    if is_recordio(source):  # SplitType RecordIO: one image record at a time
        return TransformInput("recordio", source, _record_items(source))
    if source.suffix.lower() in IMAGE_EXTENSIONS:
        return TransformInput("image", source, [TransformItem(source.name, source)])
    if is_manifest(source):
        return TransformInput("manifest", source, _manifest_items(source, image_roots))
    raise DataError(f"{source}: neither an image (by extension: {', '.join(IMAGE_EXTENSIONS)}) nor an augmented "
                    'manifest (JSON lines such as {"source-ref": "s3://bucket/a.jpg"}). Pass a folder of images, '
                    "one image or a manifest as --input.")
