"""Decompression bombs (a tiny PNG whose header claims 50000 × 50000 pixels) through every command that opens
image files: named in the data check, skipped with skip_bad_images, a clear error in predict and evaluate."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.data.image import decode_image, inspect_image
from oculi.errors import DataError
from tests.helpers import TINY, make_class_folders

runner = CliRunner()


def write_bomb(path: Path, width: int = 50_000, height: int = 50_000) -> Path:
    """A valid PNG of a few hundred bytes whose IHDR claims ``width`` × ``height`` RGB pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def bombed(tmp_path: Path) -> tuple[Path, Path]:
    """Three generated classes with one bomb among the circles; returns ``(root, bomb)``."""
    root = make_class_folders(tmp_path / "data", per_class=4, seed=7)
    return root, write_bomb(root / "circle" / "bomb.png")


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The real entry point (its error boundary prints the message and exits with the error's code)."""
    return subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", *args], capture_output=True,
                          text=True, timeout=300)


def test_opening_a_bomb_is_a_data_error_naming_the_file(tmp_path):
    bomb = write_bomb(tmp_path / "bomb.png")
    for read in (inspect_image, decode_image):
        with pytest.raises(DataError, match=r"bomb\.png: claims 2500 Mpx, over the limit of \d+ Mpx"):
            read(bomb)


def test_the_limit_is_pillows_error_threshold(tmp_path, monkeypatch):
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; oculi decodes in between (large real
    # photos) and refuses above, with the size claimed, whether or not Pillow raised.
    from PIL import Image

    from oculi.data.image import max_file_pixels

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert max_file_pixels() == 2000
    from tests.data.conftest import make_image

    fine = make_image(tmp_path / "big.png", size=(40, 30))  # 1200 px: Pillow warns, oculi decodes
    assert tuple(decode_image(fine).shape) == (3, 30, 40)
    bomb = write_bomb(tmp_path / "wide.png", 50, 41)  # 2050 px: over twice the limit
    with pytest.raises(DataError, match=r"wide\.png: claims"):
        decode_image(bomb)


def test_data_check_names_the_bomb(bombed):
    root, bomb = bombed
    result = runner.invoke(app, ["data", "check", str(root), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    found = [f for f in report["findings"] if f["path"] == str(bomb)]
    assert [f["code"] for f in found] == ["too_large"]
    assert "2500 Mpx" in found[0]["message"]
    assert report["counts"]["train"]["circle"] == 4 and str(bomb) in report["bad_images"]


def test_data_check_of_a_yolo_dataset_names_the_bomb(tmp_path):
    # YOLO boxes are normalised: the reader reads every image's size from its header, where the bomb is found.
    from tests.data.detection_helpers import make_detection_set, write_as

    out = tmp_path / "yolo"
    write_as(make_detection_set(tmp_path / "src"), "yolo", out)
    bomb = next((out / "images").glob("a.*"))
    write_bomb(bomb)
    result = runner.invoke(app, ["data", "check", str(out), "--json"])
    assert result.exit_code == 1, result.output
    naming = [f for f in json.loads(result.output)["findings"] if str(bomb) in (f["path"], f["message"].split()[0])]
    assert naming and all(f["level"] == "error" for f in naming)


def test_train_skips_the_bomb_with_skip_bad_images(bombed, tmp_path):
    root, bomb = bombed
    params = [arg for key, value in {**TINY, "skip_bad_images": "true"}.items() for arg in ("-p", f"{key}={value}")]
    result = runner.invoke(app, ["train", "image-classification", "--train", str(root), *params,
                                 "--output", str(tmp_path / "model")])
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable image(s)" in result.output and str(bomb) in result.output
    assert (tmp_path / "model" / "model.json").is_file()


def test_predict_and_evaluate_give_a_clear_error(classifier, bombed, tmp_path):
    root, bomb = bombed
    predicted = _cli("predict", str(classifier), str(bomb))
    assert predicted.returncode == 3, predicted.stderr
    assert "Traceback" not in predicted.stderr and "bomb.png" in predicted.stderr and "Mpx" in predicted.stderr
    only_bomb = tmp_path / "eval"
    shutil.copytree(root, only_bomb)
    evaluated = _cli("evaluate", str(classifier), str(only_bomb))
    assert evaluated.returncode == 3, evaluated.stderr
    assert "Traceback" not in evaluated.stderr and "bomb.png" in evaluated.stderr


def test_a_corrupt_header_never_escapes_the_header_reader(tmp_path):
    # Found by mutating images: Pillow raises ValueError (not OSError) for an over-long PPM header token.
    from oculi.data.formats.boxes import image_size

    ppm = tmp_path / "broken.ppm"
    ppm.write_bytes(b"P6\n" + b"9" * 300 + b" 10\n255\n")
    assert image_size(ppm) is None and image_size(write_bomb(tmp_path / "bomb.png")) is None
    with pytest.raises(DataError, match=r"broken\.ppm: cannot be opened"):
        decode_image(ppm)
