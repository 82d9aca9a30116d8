"""SageMaker / MXNet image list files (``.lst``).

One image per line, tab-separated::

    index <TAB> class_id <TAB> relative/path.jpg                  single-label
    index <TAB> l_0 <TAB> l_1 … <TAB> l_{C-1} <TAB> relative/path.jpg   multi-label: one 0/1 column per class

The index is a unique integer; class ids start at 0 and are contiguous (class names are ``"0"``, ``"1"``, … unless
``classes`` is given). Multi-label lines are multi-hot, as in SageMaker's multi-label ``.lst`` example
(``multi_label=1``), and every line must have the same number of label columns. Labels may be written as floats
(MXNet's ``im2rec`` writes ``1.000000``); they must be whole numbers. Paths are relative to the image root —
the ``train`` channel folder for the ``train_lst`` channel, as SageMaker does — which defaults to
the ``.lst`` file's folder."""

from __future__ import annotations

import itertools
from pathlib import Path

from oculi.errors import DataError
from oculi.types import Finding, Sample, SampleSet

_FORM = "`index<TAB>class_id<TAB>relative/path.jpg`"


def _whole_number(text: str) -> int | None:
    """``"3"`` or ``"3.000000"`` → 3; anything else → None."""
    text = text.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None


def _looks_like_lst_line(line: str) -> bool:
    cols = line.rstrip("\r\n").split("\t")
    return len(cols) >= 3 and all(_whole_number(c) is not None for c in cols[:-1]) and bool(cols[-1].strip())


