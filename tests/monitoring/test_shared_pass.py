"""The monitor reads embeddings during the prediction pass (one network pass per image, for every task in the
registry); baselines from before that keep the separate embedder pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from oculi.analysis.embeddings import Embedder, tap_features
from oculi.data.transforms import normalize
from oculi.monitoring.features import measure
from oculi.tasks import load_predictor, task_of
from tests.serving.bundles import TINY_BUNDLES, tiny_bundle


def images(folder, count=5):
    """``count`` random pictures of different sizes."""
    rng = np.random.default_rng(3)
    paths = []
    for n in range(count):
        path = folder / f"img{n}.png"
        Image.fromarray(rng.integers(0, 255, (40 + 9 * n, 60 - 4 * n, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def passes(predictor, paths, **options):
    """(features, forward calls of the embedding layer) of one :func:`measure`."""
    contract = task_of(predictor)
    module, _ = contract.embedding_tap(predictor.network())
    calls = []
    handle = module.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    try:
        features = measure(predictor, contract, paths, **options)
    finally:
        handle.remove()
    return features, sum(calls)


@pytest.mark.parametrize("algorithm", list(TINY_BUNDLES))
def test_embeddings_come_from_the_prediction_pass(algorithm, tmp_path):
    predictor = load_predictor(tiny_bundle(tmp_path / "model", algorithm), precision="float32")
    paths = images(tmp_path)
    _, predicting = passes(predictor, paths, embed=False)
    shared, with_embeddings = passes(predictor, paths)
    assert predicting >= len(paths) and with_embeddings == predicting  # no second pass
    assert shared.embeddings.shape[0] == len(paths)
    assert np.allclose(np.linalg.norm(shared.embeddings, axis=1), 1, atol=1e-4)
    separate, calls = passes(predictor, paths, embedding="embedder")
    assert calls > predicting  # an old baseline's checks still embed as it did
    expected = Embedder(predictor).embed_items([(p, None) for p in paths], cache=False)
    assert np.allclose(separate.embeddings, expected, atol=1e-5)


def test_a_classifier_s_shared_embedding_is_its_penultimate_layer_at_its_input(tmp_path):
    predictor = load_predictor(tiny_bundle(tmp_path / "model", "image-classification"), precision="float32")
    paths = images(tmp_path, 3)
    features, _ = passes(predictor, paths)
    batch = normalize(predictor.preprocess(paths), tuple(predictor.spec["mean"]), tuple(predictor.spec["std"]))
    network = predictor.network()
    with torch.inference_mode():
        direct = tap_features(network, batch, task_of(predictor).embedding_tap(network))
    assert np.allclose(features.embeddings, torch.nn.functional.normalize(direct, dim=1).numpy(), atol=1e-5)
