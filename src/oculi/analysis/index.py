"""A nearest-neighbour index over L2-normalised embeddings with the items they describe. Search is exact cosine
similarity with torch (a matrix product and ``topk``, in chunks) by default; ``usearch``'s HNSW index answers
approximately when the collection is at least :data:`APPROXIMATE_FROM` vectors (or when asked).

On disk (``oculi embed … --output INDEX``), a folder: ``index.json`` (the model bundle, dimension, items: image
file, box, split, labels), ``vectors.safetensors`` (``float32 [N, D]``) and, once built, ``approximate.usearch``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oculi.analysis.cache import atomic_write
from oculi.errors import ConfigError, DataError

# vectors. bench/analysis_search.py (2-core AMD EPYC, 256-d): at 10⁶ exact search still answers in 135 ms while
# the HNSW index takes 12 minutes to build (and recalls 0.20 of the exact top 10 on that bench's hard, clustered
# random vectors): so exact up to "about a million", approximate only beyond, or when asked
APPROXIMATE_FROM = 2_000_000
_CHUNK = 4096  # queries per matrix product


def exact_search(vectors: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` cosine similarities of normalised ``queries [Q, D]`` among ``vectors [N, D]``: ``(scores
    float32 [Q, k], indices int64 [Q, k])``, best first."""
    k = min(k, len(vectors))
    scores, indices = [], []
    for start in range(0, len(queries), _CHUNK):
        s, i = torch.topk(queries[start:start + _CHUNK] @ vectors.T, k, dim=1)
        scores.append(s)
        indices.append(i)
    return torch.cat(scores).numpy(), torch.cat(indices).numpy()


class ApproximateIndex:
    """usearch HNSW over cosine distance (``f32``); :meth:`search` returns cosine similarities like
    :func:`exact_search`."""

    def __init__(self, dimension: int) -> None:
        from usearch.index import Index

        # wider candidate lists than usearch's defaults: recall@10 on clustered 256-d data (bench/analysis_search.py,
        # 10⁴ vectors) rose from 0.81 to 0.98 for a 1.4× longer build
        self.index = Index(ndim=dimension, metric="cos", dtype="f32", connectivity=16, expansion_add=128,
                           expansion_search=256)

    def add(self, vectors: np.ndarray) -> None:
        """Add ``float32 [N, D]`` vectors with keys 0…N-1 (after those already there)."""
        start = len(self.index)
        self.index.add(np.arange(start, start + len(vectors), dtype=np.uint64), np.ascontiguousarray(vectors))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores [Q, k], indices [Q, k])``; a missing neighbour has index -1 and score -inf."""
        result = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        keys = np.asarray(result.keys, dtype=np.int64).reshape(len(queries), -1)
        distances = np.asarray(result.distances, dtype=np.float32).reshape(len(queries), -1)
        # one query gives usearch's Matches (no counts), several its BatchMatches
        counts = np.asarray(result.counts if hasattr(result, "counts") else [len(result.keys)]).reshape(-1)
        valid = np.arange(keys.shape[1])[None, :] < counts[:, None]
        return np.where(valid, 1 - distances, -np.inf), np.where(valid, keys, -1)

    def save(self, path: Path) -> None:
        """Write the index to ``path``."""
        self.index.save(str(path))

    @classmethod
    def load(cls, path: Path, dimension: int) -> ApproximateIndex:
        """Read an index written by :meth:`save`."""
        index = cls(dimension)
        index.index.load(str(path))
        return index


@dataclass
class VectorIndex:
    """Normalised embeddings ``vectors float32 [N, D]`` and one ``items[i]`` dict per row (``image``: file path;
    ``box``: ``[x0, y0, x1, y1]`` pixels or None for the whole image; ``split``; ``labels``: class names).
    ``model``: the bundle that embedded them."""

    vectors: np.ndarray
    items: list[dict[str, Any]]
    model: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    _approximate: ApproximateIndex | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.items)

    def search(self, queries: np.ndarray, k: int = 10, *, approximate: bool | None = None,
               rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each query (``float32 [Q, D]``, normalised): ``(scores [Q, k], indices
        [Q, k])``, best first. ``approximate``: None = only from :data:`APPROXIMATE_FROM` vectors. ``rows``:
        restrict the search to these rows (exact)."""
        if k < 1:
            raise ConfigError(f"-k got {k}; expected an integer ≥ 1, e.g. -k 10.")
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.vectors.shape[1]:
            raise DataError(f"queries have {queries.shape[1]} dimensions, the index {self.vectors.shape[1]}; "
                            "embed them with the index's model.")
        use_approx = (len(self) >= APPROXIMATE_FROM) if approximate is None else approximate
        if rows is None and use_approx:
            if self._approximate is None:
                self._approximate = ApproximateIndex(self.vectors.shape[1])
                self._approximate.add(self.vectors)
            return self._approximate.search(queries, k)
        subset = self.vectors if rows is None else self.vectors[rows]
        if len(subset) == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        scores, indices = exact_search(torch.from_numpy(subset), torch.from_numpy(queries), k)
        return scores, (indices if rows is None else np.asarray(rows)[indices])

    def save(self, folder: Path) -> Path:
        """Write the index folder (see the module docstring); files are renamed into place."""
        from safetensors.numpy import save

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "vectors.safetensors", save({"vectors": np.ascontiguousarray(self.vectors)}))
        if self._approximate is not None:
            self._approximate.save(folder / "approximate.usearch")
        head = {"format": "oculi-index/1", "model": self.model, "dimension": int(self.vectors.shape[1]),
                "count": len(self), "meta": self.meta, "items": self.items}
        atomic_write(folder / "index.json", json.dumps(head, indent=1).encode())
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> VectorIndex:
        """Read an index folder written by :meth:`save`; a folder that is not one raises
        :class:`~oculi.errors.DataError` saying how to make it."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        head_path = folder / "index.json"
        if not head_path.is_file():
            raise DataError(f"{folder}: not an oculi index (no index.json). Make one with "
                            "`oculi embed MODEL CHANNEL --output INDEX`.")
        try:
            head = json.loads(head_path.read_text(encoding="utf-8"))
            vectors = load_file(folder / "vectors.safetensors")["vectors"]
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{folder}: unreadable index ({e}); make it again with `oculi embed`.") from None
        index = cls(vectors, head["items"], head.get("model"), head.get("meta", {}))
        approx = folder / "approximate.usearch"
        if approx.exists():
            index._approximate = ApproximateIndex.load(approx, int(head["dimension"]))
        return index
