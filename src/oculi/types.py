"""The sample vocabulary that runs end to end.

- An image in memory is a ``uint8`` tensor ``[3, H, W]`` (RGB).
- A classification target is a class index ``int`` (single-label) or a tuple of class indices (multi-label).
- A detection target is a :class:`BoxTarget`: ``xyxy`` absolute-pixel boxes (``float32 [N, 4]`` as tensors) with
  ``labels int64 [N]``; a segmentation target is a :class:`MaskTarget` that loads as an ``int64 [H, W]`` mask of
  class indices with one ignore value, :data:`IGNORE_INDEX`.

Readers in ``oculi.data.formats`` produce :class:`SampleSet` objects; every format-specific coordinate or label
encoding is converted there and nowhere else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Task = Literal["classification", "detection", "segmentation"]
Level = Literal["error", "warning", "info"]

IGNORE_INDEX = 255  # mask pixels with this value count in neither the loss nor the metrics (Pascal VOC's border)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class Sample:
    """One labelled image. ``image`` is a local file; ``target`` is task-specific (see module docstring);
    ``origin`` says where the label came from ("train.lst:12", "bees/0001.jpg") for error messages."""

    image: Path
    target: Any = None
    origin: str = ""

    def where(self) -> str:
        """The file (and line) to name in a message about this sample."""
        return self.origin or str(self.image)


@dataclass(frozen=True)
class BoxTarget:
    """Detection target of one image: ``boxes`` are ``xyxy`` absolute pixels (origin top-left, x right, y down),
    ``labels`` class indices, ``difficult`` Pascal VOC's flag per box; ``width``/``height`` the image size in
    pixels (after EXIF rotation) when known. Tuples keep samples hashable and cheap; :meth:`tensors` gives the
    ``float32 [N, 4]`` / ``int64 [N]`` tensors of the sample vocabulary."""

    boxes: tuple[tuple[float, float, float, float], ...] = ()
    labels: tuple[int, ...] = ()
    difficult: tuple[bool, ...] = ()
    width: int | None = None
    height: int | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self) -> dict[str, Any]:
        """``{"boxes": float32 [N, 4], "labels": int64 [N]}``."""
        import torch

        return {"boxes": torch.tensor(self.boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor(self.labels, dtype=torch.int64)}


@dataclass(frozen=True)
class MaskTarget:
    """Segmentation target of one image, kept on disk until a batch needs it (see
    :func:`oculi.data.formats.masks.load_mask`, which gives the ``int64 [H, W]`` class-index mask).

    ``mask``: a single-channel PNG whose pixel values are mapped to class indices by ``lookup`` (256 entries:
    value → class index or :data:`IGNORE_INDEX`; None = the value is the class index). ``colors``: for RGB masks
    (Ground Truth colour maps), ``((r, g, b), class index)`` pairs. ``polygons``: instead of a mask file, COCO
    segmentations ``(class index, segmentation, iscrowd)`` rasterised at ``width × height`` (crowd → ignore).
    ``present``: the class indices that occur in the mask (read once by the reader; used for class counts and
    stratified splits). ``width``/``height``: the image size in pixels."""

    mask: Path | None = None
    lookup: tuple[int, ...] | None = None
    colors: tuple[tuple[tuple[int, int, int], int], ...] = ()
    polygons: tuple[tuple[int, Any, bool], ...] = ()
    present: tuple[int, ...] = ()
    width: int | None = None
    height: int | None = None

    @property
    def labels(self) -> tuple[int, ...]:
        """The classes present, like :attr:`BoxTarget.labels` (what class counts and splits group by)."""
        return self.present


@dataclass(frozen=True)
class Finding:
    """One problem (or note) about the data. ``level`` is ``error`` (cannot train), ``warning`` (trains, but
    look) or ``info`` (handled for you). ``path`` names the file, ``line`` the 1-based manifest/list line."""

    level: Level
    code: str
    message: str
    path: str = ""
    line: int | None = None

    def location(self) -> str:
        """``path:line`` or ``path``."""
        if self.line is not None:
            return f"{self.path}:{self.line}"
        return self.path


@dataclass
class SampleSet:
    """The samples of one channel/split with their class names (index ``i`` ↔ ``classes[i]``).

    ``format`` names the reader ("folders", "lst", "manifest"), ``source`` the channel path, and ``findings``
    what the reader noticed (bad lines, missing files) — the data check adds to them. ``class_ids``: for detection
    formats with their own (possibly sparse) class ids — SageMaker JSON, manifests, COCO — the original id of each
    class index, so a writer of the same format restores them; None when indices are the ids. ``label_encoding``:
    for segmentation, the label map the masks were decoded with (``{"scale": s}`` or ``{"map": {class: value}}``;
    None = pixel values are class indices)."""

    samples: list[Sample]
    classes: list[str]
    task: Task = "classification"
    multi_label: bool = False
    format: str = ""
    source: str = ""
    findings: list[Finding] = field(default_factory=list)
    class_ids: tuple[int, ...] | None = None
    label_encoding: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def class_counts(self) -> Counter[int]:
        """Images per class index (a multi-label image counts once for each of its classes; for detection,
        boxes per class; for segmentation, images in which the class has at least one pixel)."""
        counts: Counter[int] = Counter()
        for s in self.samples:
            if isinstance(s.target, BoxTarget | MaskTarget):
                counts.update(s.target.labels)
            elif isinstance(s.target, tuple):
                counts.update(s.target)
            elif s.target is not None:
                counts[s.target] += 1
        return counts

    def with_samples(self, samples: list[Sample]) -> SampleSet:
        """A copy holding ``samples`` instead (same classes and format, no findings)."""
        return replace(self, samples=list(samples), findings=[])
