"""Production variants: the traffic split follows the weights, TargetVariant overrides it, weights change at run
time without a request failing, per-variant statistics, and the control plane's token rule."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.serving.conftest import encoded, start_server

BODY = encoded(48, 48, seed=11)
HEADERS = {"Content-Type": "image/jpeg"}


def _variant_of(client: httpx.Client, url: str, **headers: str) -> str:
    response = client.post(f"{url}/endpoints/split/invocations", content=BODY, headers={**HEADERS, **headers})
    assert response.status_code == 200, response.text
    return response.headers["x-amzn-invoked-production-variant"]


def _set_weights(url: str, **weights: float) -> httpx.Response:
    return httpx.post(f"{url}/api/endpoints/split/weights", json={"DesiredWeightsAndCapacities": [
        {"VariantName": name, "DesiredWeight": weight} for name, weight in weights.items()]})


def test_split_follows_the_weights_and_target_variant_overrides_it(server):
    requests = 240
    with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
        before = client.get(f"{server.url}/api/endpoints/split").json()
        served = list(pool.map(lambda _: _variant_of(client, server.url), range(requests)))
        targeted = list(pool.map(lambda _: _variant_of(client, server.url, **{
            "X-Amzn-SageMaker-Target-Variant": "A"}), range(20)))
        after = client.get(f"{server.url}/api/endpoints/split").json()
    # weights 1:3 → B is Binomial(240, 0.75): mean 180, sd 6.7; ±5 sd fails by chance once in ~3 million runs
    # and still tells 3:1 apart from 1:1 (120) or from ignoring the split (0 or 240).
    b = served.count("B")
    assert served.count("A") + b == requests
    assert abs(b - 180) <= 5 * math.sqrt(requests * 0.75 * 0.25), served
    assert targeted == ["A"] * 20
    counts = {v["VariantName"]: v["Invocations"] for v in after["ProductionVariants"]}
    counts_before = {v["VariantName"]: v["Invocations"] for v in before["ProductionVariants"]}
    assert counts["A"] - counts_before["A"] == requests - b + 20 and counts["B"] - counts_before["B"] == b
    for variant in after["ProductionVariants"]:
        assert variant["LatencyMs"]["p50"] > 0 and variant["LatencyMs"]["p99"] >= variant["LatencyMs"]["p50"]
        assert variant["Batching"]["max_batch_size"] == 8
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'oculi_requests_total{endpoint="split",status="200",variant="B"}' in metrics


def test_weights_change_at_run_time_without_dropping_requests(server):
    statuses: list[int] = []
    variants: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                response = client.post(f"{server.url}/endpoints/split/invocations", content=BODY, headers=HEADERS)
                statuses.append(response.status_code)
                variants.append(response.headers.get("x-amzn-invoked-production-variant", ""))

    workers = [threading.Thread(target=traffic) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        while len(statuses) < 20:
            stop.wait(0.01)
        changed = _set_weights(server.url, B=0)  # all traffic to A from now on
        assert changed.status_code == 200, changed.text
        assert {v["VariantName"]: v["CurrentWeight"] for v in changed.json()["ProductionVariants"]} == \
            {"A": 1.0, "B": 0.0}
        mark = len(variants)
        while len(variants) < mark + 40:
            stop.wait(0.01)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
        restored = _set_weights(server.url, A=1, B=3)
    assert restored.status_code == 200
    assert set(statuses) == {200}, "a weight change must not fail requests"
    # requests already routed when the weights changed may still finish on B; after those, only A
    assert "B" not in variants[mark + 8:]


def test_invalid_weight_updates_name_the_problem(server):
    unknown = _set_weights(server.url, C=1)
    assert unknown.status_code == 400 and "no variant 'C'" in unknown.json()["message"]
    zero = _set_weights(server.url, A=0, B=0)
    assert zero.status_code == 400 and "weight > 0" in zero.json()["message"]
    negative = _set_weights(server.url, A=-1)
    assert negative.status_code == 400 and "DesiredWeight" in negative.json()["message"]
    missing = httpx.post(f"{server.url}/api/endpoints/nope/weights",
                         json={"DesiredWeightsAndCapacities": [{"VariantName": "A", "DesiredWeight": 1}]})
    assert missing.status_code == 404 and "split" in missing.json()["message"]
    weights = {v["VariantName"]: v["CurrentWeight"]
               for v in httpx.get(f"{server.url}/api/endpoints/split").json()["ProductionVariants"]}
    assert weights == {"A": 1.0, "B": 3.0}, "a refused update changes nothing"


@pytest.fixture(scope="module")
def guarded(bundles):
    """A second server whose control plane needs a token."""
    background = start_server(bundles, [{"name": "cls", "variants": [{"name": "AllTraffic",
                                                                     "model": "classification"}]}],
                              token="s3cret")
    yield background.url
    background.stop()


def test_control_plane_needs_the_token_when_one_is_set(guarded):
    body = {"DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", "DesiredWeight": 2}]}
    refused = httpx.post(f"{guarded}/api/endpoints/cls/weights", json=body)
    assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["message"]
    wrong = httpx.get(f"{guarded}/api/endpoints", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    accepted = httpx.post(f"{guarded}/api/endpoints/cls/weights", json=body,
                          headers={"Authorization": "Bearer s3cret"})
    assert accepted.status_code == 200 and accepted.json()["ProductionVariants"][0]["CurrentWeight"] == 2.0
    # the data plane stays open (boto3 signs with SigV4, not our token)
    assert httpx.post(f"{guarded}/invocations", content=BODY, headers=HEADERS).status_code == 200
