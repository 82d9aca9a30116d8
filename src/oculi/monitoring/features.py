"""What a monitor measures of a collection of images, and SageMaker Model Monitor's ``statistics.json`` /
``constraints.json`` shapes for it.

Per image: the input statistics of :mod:`oculi.analysis.stats` (size, aspect, brightness, contrast, saturation,
sharpness, entropy, colourfulness, channel means; format and mode as categories), the prediction statistics of the
task contract's ``monitoring_statistics`` hook (class mix and confidence; boxes per image, box sizes, scores and
classes; class area fractions and pixel confidence), and the model's own embedding (:mod:`oculi.analysis.embeddings`).

``statistics.json`` keeps SageMaker's keys (``version``, ``dataset.item_count``, ``features[]`` with
``numerical_statistics`` or ``string_statistics``); a numeric feature's ``distribution.kll.sketch.data`` holds its
sampled values (at most :data:`SKETCH_VALUES`, a seeded sample) — an exact sketch, which is also what the
Kolmogorov–Smirnov test compares against."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SKETCH_VALUES = 5000  # values kept per numeric feature in statistics.json
CHANNELS = ("red", "green", "blue")


@dataclass
class Features:
    """Measured features of a collection: ``numeric`` name → values (one per image, or one per box for list
    features), ``categorical`` name → counts, ``embeddings`` ``float32 [N, D]`` (one per decoded image),
    ``images`` the files measured, ``failed`` ``(file, why)`` for those that did not decode."""

    numeric: dict[str, list[float]] = field(default_factory=dict)
    categorical: dict[str, Counter[str]] = field(default_factory=dict)
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    images: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def add(self, row: dict[str, Any]) -> None:
        """Add one image's measurements (numbers, texts, or lists of either)."""
        self.per_image.append(row)
        for name, value in row.items():
            values = value if isinstance(value, list | tuple) else [value]
            for v in values:
                if isinstance(v, str):
                    self.categorical.setdefault(name, Counter())[v] += 1
                elif v is not None and np.isfinite(v):
                    self.numeric.setdefault(name, []).append(float(v))
            if isinstance(value, list | tuple) and not value and name not in self.categorical:
                self.numeric.setdefault(name, [])  # no boxes in this image: the feature still exists


EMBEDDING_PASS = "prediction"  # baseline.json's ``embedding``: taken during the prediction pass (see measure)


def measure(predictor: Any, contract: Any, paths: Sequence[Path], *, embed: bool = True, batch: int = 16,
            embedding: str = EMBEDDING_PASS, advance: Callable[[int], None] | None = None) -> Features:
    """Measure ``paths`` with ``predictor`` (input statistics, the contract's prediction statistics and, with
    ``embed``, embeddings). Files that do not decode are listed in ``failed``, never raised.

    ``embedding="prediction"`` (default) reads the embeddings in the predictor's own forward pass, at its input
    size (one pass per image; the torch runtime); a chunk where the hook did not give one vector per image (another
    runtime, tiled inference) falls back to a separate pass. ``"embedder"``: always the separate
    :class:`~oculi.analysis.embeddings.Embedder` pass, images stretched to the network's input size — what
    baselines made before the shared pass hold, and what checks against them must use."""
    from oculi.analysis.stats import SCALARS, ImageStats, collect_stats

    features = Features()
    stats = collect_stats(list(paths), workers=2)
    good: list[Path] = []
    for path in paths:
        s = stats[Path(path)]
        if isinstance(s, ImageStats):
            good.append(Path(path))
        else:
            features.failed.append((str(path), str(s)))
    rows: list[dict[str, Any]] = []
    for path in good:
        s = stats[path]
        row: dict[str, Any] = {name: float(getattr(s, name)) for name in SCALARS}
        row.update({f"channel_mean_{c}": float(v) for c, v in zip(CHANNELS, s.channel_means, strict=True)})
        row.update({"format": s.format or "unknown", "mode": s.mode})
        rows.append(row)
    from oculi.analysis.embeddings import Embedder, tapped

    vectors: list[np.ndarray] = []
    embedder: Embedder | None = None
    embed = embed and contract.embedding_tap is not None
    shared = embed and embedding == EMBEDDING_PASS and contract.monitoring_statistics is not None
    tap = contract.embedding_tap(predictor.network()) if shared else None
    for start in range(0, len(good), batch):
        chunk = good[start:start + batch]
        got: list[Any] = []
        if contract.monitoring_statistics is not None:
            with tapped(tap) if tap is not None else _nothing() as got:
                extras = contract.monitoring_statistics(predictor, chunk)
            for row, extra in zip(rows[start:start + batch], extras, strict=True):
                row.update(extra)
        if embed:
            taken = np.concatenate([g.numpy() for g in got]) if got else None
            if taken is not None and len(taken) == len(chunk):
                vectors.append(taken)
            else:
                embedder = embedder or Embedder(predictor)
                vectors.append(embedder.embed_items([(p, None) for p in chunk]))
        if advance:
            advance(len(chunk))
    for row in rows:
        features.add(row)
    features.images = good
    if vectors:
        features.embeddings = np.concatenate(vectors).astype(np.float32)
    return features


