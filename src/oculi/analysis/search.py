"""Visual search and auto-tagging over a bundle's embeddings: :func:`embed` builds a
:class:`~oculi.analysis.index.VectorIndex` of a dataset (whole images, and for detection every labelled box as a
crop — the task contract's ``embedding_regions``), :func:`search` finds the nearest images or boxes to a query
image or box, :func:`tag` proposes labels for new images from their nearest labelled neighbours and the model."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from oculi.analysis.audit import progress_bar, read_sets
from oculi.analysis.cache import atomic_write
from oculi.analysis.embeddings import Box, Embedder
from oculi.analysis.index import APPROXIMATE_FROM, VectorIndex
from oculi.errors import ConfigError, DataError

TAG_NEIGHBOURS = 10


def _labels(target: Any, classes: list[str]) -> list[str]:
    labels = getattr(target, "labels", None)
    if labels is None:
        labels = target if isinstance(target, tuple) else () if target is None else (target,)
    return sorted({classes[i] for i in labels if 0 <= i < len(classes)})


def embed(model: str | Path, channels: Sequence[str | Path], output: str | Path, *, task: str = "auto",
          image_roots: dict[str, Path] | None = None, progress: bool = True) -> VectorIndex:
    """Embed every image of a dataset (one PATH or ``NAME=PATH`` channels) with ``model``'s backbone — and, for
    detection, each labelled box as a crop — and save the index folder ``output``. Items carry the image file,
    the box (None = whole image), the split and the class names."""
    from oculi.tasks import get_task

    embedder = Embedder.from_bundle(model)
    task_name, sets = read_sets(channels, task=task, image_roots=image_roots)
    contract = get_task(task_name)
    items: list[dict[str, Any]] = []
    for split, sample_set in sets.items():
        for sample in sample_set.samples:
            items.append({"image": str(sample.image), "box": None, "split": split,
                          "labels": _labels(sample.target, sample_set.classes)})
            boxes = contract.embedding_regions(sample.target)
            labels = getattr(sample.target, "labels", ())
            for box, label in zip(boxes, labels, strict=False):
                items.append({"image": str(sample.image), "box": [round(float(v), 2) for v in box], "split": split,
                              "labels": [sample_set.classes[label]]})
    if not items:
        raise DataError(f"{channels[0]}: no images to embed.")
    start = time.perf_counter()
    with progress_bar("embedding", len(items), progress) as advance:
        vectors = embedder.embed_items([(Path(i["image"]), i["box"]) for i in items], advance=advance)
    index = VectorIndex(vectors, items, str(Path(model).resolve()),
                        {"task": task_name, "model_task": embedder.contract.name,
                         "seconds": round(time.perf_counter() - start, 2)})
    if len(index) >= APPROXIMATE_FROM:  # build the approximate index once, here, and save it with the vectors
        index.search(vectors[:1], 1)
    index.save(Path(output))
    return index


def search(index: str | Path | VectorIndex, query: str | Path, *, box: Box | None = None, k: int = 10,
           approximate: bool | None = None, embedder: Embedder | None = None) -> list[dict[str, Any]]:
    """The ``k`` nearest items to the ``query`` image (or its ``box``, ``xyxy`` pixels) — whole images for a
    whole-image query, boxes for a box query — as dicts ``rank, score (cosine similarity), image, box, split,
    labels``, best first."""
    from oculi.analysis.embeddings import crop

    index = index if isinstance(index, VectorIndex) else VectorIndex.load(index)
    if embedder is None:
        if not index.model or not Path(index.model).exists():
            raise DataError(f"the index's model {index.model} is gone; embed the collection again with "
                            "`oculi embed MODEL CHANNEL --output INDEX`.")
        embedder = Embedder.from_bundle(index.model)
    if not Path(query).is_file():
        raise DataError(f"{query}: not found; pass an image file to search with.")
    vector = embedder.embed_tensors([crop(embedder.predictor.to_tensor(Path(query)), box)])
    rows = np.array([n for n, item in enumerate(index.items) if (item["box"] is None) == (box is None)])
    if not len(rows):
        kind = "boxes (index a detection dataset)" if box is not None else "whole images"
        raise DataError(f"the index holds no {kind} to search.")
    use_rows = None if len(rows) == len(index) else rows
    scores, found = index.search(vector, k, approximate=approximate, rows=use_rows)
    return [{"rank": r + 1, "score": float(s), **index.items[int(n)]}
            for r, (s, n) in enumerate(zip(scores[0], found[0], strict=True)) if n >= 0]


def tag(source: str | Path, images: Sequence[str | Path], output: str | Path | None = None, *,
        k: int = TAG_NEIGHBOURS, label_attribute: str = "class") -> list[dict[str, Any]]:
    """Propose a class for each image from its ``k`` nearest labelled images in an index (similarity-weighted
    vote) and, when the model is a classifier of the same classes, its probabilities (the two averaged); with a
    classifier bundle and no index, the model alone. Returns per image ``image, label, confidence, neighbours``
    and writes ``output`` as a Ground Truth-style manifest of pre-labels (``human-annotated: no``)."""
    source = Path(source)
    index = VectorIndex.load(source) if (source / "index.json").is_file() else None
    model = index.model if index is not None else str(source)
    embedder = Embedder.from_bundle(model)
    images = [Path(p) for p in images]
    for path in images:
        if not path.is_file():
            raise DataError(f"{path}: not found; pass image files to tag.")
    is_classifier = embedder.contract.name == "classification"
    if index is None and not is_classifier:
        raise ConfigError(f"{source}: a {embedder.contract.title} model proposes no image labels by itself; pass "
                          "an index made by `oculi embed` with labelled images.")
    classes = sorted({label for item in (index.items if index else []) if item["box"] is None
                      for label in item["labels"]}) or list(embedder.predictor.classes)
    vectors = embedder.embed_tensors([embedder.predictor.to_tensor(p) for p in images])
    votes = np.zeros((len(images), len(classes)), dtype=np.float64)
    neighbours: list[list[str]] = [[] for _ in images]
    if index is not None:
        rows = np.array([n for n, item in enumerate(index.items) if item["box"] is None and item["labels"]])
        scores, found = index.search(vectors, k, rows=rows)
        for q in range(len(images)):
            for s, n in zip(scores[q], found[q], strict=True):
                for label in index.items[int(n)]["labels"]:
                    votes[q, classes.index(label)] += max(float(s), 0.0)
                neighbours[q].append(index.items[int(n)]["image"])
        votes /= np.clip(votes.sum(1, keepdims=True), 1e-12, None)
    if is_classifier and set(classes) <= set(embedder.predictor.classes):
        order = [embedder.predictor.classes.index(c) for c in classes]
        probabilities = embedder.predictor.probabilities(images).numpy()[:, order]
        votes = probabilities if index is None else (votes + probabilities) / 2
    results = []
    for q, path in enumerate(images):
        best = int(np.argmax(votes[q]))
        results.append({"image": str(path.resolve()), "label": classes[best],
                        "confidence": round(float(votes[q, best]), 4), "neighbours": neighbours[q][:3],
                        "class_id": best})
    if output is not None:
        write_pre_labels(results, classes, Path(output), label_attribute)
    return results


def write_pre_labels(results: list[dict[str, Any]], classes: list[str], path: Path, label_attribute: str) -> Path:
    """Write proposed labels as an augmented manifest (``source-ref``, ``<attribute>``, ``<attribute>-metadata``
    with ``class-name``, ``confidence``, ``class-map``, ``human-annotated: no``), renamed into place."""
    from datetime import UTC, datetime

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    class_map = {str(i): name for i, name in enumerate(classes)}
    lines = [json.dumps({"source-ref": r["image"], label_attribute: r["class_id"], f"{label_attribute}-metadata": {
        "class-name": r["label"], "confidence": r["confidence"], "class-map": class_map,
        "type": "groundtruth/image-classification", "human-annotated": "no", "creation-date": stamp,
        "job-name": "oculi-tag"}}) for r in results]
    atomic_write(path, ("\n".join(lines) + "\n").encode())
    return path

