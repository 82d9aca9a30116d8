"""Image statistics and the task contract's analysis hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageFilter

from oculi.analysis.embeddings import last_linear_tap, tap_features
from oculi.analysis.stats import collect_stats, compute_stats, hamming
from oculi.errors import DataError
from oculi.tasks import TASKS, get_task


def photo(tmp_path, name="photo.png", seed=0, size=(200, 150)):
    """A random colour picture of blocks with sharp edges, written to ``tmp_path/name``."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.NEAREST)  # blocks with sharp edges
    img.save(tmp_path / name)
    return tmp_path / name


def test_statistics_follow_the_pictures(tmp_path):
    original = photo(tmp_path)
    img = Image.open(original)
    img.filter(ImageFilter.GaussianBlur(3)).save(tmp_path / "blurred.png")
    img.point(lambda v: v // 5).save(tmp_path / "dark.png")
    img.convert("L").save(tmp_path / "gray.png")
    img.resize((160, 120)).save(tmp_path / "copy.jpg", quality=55)
    stats = {p.stem: compute_stats(p) for p in tmp_path.iterdir()}
    base = stats["photo"]
    assert (base.width, base.height, base.aspect) == (200, 150, 200 / 150) and base.format == "PNG"
    assert stats["blurred"].sharpness < base.sharpness / 3
    assert stats["dark"].brightness < base.brightness / 3
    assert stats["gray"].colourfulness < 0.005 < base.colourfulness and stats["gray"].mode == "L"
    assert hamming(base.phash, stats["copy"].phash) <= 6  # re-encoded and resized: nearly the same hash
    assert hamming(base.phash, compute_stats(photo(tmp_path, "other.png", seed=1)).phash) > 16
    assert base.sha1 != stats["copy"].sha1


def test_collect_stats_names_undecodable_files(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    good = photo(tmp_path)
    result = collect_stats([bad, good, tmp_path / "gone.jpg"], cache=False)
    assert isinstance(result[bad], DataError) and "bad.jpg" in str(result[bad])
    assert isinstance(result[tmp_path / "gone.jpg"], DataError)
    assert result[good].width == 200


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_has_the_analysis_hooks(name):
    contract = get_task(name)
    assert contract.embedding_tap is not None and contract.write_manifest is not None


def test_classifier_penultimate_features_are_the_last_linear_input():
    from oculi.algorithms.backbones import build_network

    network = build_network("resnet", 20, 3).eval()
    features = tap_features(network, torch.zeros(2, 3, 32, 32), last_linear_tap(network))
    assert features.shape == (2, network.fc.in_features)
    assert torch.allclose(network.fc(features), network(torch.zeros(2, 3, 32, 32)))
