"""Multi-model endpoints: boto3's TargetModel picks the bundle, models load on first use (once, however many
first requests arrive together), the least recently used are unloaded beyond the limit under concurrent traffic,
and /metrics counts loads, hits and evictions."""

from __future__ import annotations

import json
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from oculi.artifacts import pack
from oculi.serving.multimodel import model_names
from oculi.serving.server import BackgroundServer, ServeOptions, build_multi_model_app
from oculi.tasks import load_predictor
from tests.serving.bundles import tiny_bundle
from tests.serving.conftest import encoded, metric
from tests.serving.test_data_plane import close, expected

MODELS = 6
MAX_LOADED = 2
HEADERS = {"Content-Type": "image/jpeg", "Accept": "application/json"}


@pytest.fixture(scope="module")
def model_dir(bundles, tmp_path_factory) -> Path:
    """``m0`` … ``m4`` bundle folders (different weights) and ``m5.tar.gz``."""
    root = tmp_path_factory.mktemp("mme") / "zoo"
    for n in range(MODELS - 1):
        if n < 2:
            shutil.copytree(bundles["classification" if n == 0 else "classification-b"], root / f"m{n}")
        else:
            tiny_bundle(root / f"m{n}", "image-classification", seed=n)
    packed = tiny_bundle(root.parent / "packed", "image-classification", seed=99)
    pack(packed, root / f"m{MODELS - 1}.tar.gz")
    return root


@pytest.fixture()
def mme(model_dir):
    server = BackgroundServer(build_multi_model_app(model_dir, ServeOptions(), MAX_LOADED, name="zoo",
                                                    echo=lambda _l: None)).start()
    yield server
    server.stop()


def _counts(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics").text
    return {k: metric(text, f"oculi_{k}", endpoint="zoo")
            for k in ("model_loads_total", "model_cache_hits_total", "model_evictions_total", "loaded_models")}


def test_boto3_target_model_answers_with_that_model(mme, model_dir):
    assert model_names(model_dir) == [f"m{n}" for n in range(MODELS - 1)] + [f"m{MODELS - 1}.tar.gz"]
    client = boto3.client("sagemaker-runtime", endpoint_url=mme.url, region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="x")
    body = encoded(40, 40, seed=3)
    answers = {}
    for target in ("m0", "m1", f"m{MODELS - 1}.tar.gz", "m0"):
        reply = client.invoke_endpoint(EndpointName="zoo", TargetModel=target, ContentType="image/jpeg",
                                       Accept="application/json", Body=body)
        answers[target] = json.loads(reply["Body"].read())["prediction"]
    for target in ("m0", "m1"):
        _, want = expected(load_predictor(model_dir / target), body, "image/jpeg", "application/json")
        assert close(answers[target], json.loads(want)["prediction"])
    assert answers["m0"] != answers["m1"]  # different weights: TargetModel really chose the model
    counts = _counts(mme.url)
    # m0, m1, m5 loaded (3 loads); m0 was then evicted (limit 2) and loaded again: 4 loads, 2 evictions
    assert counts == {"model_loads_total": 4, "model_cache_hits_total": 0, "model_evictions_total": 2,
                      "loaded_models": 2}
    with pytest.raises(ClientError) as raised:
        client.invoke_endpoint(EndpointName="zoo", TargetModel="../packed", ContentType="image/jpeg", Body=body)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    missing = httpx.post(f"{mme.url}/endpoints/zoo/invocations", content=body, headers=HEADERS)
    assert missing.status_code == 404 and "TargetModel" in missing.text and "m3" in missing.text


def test_concurrent_requests_load_each_model_once_and_evict_beyond_the_limit(mme):
    body = encoded(40, 40, seed=4)

    def call(target: str) -> int:
        return httpx.post(f"{mme.url}/endpoints/zoo/invocations", content=body, timeout=120,
                          headers={**HEADERS, "X-Amzn-SageMaker-Target-Model": target}).status_code

    with ThreadPoolExecutor(12) as pool:
        first = list(pool.map(call, ["m2"] * 12))  # 12 first requests at once: one load
        assert first == [200] * 12 and _counts(mme.url)["model_loads_total"] == 1
        rng = random.Random(0)
        targets = [f"m{rng.randrange(MODELS - 1)}" for _ in range(60)]
        statuses = list(pool.map(call, targets))
    assert statuses == [200] * 60
    counts = _counts(mme.url)
    assert counts["model_loads_total"] + counts["model_cache_hits_total"] == 72
    assert counts["model_loads_total"] >= MODELS - 1  # every model was used at least once
    assert counts["model_evictions_total"] == counts["model_loads_total"] - counts["loaded_models"]
    assert counts["loaded_models"] == MAX_LOADED
    described = httpx.get(f"{mme.url}/api/endpoints/zoo").json()
    assert len(described["LoadedModels"]) == MAX_LOADED and described["MaxLoadedModels"] == MAX_LOADED


def test_an_unloaded_model_is_freed(model_dir):
    import asyncio
    import gc
    import time
    import weakref

    from oculi.serving.config import Batching
    from oculi.serving.metrics import ServingMetrics
    from oculi.serving.multimodel import multi_model_endpoint

    endpoint = multi_model_endpoint(model_dir, "zoo", ServingMetrics(), Batching(), max_loaded=1)

    async def use(*targets: str) -> list:
        return [await endpoint.route(None, t) for t in targets]

    first, _ = asyncio.run(use("m0", "m1"))  # m1 evicts m0
    model = weakref.ref(first.predictor)
    del first
    deadline = time.monotonic() + 10
    while model() is not None and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert model() is None, "the evicted model is still referenced"
    assert list(endpoint.variants) == ["m1"]
    for variant in endpoint.variants.values():
        variant.batcher.stop()
