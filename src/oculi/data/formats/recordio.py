"""MXNet RecordIO (``.rec``, optional ``.idx``) as ``im2rec`` writes it, read and written without MXNet.

The framing (dmlc-core ``RecordIOWriter``): each record starts with the magic ``0xced7230a`` and a word
``cflag << 29 | length`` (both ``uint32`` little endian), then ``length`` bytes of data padded with zeros to a
multiple of 4. A record whose data holds the magic at a 4-byte-aligned position is split there into parts
(``cflag`` 1 = first, 2 = middle, 3 = last; 0 = whole record), the magic itself left out and put back by the
reader. The ``.idx`` has one ``id<TAB>byte offset`` line per record.

Each image record is MXNet's ``IRHeader`` — ``flag`` (uint32), ``label`` (float32), ``id``, ``id2`` (uint64), packed
``<IfQQ`` (24 bytes) — then, when ``flag > 0``, ``flag`` float32 labels, then the encoded image (JPEG, PNG …):

- classification: ``flag`` 0 and the class id in ``label``; multi-label: ``flag`` = number of classes and one
  0/1 value per class (the multi-hot columns of a multi-label ``.lst``);
- object detection (SageMaker's packed layout): ``[A, B, <A-2 extra header values>, then per object B values:
  class, xmin, ymin, xmax, ymax (normalised 0–1), …]``, ``A`` = 2 and ``B`` = 5 as oculi writes it.

Samples read from a ``.rec`` keep the file: their ``image`` is ``<file.rec>@<byte offset>`` (:func:`record_path`),
which :mod:`oculi.data.image` decodes straight from the record, so training streams records without unpacking
them to disk. RecordIO holds class ids only; oculi writes the class names beside it (``train.classes``, one a
line, ignored by SageMaker) and reads them back when present.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from pathlib import Path

from oculi.errors import DataError
from oculi.types import BoxTarget, Finding, Sample, SampleSet

MAGIC = 0xCED7230A
_MAGIC_BYTES = struct.pack("<I", MAGIC)
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24
MAX_LENGTH = (1 << 29) - 1
_RECORD_PATH = re.compile(r"^(?P<file>.+\.rec)@(?P<offset>\d+)$", re.IGNORECASE)
CLASSES_SUFFIX = ".classes"  # beside the .rec: one class name per line (RecordIO itself holds only class ids)
DETECTION_HEADER = (2.0, 5.0)  # A (header width), B (label width per object), as SageMaker's examples write


# ---- framing --------------------------------------------------------------------------------------------------
def frame(data: bytes) -> bytes:
    """``data`` as one RecordIO record, byte for byte as dmlc-core's ``RecordIOWriter::WriteRecord`` writes it
    (split at every aligned occurrence of the magic, zero-padded to 4 bytes)."""
    out = bytearray()
    start = 0
    for i in range(0, len(data) - len(data) % 4, 4):
        if data[i:i + 4] == _MAGIC_BYTES:
            out += _MAGIC_BYTES + struct.pack("<I", ((1 if start == 0 else 2) << 29) | (i - start)) + data[start:i]
            start = i + 4
    rest = len(data) - start
    out += _MAGIC_BYTES + struct.pack("<I", ((3 if start else 0) << 29) | rest) + data[start:]
    out += b"\0" * (-len(data) % 4)
    return bytes(out)


class RecordError(DataError):
    """A record that cannot be read: bad magic, truncated data, broken continuation."""

    def __init__(self, message: str, index: int, offset: int) -> None:
        super().__init__(message)
        self.index = index
        self.offset = offset


def _read_at(f: io.BufferedReader, offset: int, index: int, path: Path) -> tuple[bytes, int]:
    """The data of the record at ``offset`` (parts joined) and the offset after it."""
    f.seek(offset)
    parts: list[bytes] = []
    position = offset
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise RecordError(f"{path}: record {index} at byte offset {position}: the file ends inside the record "
                              "header (truncated file).", index, offset)
        magic, word = struct.unpack("<II", head)
        if magic != MAGIC:
            raise RecordError(f"{path}: record {index} at byte offset {position}: expected the RecordIO magic "
                              f"0xced7230a, found {magic:#010x} (corrupt or not a .rec written by im2rec).",
                              index, offset)
        cflag, length = word >> 29, word & MAX_LENGTH
        expected = (0, 1) if not parts else (2, 3)
        if cflag not in expected:
            raise RecordError(f"{path}: record {index} at byte offset {position}: continuation flag {cflag} where "
                              f"{' or '.join(map(str, expected))} was expected (a broken multi-part record).",
                              index, offset)
        data = f.read(length)
        if len(data) < length:
            raise RecordError(f"{path}: record {index} at byte offset {position}: {length} bytes announced, "
                              f"{len(data)} left in the file (truncated file).", index, offset)
        parts.append(data)
        position += 8 + length
        if cflag in (0, 3):
            pad = -length % 4
            f.read(pad)
            return _MAGIC_BYTES.join(parts), position + pad
        # first/middle parts are 4-byte aligned by construction


def iter_records(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(index, byte offset, data)`` of every record of a ``.rec``, in file order; the first unreadable record
    raises :class:`RecordError` naming its index and offset (what follows it cannot be framed)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset, index = 0, 0
        while offset < size:
            data, after = _read_at(f, offset, index, path)
            yield index, offset, data
            offset, index = after, index + 1


def write_rec(path: Path, records: list[tuple[int, bytes]]) -> Path:
    """Write ``(id, data)`` records to ``path`` and the ``.idx`` beside it (temp files, then renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    index_path = path.with_suffix(".idx")
    tmp_rec, tmp_idx = path.with_name(path.name + ".tmp"), index_path.with_name(index_path.name + ".tmp")
    offset = 0
    with open(tmp_rec, "wb") as rec, open(tmp_idx, "w", encoding="utf-8") as idx:
        for record_id, data in records:
            framed = frame(data)
            rec.write(framed)
            idx.write(f"{record_id}\t{offset}\n")
            offset += len(framed)
    tmp_rec.replace(path)
    tmp_idx.replace(index_path)
    return path


# ---- image records -------------------------------------------------------------------------------------------
def pack(label: float | list[float], image: bytes, record_id: int = 0, id2: int = 0) -> bytes:
    """MXNet's ``recordio.pack``: a number label goes into the header (``flag`` 0); a list of labels is written
    after it as float32 with ``flag`` = its length."""
    if isinstance(label, int | float):
        return struct.pack(IR_FORMAT, 0, float(label), record_id, id2) + image
    values = struct.pack(f"<{len(label)}f", *label)
    return struct.pack(IR_FORMAT, len(label), 0.0, record_id, id2) + values + image


def unpack(data: bytes) -> tuple[int, float | tuple[float, ...], int, int, bytes]:
    """MXNet's ``recordio.unpack``: ``(flag, label or labels, id, id2, image bytes)``."""
    if len(data) < IR_SIZE:
        raise ValueError(f"{len(data)} bytes, shorter than the {IR_SIZE}-byte IRHeader")
    flag, label, record_id, id2 = struct.unpack_from(IR_FORMAT, data)
    if flag == 0:
        return flag, label, record_id, id2, data[IR_SIZE:]
    end = IR_SIZE + 4 * flag
    if len(data) < end:
        raise ValueError(f"the IRHeader announces {flag} labels, more than the record holds")
    return flag, struct.unpack_from(f"<{flag}f", data, IR_SIZE), record_id, id2, data[end:]


def record_path(rec: Path, offset: int) -> Path:
    """The path-like reference of the image in the record at ``offset`` of ``rec`` (a :class:`Sample`'s image)."""
    return Path(f"{Path(rec)}@{offset}")


def is_record_path(path: Path) -> bool:
    """True when ``path`` has the form of a :func:`record_path` reference (``file.rec@offset``)."""
    return _RECORD_PATH.match(str(path)) is not None


def record_image(path: Path) -> bytes | None:
    """The encoded image a :func:`record_path` reference points at; None when ``path`` is not such a reference
    (an ordinary file). Raises :class:`DataError` naming the file and offset when the record is broken."""
    match = _RECORD_PATH.match(str(path))
    if match is None or Path(path).exists():
        return None
    rec, offset = Path(match["file"]), int(match["offset"])
    try:
        with open(rec, "rb") as f:
            data, _ = _read_at(f, offset, -1, rec)
        return unpack(data)[4]
    except FileNotFoundError:
        raise DataError(f"{rec}: RecordIO file not found (an image of it was listed before).") from None
    except ValueError as e:
        raise DataError(f"{rec}: record at byte offset {offset}: {e}.") from None


def is_recordio(path: Path) -> bool:
    """True when ``path`` is a file starting with the RecordIO magic (whatever its name)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == _MAGIC_BYTES
    except OSError:
        return False


def _detection_objects(labels: tuple[float, ...]) -> list[tuple[float, ...]] | None:
    """The object rows of SageMaker's packed detection label, or None when ``labels`` is not one."""
    if len(labels) < 2:
        return None
    a, b = labels[0], labels[1]
    if not (a.is_integer() and b.is_integer() and a >= 2 and b >= 5 and (len(labels) - a) % b == 0):
        return None
    a, b = int(a), int(b)
    return [labels[i:i + b] for i in range(a, len(labels), b)]


def holds_boxes(path: Path) -> bool:
    """True when the first record of the ``.rec`` carries SageMaker's packed detection labels."""
    try:
        _, _, data = next(iter_records(path))
        flag, label, *_ = unpack(data)
    except (StopIteration, ValueError, DataError, OSError):
        return False
    return bool(flag) and _detection_objects(label) is not None


def read_recordio(path: Path, classes: list[str] | None = None, num_classes: int | None = None) -> SampleSet:
    """Read a ``.rec`` into a :class:`SampleSet`: classification (one class id per record, or multi-hot labels)
    or object detection (SageMaker's packed labels, boxes converted to pixels with the image size read from the
    record's image header). Images stay in the file (:func:`record_path`). A broken record is an error finding
    naming its index and byte offset; the records after it cannot be framed and are left out."""
    from PIL import Image

    path = Path(path)
    samples: list[Sample] = []
    findings: list[Finding] = []
    task, multi_label, highest = "classification", False, -1
    where = str(path)
    try:
        for index, offset, data in iter_records(path):
            try:
                flag, label, _id, _id2, image = unpack(data)
            except ValueError as e:
                findings.append(Finding("error", "bad_record", f"record {index} at byte offset {offset}: {e}; left "
                                        "out.", where))
                continue
            ref = record_path(path, offset)
            origin = f"{path.name} record {index} (byte {offset})"
            objects = _detection_objects(label) if flag else None
            if objects is not None:
                task = "detection"
                try:
                    with Image.open(io.BytesIO(image)) as img:
                        width, height = img.size
                except Exception:  # noqa: BLE001 - the data check decodes the image and names the problem
                    findings.append(Finding("error", "bad_image", f"record {index} at byte offset {offset}: its "
                                            "image cannot be read; left out.", where))
                    continue
                boxes = tuple((r[1] * width, r[2] * height, r[3] * width, r[4] * height) for r in objects)
                labels = tuple(int(r[0]) for r in objects)
                highest = max([highest, *labels])
                samples.append(Sample(ref, BoxTarget(boxes, labels, (False,) * len(labels), width, height), origin))
            elif flag > 1:
                multi_label = True
                if any(v not in (0.0, 1.0) for v in label):
                    findings.append(Finding("error", "bad_label", f"record {index} at byte offset {offset}: "
                                            f"{flag} labels that are neither multi-hot 0/1 values nor SageMaker's "
                                            "packed detection layout; left out.", where))
                    continue
                highest = max(highest, flag - 1)
                samples.append(Sample(ref, tuple(i for i, v in enumerate(label) if v == 1.0), origin))
            else:
                value = label[0] if flag == 1 else label
                if not float(value).is_integer() or value < 0:
                    findings.append(Finding("error", "bad_label", f"record {index} at byte offset {offset}: label "
                                            f"{value:g} is not a class id (0, 1, 2, …); left out.", where))
                    continue
                highest = max(highest, int(value))
                samples.append(Sample(ref, int(value), origin))
    except RecordError as e:
        findings.append(Finding("error", "bad_record", f"{str(e).removeprefix(f'{path}: ')} The records after it "
                                "are left out.", where))
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e}).") from None
    names = path.with_suffix(CLASSES_SUFFIX)
    named = ([line.strip() for line in names.read_text(encoding="utf-8").splitlines() if line.strip()]
             if classes is None and names.is_file() else None)
    if named and num_classes in (None, len(named)):
        classes = named
        if highest >= len(classes):
            findings.append(Finding("error", "label_out_of_range", f"class id {highest} is beyond the "
                                    f"{len(classes)} class names of {names.name}; fix or remove that file.", where))
    if classes is None:
        count = num_classes if num_classes is not None else highest + 1
        classes = [str(i) for i in range(count)]
    return SampleSet(samples, list(classes), task=task, multi_label=multi_label,  # type: ignore[arg-type]
                     format="recordio", source=str(path), findings=findings)


