"""Search latency of the vector index at growing sizes (random unit vectors, generated): exact cosine search with
torch against usearch's approximate HNSW index, with the approximate index's build time and recall@10 (the
share of the exact top 10 it returns). Shows where the switch to the approximate index pays.

Usage: .venv/bin/python bench/analysis_search.py [--sizes 10000,100000,1000000] [--dim 256] [--queries 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from oculi.analysis.index import VectorIndex


def unit(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """``count`` random unit vectors ``float32 [count, dim]``, clustered like embeddings (100 centres)."""
    centres = rng.normal(size=(100, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 100, count)] + 0.7 * rng.normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def main() -> int:
    """Print one line per size: exact and approximate latency per query, build time, recall@10."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for size in (int(s) for s in args.sizes.split(",")):
        vectors = unit(rng, size, args.dim)
        index = VectorIndex(vectors, [{} for _ in range(size)])
        queries = unit(rng, args.queries, args.dim)
        start = time.perf_counter()
        for q in queries:
            _, exact = index.search(q[None], 10, approximate=False)
        exact_ms = (time.perf_counter() - start) / len(queries) * 1000
        _, exact = index.search(queries, 10, approximate=False)
        start = time.perf_counter()
        index.search(queries[:1], 10, approximate=True)  # builds the HNSW index
        build = time.perf_counter() - start
        start = time.perf_counter()
        for q in queries:
            index.search(q[None], 10, approximate=True)
        approx_ms = (time.perf_counter() - start) / len(queries) * 1000
        _, approx = index.search(queries, 10, approximate=True)
        recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
        print(f"{size:>9} vectors × {args.dim}: exact {exact_ms:7.2f} ms/query · approximate {approx_ms:6.2f} "
              f"ms/query (build {build:6.1f} s) · recall@10 {recall:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
