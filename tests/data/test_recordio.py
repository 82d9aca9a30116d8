"""RecordIO without MXNet: the framing and IRHeader byte for byte against the published layout (built by hand with
struct), round trips of classification, multi-label and detection data, recognition by content, a corrupted record
reported by index and byte offset, and training that reads images straight from the records."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.data.channels import read_channel
from oculi.data.convert import convert
from oculi.data.detection import read_detection
from oculi.data.formats.recordio import (
    frame,
    iter_records,
    pack,
    read_recordio,
    record_path,
    unpack,
    write_rec,
    write_recordio,
)
from oculi.data.image import decode_image
from oculi.data.synthetic import write_detection_data
from oculi.types import Sample, SampleSet
from tests.helpers import TINY, make_class_folders

MAGIC = b"\x0a\x23\xd7\xce"  # 0xced7230a, little endian
runner = CliRunner()


def test_framing_and_header_match_the_published_layout_byte_for_byte():
    image = b"\xff\xd8JPEGDATA\xff\xd9x"  # 13 bytes: 24-byte header + 13 = 37 → 3 bytes of padding
    # by hand: magic, lrecord (cflag 0, length), IRHeader(flag=0, label=3.0, id=7, id2=0), image, zero padding
    want = MAGIC + struct.pack("<I", 37) + struct.pack("<I", 0) + struct.pack("<f", 3.0) + struct.pack("<Q", 7) \
        + struct.pack("<Q", 0) + image + b"\0\0\0"
    assert frame(pack(3, image, record_id=7)) == want
    # multi-label: flag = 2 labels, header label 0, the float32 labels before the image
    assert pack([1.0, 0.0], b"ab", 1) == struct.pack("<IfQQ", 2, 0.0, 1, 0) + struct.pack("<2f", 1.0, 0.0) + b"ab"
    # a payload holding the magic at an aligned position is split there, the magic left out (cflag 1, then 3)
    data = b"ABCD" + MAGIC + b"EFGHIJ"
    split = MAGIC + struct.pack("<I", (1 << 29) | 4) + b"ABCD" + MAGIC + struct.pack("<I", (3 << 29) | 6) \
        + b"EFGHIJ" + b"\0\0"
    assert frame(data) == split
    assert unpack(pack([2.0, 5.0, 1.0, 0.1, 0.2, 0.3, 0.4], b"img"))[1] == pytest.approx((2, 5, 1, .1, .2, .3, .4))


def test_records_and_index_read_back(tmp_path):
    payloads = [b"x" * n for n in (1, 4, 7)] + [b"ABCD" + MAGIC + MAGIC + b"Z"]
    rec = write_rec(tmp_path / "a.rec", list(enumerate(payloads)))
    got = list(iter_records(rec))
    assert [d for _, _, d in got] == payloads
    offsets = [int(line.split("\t")[1]) for line in (tmp_path / "a.idx").read_text().splitlines()]
    assert offsets == [o for _, o, _ in got] and offsets[0] == 0


def test_classification_round_trip_keeps_labels_and_pixels(tmp_path):
    folders = make_class_folders(tmp_path / "cls", per_class=3, size=24)
    convert(folders, "recordio", tmp_path / "out")
    rec = tmp_path / "out" / "train.rec"
    original = read_channel(folders)
    back = read_channel(rec)  # recognised by content
    assert back.format == "recordio" and not back.multi_label
    assert [s.target for s in back.samples] == [s.target for s in original.samples]
    for mine, theirs in zip(back.samples, original.samples, strict=True):
        assert str(mine.image).startswith(f"{rec}@")
        assert np.array_equal(decode_image(mine.image).numpy(), decode_image(theirs.image).numpy())
    assert back.classes == original.classes == ["circle", "square", "stripes"]  # from train.classes beside it
    (tmp_path / "out" / "train.classes").unlink()
    assert read_channel(rec).classes == ["0", "1", "2"]  # a plain im2rec file: class ids


def test_multi_label_round_trip(tmp_path):
    images = make_class_folders(tmp_path / "img", per_class=1, size=16)
    files = sorted(images.rglob("*.png"))
    targets = [(0, 2), (1,), (0, 1, 2)]
    sample_set = SampleSet([Sample(f, t) for f, t in zip(files, targets, strict=True)], ["a", "b", "c"],
                           multi_label=True)
    rec = write_recordio(sample_set, tmp_path / "multi.rec")
    (_, _, first), *_ = iter_records(rec)
    flag, labels, *_ = unpack(first)
    assert flag == 3 and labels == (1.0, 0.0, 1.0)
    back = read_recordio(rec, classes=["a", "b", "c"])
    assert back.multi_label and [s.target for s in back.samples] == targets


def test_detection_round_trip_with_sagemaker_packed_labels(tmp_path):
    channels = write_detection_data(tmp_path / "det", count=4, size=(128, 96))
    original = read_detection(channels["train"])
    ledger = convert(channels["train"], "recordio", tmp_path / "det.rec")
    assert ledger.images_out == len(original) and ledger.boxes_out == ledger.boxes_in
    back = read_detection(tmp_path / "det.rec")
    assert back.task == "detection" and back.format == "recordio"
    for mine, theirs in zip(back.samples, original.samples, strict=True):
        assert mine.target.labels == theirs.target.labels
        assert np.allclose(mine.target.boxes, theirs.target.boxes, atol=1e-3)
    (_, _, first), *_ = iter_records(tmp_path / "det.rec")
    flag, labels, *_ = unpack(first)
    box = original.samples[0].target.boxes[0]
    assert labels[:2] == (2.0, 5.0) and flag == 2 + 5 * len(original.samples[0].target.boxes)
    assert labels[3:7] == pytest.approx((box[0] / 128, box[1] / 96, box[2] / 128, box[3] / 96), abs=1e-6)
    with pytest.raises(Exception, match="object-detection"):
        read_channel(tmp_path / "det.rec")  # boxes are refused as a classification channel, with the fix


def test_corrupted_record_is_reported_by_index_and_offset(tmp_path):
    folders = make_class_folders(tmp_path / "cls", per_class=2, size=16)
    convert(folders, "recordio", tmp_path / "out")
    rec = tmp_path / "out" / "train.rec"
    offsets = [int(line.split("\t")[1]) for line in rec.with_suffix(".idx").read_text().splitlines()]
    raw = bytearray(rec.read_bytes())
    raw[offsets[3]:offsets[3] + 4] = b"JUNK"
    rec.write_bytes(bytes(raw))
    read = read_recordio(rec)
    assert len(read) == 3
    (finding,) = [f for f in read.findings if f.level == "error"]
    assert f"record 3 at byte offset {offsets[3]}" in finding.message
    result = runner.invoke(app, ["data", "check", str(rec)])
    assert f"record 3 at byte offset {offsets[3]}" in result.output.replace("\n", " ")
    # a record whose image is broken is named by the decoder with the file and offset
    bad = tmp_path / "bad.rec"
    write_rec(bad, [(0, pack(1, b"not an image"))])
    with pytest.raises(Exception, match=r"bad\.rec@0"):
        decode_image(record_path(bad, 0))


def test_training_reads_images_from_the_records(tmp_path):
    from oculi.engine.training import train

    convert(make_class_folders(tmp_path / "train", per_class=6, size=32), "recordio", tmp_path / "rec")
    before = set(tmp_path.rglob("*"))
    result = train("image-classification", {"train": tmp_path / "rec" / "train.rec"},
                   {**TINY, "num_classes": "3"}, output=tmp_path / "model", progress=False, echo=lambda *_: None)
    assert result.classes == ["circle", "square", "stripes"]
    unpacked = [p for p in set(tmp_path.rglob("*")) - before
                if p.suffix.lower() in (".jpg", ".png") and not p.is_relative_to(tmp_path / "model")]
    assert unpacked == []


def test_transform_split_type_recordio_matches_the_image_files(classifier, tmp_path):
    from oculi.batch import transform
    from oculi.errors import ConfigError

    folders = make_class_folders(tmp_path / "cls", per_class=2, size=32, seed=5)
    convert(folders, "recordio", tmp_path / "rec")
    rec = tmp_path / "rec" / "train.rec"
    options = {"assemble_with": "line", "progress": False, "echo": None}
    from_records = transform(classifier, rec, tmp_path / "out-rec", split_type="RecordIO", **options)
    from_files = transform(classifier, folders, tmp_path / "out-files", **options)
    assert from_records.done == from_files.done == 6 and from_records.failed == 0
    rec_lines = [json.loads(line) for line in Path(from_records.assembled).read_text().splitlines()]
    file_lines = [json.loads(line) for line in Path(from_files.assembled).read_text().splitlines()]
    assert [r.pop("source") for r in rec_lines] == [f"record-{n:06d}" for n in range(6)]
    for mine, theirs in zip(rec_lines, file_lines, strict=True):
        theirs.pop("source")
        assert mine["prediction"] == pytest.approx(theirs["prediction"], abs=1e-5)
    with pytest.raises(ConfigError, match="needs a RecordIO .rec"):
        transform(classifier, folders, tmp_path / "out-bad", split_type="RecordIO", **options)


def test_convert_from_recordio_writes_the_images_out(tmp_path):
    channels = write_detection_data(tmp_path / "det", count=3, size=(64, 48))
    convert(channels["train"], "recordio", tmp_path / "det.rec")
    ledger = convert(tmp_path / "det.rec", "coco", tmp_path / "coco")
    back = read_detection(Path(ledger.target))
    assert ledger.images_out == 3 and back.classes == ["box", "disc"]  # names kept beside the .rec
    assert all(s.image.is_file() and s.image.parent == tmp_path / "coco" / "images" for s in back.samples)