@contextmanager
def _nothing() -> Iterator[list[Any]]:
    yield []


def _inferred_type(values: Sequence[float]) -> str:
    return "Integral" if all(float(v).is_integer() for v in values) else "Fractional"


def statistics_json(features: Features, *, seed: int = 0) -> dict[str, Any]:
    """SageMaker's ``statistics.json`` for ``features`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    items = len(features.images)
    for name in sorted(features.numeric):
        values = np.asarray(features.numeric[name], dtype=np.float64)
        kept = values if values.size <= SKETCH_VALUES else rng.choice(values, SKETCH_VALUES, replace=False)
        common = {"num_present": int(values.size), "num_missing": 0}
        stats: dict[str, Any] = {"common": common}
        if values.size:
            edges = np.linspace(values.min(), values.max(), 11)
            counts, _ = np.histogram(values, bins=edges if values.max() > values.min() else 1)
            buckets = [{"lower_bound": float(lo), "upper_bound": float(hi), "count": float(c)}
                       for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=False)]
            stats.update({"mean": float(values.mean()), "sum": float(values.sum()), "std_dev": float(values.std()),
                          "min": float(values.min()), "max": float(values.max()),
                          "distribution": {"kll": {"buckets": buckets, "sketch": {
                              "parameters": {"c": 0.64, "k": float(max(1, kept.size))},
                              "data": [sorted(float(v) for v in kept)]}}}})
        out.append({"name": name, "inferred_type": _inferred_type(values.tolist()), "numerical_statistics": stats})
    for name in sorted(features.categorical):
        counts = features.categorical[name]
        out.append({"name": name, "inferred_type": "String", "string_statistics": {
            "common": {"num_present": int(sum(counts.values())), "num_missing": 0},
            "distinct_count": float(len(counts)),
            "distribution": {"categorical": {"buckets": [{"value": k, "count": float(v)}
                                                         for k, v in counts.most_common()]}}}})
    return {"version": 0.0, "dataset": {"item_count": items, "failed_count": len(features.failed)},
            "features": out}


def read_statistics(statistics: dict[str, Any]) -> tuple[dict[str, list[float]], dict[str, dict[str, float]]]:
    """``(numeric samples, categorical counts)`` from a ``statistics.json`` written by :func:`statistics_json`."""
    numeric: dict[str, list[float]] = {}
    categorical: dict[str, dict[str, float]] = {}
    for feature in statistics.get("features", []):
        if "numerical_statistics" in feature:
            sketch = feature["numerical_statistics"].get("distribution", {}).get("kll", {}).get("sketch", {})
            numeric[feature["name"]] = [float(v) for row in sketch.get("data", []) for v in row]
        elif "string_statistics" in feature:
            buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
            categorical[feature["name"]] = {b["value"]: float(b["count"]) for b in buckets}
    return numeric, categorical


DEFAULT_ALPHA = 0.01
DEFAULT_MIN_EFFECT = 0.1  # SageMaker's default comparison_threshold


def suggest_constraints(features: Features, *, alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """SageMaker's ``constraints.json`` suggested from a baseline (as ``suggest_baseline`` does): each feature's
    type and completeness, ``is_non_negative`` for numbers that never went below 0, the seen values as the domain
    of a category; and oculi's drift settings (editable by hand): per feature the test (``ks`` / ``chi2``) and the
    smallest effect that counts (``min_effect``), in ``monitoring_config.drift`` the significance ``alpha``
    (Holm-corrected over all tests of a check), the embedding test and the fewest images a check tests."""
    constraints: list[dict[str, Any]] = []
    for name in sorted(features.numeric):
        values = features.numeric[name]
        constraints.append({"name": name, "inferred_type": _inferred_type(values), "completeness": 1.0,
                            "num_constraints": {"is_non_negative": bool(values) and min(values) >= 0},
                            "drift_check": {"test": "ks", "min_effect": DEFAULT_MIN_EFFECT}})
    for name in sorted(features.categorical):
        constraints.append({"name": name, "inferred_type": "String", "completeness": 1.0,
                            "string_constraints": {"domains": sorted(features.categorical[name])},
                            "drift_check": {"test": "chi2", "min_effect": DEFAULT_MIN_EFFECT}})
    return {"version": 0.0, "features": constraints, "monitoring_config": {
        "evaluate_constraints": "Enabled", "emit_metrics": "Enabled", "datatype_check_threshold": 1.0,
        "domain_content_threshold": 1.0,
        "distribution_constraints": {"perform_comparison": "Enabled", "comparison_threshold": DEFAULT_MIN_EFFECT,
                                     "comparison_method": "Robust"},
        "drift": {"alpha": alpha, "correction": "holm", "min_images": 20, "completeness": 0.95,
                  "embedding": {"test": "mmd", "permutations": 500, "enabled": features.embeddings.size > 0}}}}