def extract_images(sample_set: SampleSet, folder: Path) -> SampleSet:
    """``sample_set`` (read from a ``.rec``) with each record's image written byte for byte to
    ``folder/<rec name>-<record index>.<jpg|png|…>`` (by content) and the samples pointing there: what a
    conversion to a format that references image files needs."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for n, sample in enumerate(sample_set.samples):
        data = record_image(sample.image)
        if data is None:  # already a file
            samples.append(sample)
            continue
        try:
            with Image.open(io.BytesIO(data)) as img:
                suffix = {"JPEG": ".jpg"}.get(img.format or "", f".{(img.format or 'bin').lower()}")
        except Exception:  # noqa: BLE001 - written as is; the data check of the output names it
            suffix = ".bin"
        target = folder / f"{Path(str(sample.image).rsplit('@', 1)[0]).stem}-{n:06d}{suffix}"
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
        samples.append(Sample(target, sample.target, sample.origin))
    return SampleSet(samples, sample_set.classes, sample_set.task, sample_set.multi_label, sample_set.format,
                     sample_set.source, list(sample_set.findings), sample_set.class_ids, sample_set.label_encoding)


def write_recordio(sample_set: SampleSet, path: Path) -> Path:
    """Write a classification or detection :class:`SampleSet` as ``path`` (``.rec``) + ``.idx``: each image's
    encoded bytes as they are on disk (JPEG, PNG …), labels as :func:`read_recordio` reads them."""
    from oculi.data.formats.boxes import target_size

    records = []
    for n, sample in enumerate(sample_set.samples):
        image = record_image(sample.image)
        image = image if image is not None else Path(sample.image).read_bytes()
        target = sample.target
        if isinstance(target, BoxTarget):
            size = target_size(sample)
            if size is None:
                raise DataError(f"{sample.where()}: the image size cannot be read, so its boxes cannot be "
                                "normalised for RecordIO; check the image with `oculi data check`.")
            width, height = size
            label: float | list[float] = list(DETECTION_HEADER)
            for (x0, y0, x1, y1), cls in zip(target.boxes, target.labels, strict=True):
                label += [float(cls), x0 / width, y0 / height, x1 / width, y1 / height]
        elif sample_set.multi_label:
            chosen = set(target if isinstance(target, tuple) else (target,))
            label = [1.0 if i in chosen else 0.0 for i in range(sample_set.num_classes)]
        elif isinstance(target, int):
            label = float(target)
        else:
            raise DataError(f"{sample.where()}: RecordIO holds class ids or boxes; this sample's label "
                            f"{target!r} is neither.")
        records.append((n, pack(label, image, record_id=n)))
    written = write_rec(path, records)
    names = Path(path).with_suffix(CLASSES_SUFFIX)
    if sample_set.classes != [str(i) for i in range(sample_set.num_classes)]:
        tmp = names.with_name(names.name + ".tmp")
        tmp.write_text("".join(f"{c}\n" for c in sample_set.classes), encoding="utf-8")
        tmp.replace(names)
    return written
