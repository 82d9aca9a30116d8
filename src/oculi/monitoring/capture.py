"""Reading data-capture records (:mod:`oculi.serving.capture`, SageMaker's JSON-lines shape) in a time window.

Lines that are not JSON, lack ``captureData`` or carry an undecodable payload are reported (file, line, why) and
skipped; a request that is not an image (a JSON batch, say) is skipped and counted."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from oculi.errors import ConfigError, DataError

IMAGE_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "application/x-image": ".img", "image/bmp": ".bmp",
               "image/webp": ".webp", "image/tiff": ".tif"}


@dataclass(frozen=True)
class Record:
    """One captured invocation: ``event_id``, ``inference_id`` (or None), ``time`` (UTC), the request body and
    its content type, the response text, and where it was read (``file:line``)."""

    event_id: str
    inference_id: str | None
    time: datetime
    content_type: str
    body: bytes
    response: str
    where: str


@dataclass
class CaptureRead:
    """Records in the window, ``bad_lines`` ``{"file", "line", "error"}`` and ``skipped`` (non-image requests)."""

    records: list[Record] = field(default_factory=list)
    bad_lines: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0


def parse_time(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 time (``2026-12-06T10:00:00Z``, a date, or naive = UTC) as an aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"{value!r} is not a time; give ISO 8601, e.g. 2026-12-06T10:00:00Z or 2026-12-06.") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _files(capture: Path, endpoint: str | None) -> Iterator[Path]:
    root = capture / endpoint if endpoint else capture
    if not capture.exists():
        raise DataError(f"{capture}: capture folder not found; pass the folder given to `oculi serve --capture`.")
    if endpoint and not root.exists():
        known = sorted(p.name for p in capture.iterdir() if p.is_dir())
        raise DataError(f"{capture}: no capture of endpoint {endpoint!r}; captured endpoints: "
                        f"{', '.join(known) or 'none'}.")
    yield from sorted(root.rglob("*.jsonl"))


def read_capture(capture: str | Path, *, endpoint: str | None = None, since: str | datetime | None = None,
                 until: str | datetime | None = None) -> CaptureRead:
    """Image requests captured under ``capture`` (optionally one ``endpoint``'s) with ``since`` ≤ inferenceTime <
    ``until``, oldest first."""
    start, end = parse_time(since), parse_time(until)
    out = CaptureRead()
    for path in _files(Path(capture), endpoint):
        with path.open(encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = _record(json.loads(line), f"{path}:{number}")
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    why = "not JSON" if isinstance(e, json.JSONDecodeError) else f"not a capture record ({e!r})"
                    out.bad_lines.append({"file": str(path), "line": number, "error": why})
                    continue
                if record is None:
                    out.skipped += 1
                    continue
                if (start and record.time < start) or (end and record.time >= end):
                    continue
                out.records.append(record)
    out.records.sort(key=lambda r: r.time)
    return out


def _record(line: dict[str, Any], where: str) -> Record | None:
    data = line["captureData"]
    request, response = data["endpointInput"], data.get("endpointOutput", {})
    content_type = str(request.get("observedContentType", "")).split(";")[0].strip().lower()
    if content_type not in IMAGE_TYPES:
        return None
    if request.get("encoding", "BASE64") != "BASE64":
        raise ValueError(f"image request with encoding {request.get('encoding')!r}")
    meta = line["eventMetadata"]
    body = base64.b64decode(request["data"], validate=True)
    return Record(str(meta["eventId"]), meta.get("inferenceId"), parse_time(meta["inferenceTime"]) or
                  datetime.now(UTC), content_type, body, str(response.get("data", "")), where)


def write_images(records: list[Record], folder: Path) -> list[Path]:
    """Write each record's image as ``folder/<eventId><ext>`` (kept for the console, labeling and quality
    checks); returns the paths in record order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r in records:
        suffix = IMAGE_TYPES[r.content_type]
        if suffix == ".img":
            suffix = _sniff(r.body)
        path = folder / f"{_safe(r.event_id)}{suffix}"
        if not path.exists():
            path.write_bytes(r.body)
        paths.append(path)
    return paths


def _sniff(data: bytes) -> str:
    """The file suffix of an image's bytes by their magic number (``.img`` when unknown)."""
    for magic, suffix in ((b"\xff\xd8", ".jpg"), (b"\x89PNG", ".png"), (b"BM", ".bmp"), (b"GIF8", ".gif"),
                          (b"II*\x00", ".tif"), (b"MM\x00*", ".tif")):
        if data.startswith(magic):
            return suffix
    return ".webp" if data[:4] == b"RIFF" and data[8:12] == b"WEBP" else ".img"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "event"
