"""Data capture in SageMaker Model Monitor's record shape: a sampled share of the invocations, request and
response, as JSON lines under ``DIR/<endpoint>/<variant>/yyyy/mm/dd/hh/<file>.jsonl`` (SageMaker's S3 layout).

One line::

    {"captureData": {"endpointInput": {"observedContentType": "image/jpeg", "mode": "INPUT",
                                       "data": "<base64>", "encoding": "BASE64"},
                     "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                        "data": "{\\"prediction\\": …}", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "…", "inferenceId": "…", "inferenceTime": "2026-02-14T17:25:49Z"},
     "eventVersion": "0"}

Invocations are handed to a writer thread, which builds and writes their records, never on the request path: when
64 MiB are already waiting, or the disk is over 75 % full (SageMaker's rule), the record is dropped and counted."""

from __future__ import annotations

import base64
import json
import os
import queue
import random
import shutil
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_DISK_USE = 0.75  # stop capturing above this share of the disk in use
MAX_QUEUED_BYTES = 64 * 1024 * 1024  # request + response bytes waiting for the writer


class DataCapture:
    """Samples ``percent`` % of invocations and writes their capture records under ``directory``.
    ``on_drop(endpoint)`` is called for each record dropped."""

    def __init__(self, directory: Path, percent: float = 20.0, on_drop: Callable[[str], None] | None = None,
                 seed: int | None = None) -> None:
        self.directory = Path(directory)
        self.percent = percent
        self.on_drop = on_drop
        self._random = random.Random(seed)
        self._queue: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued_bytes = 0
        self._thread: threading.Thread | None = None
        self._file_stamp = f"{datetime.now(UTC):%M-%S}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def start(self) -> None:
        """Start the writer thread."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="oculi-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then end the writer thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(30)
            self._thread = None

    def sampled(self) -> bool:
        """Whether this invocation is captured."""
        return self._random.random() * 100 < self.percent

    def record(self, endpoint: str, variant: str, request_type: str, body: bytes, response_type: str,
               response: bytes, inference_id: str | None = None) -> None:
        """Queue one invocation for the writer thread, which builds and writes its record. Never blocks: drops
        the record (and counts it) when :data:`MAX_QUEUED_BYTES` are already waiting."""
        size = len(body) + len(response)
        with self._lock:
            if self._queued_bytes + size > MAX_QUEUED_BYTES:
                full = True
            else:
                full = False
                self._queued_bytes += size
        if full:
            self._dropped(endpoint)
            return
        self._queue.put((endpoint, variant, request_type, body, response_type, response, inference_id,
                         datetime.now(UTC)))

    def _dropped(self, endpoint: str) -> None:
        if self.on_drop is not None:
            self.on_drop(endpoint)

    def _run(self) -> None:
        while (entry := self._queue.get()) is not None:
            endpoint, variant, request_type, body, response_type, response, inference_id, when = entry
            with self._lock:
                self._queued_bytes -= len(body) + len(response)
            metadata = {"eventId": str(uuid.uuid4()), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
            if inference_id:
                metadata["inferenceId"] = inference_id
            line = json.dumps({"captureData": {"endpointInput": _payload(request_type, body, "INPUT"),
                                               "endpointOutput": _payload(response_type, response, "OUTPUT")},
                               "eventMetadata": metadata, "eventVersion": "0"}, separators=(",", ":"))
            try:
                usage = shutil.disk_usage(self.directory)
                if usage.used / usage.total > MAX_DISK_USE:
                    self._dropped(endpoint)
                    continue
                path = self.directory / endpoint / variant / f"{when:%Y/%m/%d/%H}" / f"{self._file_stamp}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                with path.open("a", encoding="utf-8") as f:
                    f.write(line + "\n")
            except OSError:  # a full or vanished disk must not stop the server; the record is lost and counted
                self._dropped(endpoint)


def _payload(content_type: str, data: bytes, mode: str) -> dict[str, Any]:
    if content_type.startswith("application/json"):
        return {"observedContentType": content_type, "mode": mode, "data": data.decode("utf-8", "replace"),
                "encoding": "JSON"}
    return {"observedContentType": content_type, "mode": mode, "data": base64.b64encode(data).decode("ascii"),
            "encoding": "BASE64"}