def is_lst(path: Path) -> bool:
    """True when ``path`` is a file whose first non-empty lines (up to 5) include a tab-separated line of
    numeric columns followed by a path — whatever the file's extension."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8-sig") as f:
            lines = [line for line in itertools.islice(f, 100) if line.strip()][:5]
    except (UnicodeDecodeError, OSError):
        return False
    return any(_looks_like_lst_line(line) for line in lines)


MAX_CLASSES = 100_000
"""The most classes a class id may imply (ImageNet-21k has about 22,000): a larger id is a broken label, refused
before it makes a class list of that length."""


def too_large_message(class_id: int) -> str:
    """The finding text for a class id at or above :data:`MAX_CLASSES`."""
    return (f"class id {class_id} is larger than oculi supports ({MAX_CLASSES:,} classes); the line is left out. "
            "Class ids count 0, 1, 2, … — fix the label.")


def gap_finding(first_use: dict[int, tuple[str, int]]) -> Finding | None:
    """The warning for class ids with gaps (``first_use``: each used class id → the file and line first using
    it): ids ``0…max`` are classes, so an unused id in between is a phantom, empty class. Names the first use of
    the smallest id beyond a gap; None when the ids are contiguous."""
    if not first_use:
        return None
    unused = sorted(set(range(max(first_use) + 1)) - set(first_use))
    if not unused:
        return None
    beyond = min(i for i in first_use if i > unused[0])
    shown = ", ".join(map(str, unused[:10])) + (" …" if len(unused) > 10 else "")
    path, line = first_use[beyond]
    return Finding("warning", "class_id_gap",
                   f"class id {beyond} (first used here) leaves class id(s) {shown} unused; class ids are 0, 1, 2, … "
                   "so each unused id becomes an empty class. Fix the id, or pass the number of classes (-p "
                   "num_classes=N / --num-classes N) to have ids at or above it reported.", path, line)


def read_lst(path: Path, image_root: Path | None = None, classes: list[str] | None = None,
             num_classes: int | None = None) -> SampleSet:
    """Read a ``.lst`` file into a :class:`SampleSet`. Targets are class indices (``int``) for single-label
    lines, sorted tuples of class indices for multi-hot lines.

    ``image_root``: folder the paths are relative to (default: the ``.lst``'s folder). ``classes``: class names the ids
    index into (a validation list read against the training classes); ``num_classes``: how many classes there are
    (SageMaker's hyperparameter; classes ``"0"`` … ``"num_classes-1"``). An id outside them is a ``label_out_of_range``
    error naming the line (the line is left out); without either, unused ids below the highest one are a
    ``class_id_gap`` warning. Bad lines (``bad_line``, ``bad_label``, ``duplicate_index``) and images that do not exist
    (``missing_image``) are error findings naming the file and line; their lines are left out. Raises :class:`DataError`
    when the file is missing or has no lines."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: .lst file not found.")
    root = Path(image_root) if image_root is not None else path.parent
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    findings: list[Finding] = []
    samples: list[Sample] = []
    seen_index: dict[int, int] = {}
    width: int | None = None
    width_line = 0

    def error(code: str, lineno: int, message: str) -> None:
        findings.append(Finding("error", code, message, str(path), lineno))

    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 3:
            spaces = " The columns must be separated by tabs, not spaces." if " " in line.strip() else ""
            error("bad_line", lineno, f"expected {_FORM}; got {len(cols)} tab-separated column(s).{spaces}")
            continue
        index = _whole_number(cols[0])
        if index is None:
            error(
                "bad_line",
                lineno,
                f"the image index {cols[0].strip()!r} is not an integer; expected {_FORM}.",
            )
            continue
        labels = [_whole_number(c) for c in cols[1:-1]]
        if any(v is None for v in labels):
            bad = next(c.strip() for c, v in zip(cols[1:-1], labels, strict=True) if v is None)
            error("bad_label", lineno, f"class id {bad!r} is not a whole number; class ids are 0, 1, 2, …")
            continue
        if index in seen_index:
            error(
                "duplicate_index",
                lineno,
                f"index {index} is already used on line {seen_index[index]}; "
                "every line needs a unique index.",
            )
            continue
        seen_index[index] = lineno
        if width is None:
            width, width_line = len(labels), lineno
            if width > 1 and classes is not None and width != len(classes):
                raise DataError(
                    f"{path}:{lineno}: multi-label lines have {width} label columns but the training data has "
                    f"{len(classes)} classes ({', '.join(classes)}); every line needs one 0/1 column per class."
                )
            if width > 1 and classes is None and num_classes is not None and width != num_classes:
                raise DataError(
                    f"{path}:{lineno}: multi-label lines have {width} label columns but num_classes is "
                    f"{num_classes}; every line needs one 0/1 column per class. Pass -p num_classes={width} or "
                    "fix the file."
                )
        elif len(labels) != width:
            error(
                "bad_line",
                lineno,
                f"{len(labels)} label column(s) where line {width_line} has {width}; "
                "every line needs the same number of label columns.",
            )
            continue
        if width == 1:
            target: int | tuple[int, ...] = labels[0]
            if labels[0] >= MAX_CLASSES:
                error("label_out_of_range", lineno, too_large_message(labels[0]))
                continue
            count = len(classes) if classes is not None else num_classes
            if labels[0] < 0 or (count is not None and labels[0] >= count):
                limit = f"0–{count - 1}" if count is not None else "≥ 0"
                source = ("the training classes" if classes is not None else
                          f"num_classes={num_classes}" if count is not None else "class ids")
                fix = (f" Fix the line, or pass -p num_classes={labels[0] + 1} if there are that many classes."
                       if classes is None and count is not None else "")
                error(
                    "label_out_of_range", lineno,
                    f"class id {labels[0]} is outside the class ids ({limit}, from {source}); the line is left "
                    f"out.{fix}"
                )
                continue
        else:
            if any(v not in (0, 1) for v in labels):
                error(
                    "bad_label",
                    lineno,
                    "multi-label lines hold one 0/1 column per class; got "
                    f"{', '.join(str(v) for v in labels)}.",
                )
                continue
            target = tuple(i for i, v in enumerate(labels) if v == 1)
        relative = cols[-1].strip()
        image = root / relative
        if not image.is_file():
            error(
                "missing_image",
                lineno,
                f"image {relative!r} not found at {image}. Paths in a .lst are "
                f"relative to the image folder ({root}); pass the folder that holds them.",
            )
            continue
        samples.append(Sample(image=image, target=target, origin=f"{path}:{lineno}"))
    if width is None and not findings:
        raise DataError(f"{path}: the .lst file has no lines; expected {_FORM} per image.")
    if classes is not None:
        class_list = list(classes)
    elif width is not None and width > 1:
        class_list = [str(i) for i in range(width)]
    elif num_classes is not None:
        class_list = [str(i) for i in range(num_classes)]
    else:
        top = max((s.target for s in samples), default=-1)
        class_list = [str(i) for i in range(top + 1)]
        first_use: dict[int, tuple[str, int]] = {}
        for sample in samples:
            first_use.setdefault(sample.target, (str(path), int(sample.origin.rsplit(":", 1)[1])))
        gap = gap_finding(first_use)
        if gap is not None:
            findings.append(gap)
    return SampleSet(
        samples,
        class_list,
        multi_label=width is not None and width > 1,
        format="lst",
        source=str(path),
        findings=findings,
    )


def write_lst(sample_set: SampleSet, path: Path, image_root: Path) -> Path:
    """Write ``sample_set`` as a ``.lst`` whose paths are relative to ``image_root`` (single-label: one class id
    column; multi-label: one 0/1 column per class). Raises :class:`DataError` for an image outside
    ``image_root``. Returns ``path``."""
    path, root = Path(path), Path(image_root).resolve()
    rows = []
    for i, sample in enumerate(sample_set.samples):
        image = sample.image.resolve()
        if not image.is_relative_to(root):
            raise DataError(
                f"{sample.where()}: image {image} is not under the image folder {root}; .lst paths are relative "
                "to the image folder. Pass an `image_root` that holds every image."
            )
        if isinstance(sample.target, tuple):
            labels = "\t".join("1" if c in sample.target else "0" for c in range(sample_set.num_classes))
        else:
            labels = str(sample.target)
        rows.append(f"{i}\t{labels}\t{image.relative_to(root).as_posix()}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(rows), encoding="utf-8")
    return path
