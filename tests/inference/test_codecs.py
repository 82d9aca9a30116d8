"""Request/response codecs: content types, Accept negotiation per task, and decoding guards (empty, corrupt,
decompression bomb)."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from oculi.errors import DataError
from oculi.inference.codecs import (
    NotAcceptable,
    UnsupportedMediaType,
    check_content_type,
    decode_request,
)
from oculi.tasks import get_task


def _png_header_only(width: int, height: int) -> bytes:
    """A few hundred bytes of PNG whose header claims ``width × height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def _jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize(("task", "accept", "chosen"), [
    ("classification", None, "application/json"),
    ("classification", "*/*", "application/json"),
    ("classification", "application/json; verbose", "application/json;verbose"),
    ("classification", "text/html;q=0.9, application/json;verbose;q=0.5", "application/json;verbose"),
    ("detection", "application/json;annotation=1", "application/json;annotation=1"),
    ("detection", "application/*", "application/json"),
    ("segmentation", None, "image/png"),
    ("segmentation", "image/*", "image/png"),
    ("segmentation", "application/json", "application/json"),
])
def test_accept_negotiation(task: str, accept: str | None, chosen: str) -> None:
    assert get_task(task).codec.choose(accept) == chosen


@pytest.mark.parametrize(("task", "accept"), [("classification", "image/png"), ("detection", "text/csv"),
                                              ("segmentation", "application/json;verbose")])
def test_unsupported_accept_lists_the_supported_types(task: str, accept: str) -> None:
    with pytest.raises(NotAcceptable) as raised:
        get_task(task).codec.choose(accept)
    assert raised.value.http_status == 406
    assert all(media in str(raised.value) for media in get_task(task).codec.encoders)


def test_content_types() -> None:
    assert check_content_type("IMAGE/JPEG") == "image/jpeg"
    assert check_content_type("application/x-image") == "application/x-image"
    for bad in ("text/plain", "application/json", None):
        with pytest.raises(UnsupportedMediaType, match="image/jpeg, image/png, application/x-image"):
            check_content_type(bad)


def test_decode_request_guards() -> None:
    image = decode_request(_jpeg(40, 30), "image/jpeg")
    assert image.shape == (3, 30, 40) and image.dtype.is_floating_point is False
    with pytest.raises(DataError, match="empty"):
        decode_request(b"", "image/png")
    with pytest.raises(DataError, match="not an image"):
        decode_request(b"definitely not a jpeg", "image/jpeg")
    with pytest.raises(DataError, match="50000 × 50000|too large"):
        decode_request(_png_header_only(50000, 50000), "image/png")
    with pytest.raises(DataError, match="9000 × 9000 image"):
        decode_request(_png_header_only(9000, 9000), "image/png")
