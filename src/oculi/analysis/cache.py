"""Per-file caches of what the analysis layer computes (image statistics, embeddings), keyed by a file's
fingerprint — its resolved path, size and modification time — so a second audit or embedding of the same files
reads them back instead of decoding again. Caches live under ``OCULI_HOME/cache/analysis/`` and are written to a
temporary file and renamed, so an interrupted run never leaves a broken cache (a stale or unreadable one is
ignored and rebuilt)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def fingerprint(path: Path) -> str:
    """``"<resolved path>|<size>|<mtime ns>"``: changes whenever the file is replaced or edited."""
    stat = Path(path).stat()
    return f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def cache_dir() -> Path:
    """``OCULI_HOME/cache/analysis``."""
    from oculi.settings import oculi_home

    return oculi_home() / "cache" / "analysis"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class RecordCache:
    """A JSON dict ``fingerprint → record`` (image statistics), loaded on creation, saved by :meth:`save`."""

    def __init__(self, name: str, enabled: bool = True) -> None:
        self.path = cache_dir() / f"{name}.json"
        self.enabled = enabled
        self.records: dict[str, Any] = {}
        self.dirty = False
        if enabled and self.path.exists():
            with contextlib.suppress(OSError, ValueError):
                self.records = json.loads(self.path.read_text(encoding="utf-8"))

    def get(self, key: str) -> Any:
        """The cached record of ``key`` or None."""
        return self.records.get(key)

    def put(self, key: str, record: Any) -> None:
        """Remember ``record`` under ``key`` (saved by :meth:`save`)."""
        self.records[key] = record
        self.dirty = True

    def save(self) -> None:
        """Write the cache when something was added."""
        if self.enabled and self.dirty:
            atomic_write(self.path, json.dumps(self.records).encode())
            self.dirty = False


class VectorCache:
    """``key → float32 vector`` (embeddings of one model), stored as ``<name>.npz`` (no pickles)."""

    def __init__(self, name: str, enabled: bool = True) -> None:
        self.path = cache_dir() / f"{name}.npz"
        self.enabled = enabled
        self.vectors: dict[str, np.ndarray] = {}
        self.dirty = False
        if enabled and self.path.exists():
            with contextlib.suppress(OSError, ValueError, KeyError):
                with np.load(self.path, allow_pickle=False) as data:
                    keys = [str(k) for k in data["keys"]]
                    self.vectors = dict(zip(keys, data["vectors"], strict=True))

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector of ``key`` or None."""
        return self.vectors.get(key)

    def put(self, key: str, vector: np.ndarray) -> None:
        """Remember ``vector`` under ``key`` (saved by :meth:`save`)."""
        self.vectors[key] = np.asarray(vector, dtype=np.float32)
        self.dirty = True

    def save(self) -> None:
        """Write the cache when something was added."""
        if not (self.enabled and self.dirty and self.vectors):
            return
        import io

        buffer = io.BytesIO()
        keys = list(self.vectors)
        np.savez(buffer, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]))
        atomic_write(self.path, buffer.getvalue())
        self.dirty = False
