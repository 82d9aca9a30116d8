"""``oculi embed`` / ``search`` / ``tag`` and the vector index: an image's re-encoded copy comes back first,
tagging by labelled neighbours is right on real photos, approximate search agrees with exact search."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oculi.analysis.index import VectorIndex
from oculi.analysis.search import embed, search, tag
from oculi.cli import app
from oculi.data.formats.manifest import read_manifest
from tests.analysis.conftest import HYMENOPTERA


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``train/{ants,bees}`` (12 photos each) and ``val/{ants,bees}`` (8 each) copied from hymenoptera."""
    if not HYMENOPTERA.is_dir():
        pytest.skip(f"real data folder {HYMENOPTERA} is absent")
    root = tmp_path_factory.mktemp("photos")
    for split, count in (("train", 12), ("val", 8)):
        for name in ("ants", "bees"):
            (root / split / name).mkdir(parents=True)
            for f in sorted((HYMENOPTERA / split / name).glob("*.jpg"))[:count]:
                shutil.copy(f, root / split / name / f.name)
    return root


def test_search_returns_the_reencoded_copy_first(label_audit, photos, tmp_path):
    model = Path(label_audit.report.embedding_model)
    data = tmp_path / "data"
    shutil.copytree(photos / "train", data)
    original = sorted((data / "bees").glob("*.jpg"))[3]
    query = tmp_path / "query.jpg"
    shutil.move(original, query)
    img = Image.open(query).convert("RGB")
    copy = data / "bees" / "copy.jpg"
    img.resize((int(img.width * 0.8), int(img.height * 0.8))).save(copy, quality=55)
    index = embed(model, [data], tmp_path / "index", progress=False)
    assert len(index) == 24 and (tmp_path / "index" / "vectors.safetensors").exists()
    hits = search(tmp_path / "index", query, k=5)
    assert hits[0]["image"] == str(copy) and hits[0]["score"] > hits[1]["score"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    result = CliRunner().invoke(app, ["search", str(tmp_path / "index"), str(query), "-k", "3",
                                      "--html", str(tmp_path / "sheet" / "similar.html")])
    assert result.exit_code == 0, result.output
    sheet = (tmp_path / "sheet" / "similar.html").read_text()
    assert "copy.jpg" in sheet and len(list((tmp_path / "sheet" / "thumbs").glob("*.jpg"))) == 4


def test_tag_proposes_labels_from_labelled_neighbours(label_audit, photos, tmp_path):
    model = Path(label_audit.report.embedding_model)
    embed(model, [photos / "train"], tmp_path / "index", progress=False)
    images = sorted((photos / "val").rglob("*.jpg"))
    out = tmp_path / "pre-labels.manifest"
    results = tag(tmp_path / "index", images, out, k=5)
    right = sum(r["label"] == Path(r["image"]).parent.name for r in results)
    assert right / len(images) >= 0.7, [(Path(r["image"]).name, r["label"]) for r in results]
    assert all(0 < r["confidence"] <= 1 for r in results)
    manifest = read_manifest(out)  # usable as pre-labels by oculi's own reader
    assert len(manifest) == len(images) and sorted(manifest.classes) == ["ants", "bees"]
    assert '"human-annotated": "no"' in out.read_text()


def test_approximate_index_agrees_with_exact_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(vectors, [{"image": f"{n}.jpg", "box": None, "split": "train", "labels": []}
                                  for n in range(len(vectors))])
    queries = vectors[:200] + 0.05 * rng.normal(size=(200, 32)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact_scores, exact = index.search(queries, 10, approximate=False)
    approx_scores, approx = index.search(queries, 10, approximate=True)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.9 and (exact[:, 0] == np.arange(200)).all()
    # an approximate (HNSW) index may miss a query's true nearest neighbour now and then (its build is threaded,
    # so which one varies); almost every top-1 score must equal the exact one
    assert np.isclose(approx_scores[:, 0], exact_scores[:, 0], atol=1e-4).mean() >= 0.97
    assert np.array_equal(index.search(queries[:1], 10, approximate=True)[1], approx[:1])  # a single query too
    index.save(tmp_path / "index")
    loaded = VectorIndex.load(tmp_path / "index")
    assert np.array_equal(loaded.vectors, vectors) and loaded.items == index.items
    assert np.array_equal(loaded.search(queries, 10, approximate=True)[1], approx)


def test_detection_index_holds_box_crops_and_searches_by_box(tmp_path):
    from oculi.algorithms import get_algorithm
    from oculi.data.tasks import DATA_TASKS
    from oculi.engine.training import train

    channels = DATA_TASKS.get("detection").synthesize(tmp_path / "data", 0)
    tiny = {**get_algorithm("object-detection").tiny_hyperparameters, "epochs": "1"}
    result = train("object-detection", channels, tiny, output=tmp_path / "model", progress=False,
                   echo=lambda *_: None)
    index = embed(result.model_dir, [f"{name}={path}" for name, path in channels.items()], tmp_path / "index",
                  progress=False)
    boxes = [item for item in index.items if item["box"] is not None]
    assert boxes and len(index) == len(boxes) + sum(item["box"] is None for item in index.items)
    target = boxes[len(boxes) // 2]
    hits = search(tmp_path / "index", target["image"], box=tuple(target["box"]), k=3)
    assert all(hit["box"] is not None for hit in hits)  # a box query finds boxes
    assert (hits[0]["image"], hits[0]["box"]) == (target["image"], target["box"]) and hits[0]["score"] > 0.999
    whole = search(tmp_path / "index", target["image"], k=1)
    assert whole[0]["box"] is None and whole[0]["image"] == target["image"]
