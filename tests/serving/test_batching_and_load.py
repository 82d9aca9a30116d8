"""Dynamic batching batches concurrent requests (and only when allowed to), overload answers 503 with
Retry-After, and a mixed load of good and bad requests never gets a 5xx other than 503 nor disturbs the good ones.
Also: data capture records in SageMaker's shape."""

from __future__ import annotations

import base64
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.serving.conftest import MAX_BODY, encoded, metric, png_bomb

HEADERS = {"Content-Type": "image/jpeg"}


def _concurrently(url: str, bodies: list[bytes], headers: dict[str, str] = HEADERS) -> list[httpx.Response]:
    """POST every body at the same moment (one thread each, released together)."""
    barrier = threading.Barrier(len(bodies))

    def send(body: bytes) -> httpx.Response:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            return client.post(url, content=body, headers=headers)

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def _batch_metrics(server, endpoint: str) -> tuple[float, float]:
    text = httpx.get(f"{server.url}/metrics").text
    return (metric(text, "oculi_batch_size_count", endpoint=endpoint),
            metric(text, "oculi_batch_size_sum", endpoint=endpoint))


def test_concurrent_requests_are_batched(server):
    forwards_before, images_before = _batch_metrics(server, "cls")
    responses = _concurrently(f"{server.url}/endpoints/cls/invocations", [encoded(seed=n) for n in range(8)])
    assert [r.status_code for r in responses] == [200] * 8
    sizes = [int(r.headers["x-oculi-batch-size"]) for r in responses]
    forwards_after, images_after = _batch_metrics(server, "cls")
    assert images_after - images_before == 8
    assert forwards_after - forwards_before < 8 and max(sizes) >= 2, sizes
    # each request reports the batch it ran in: a batch of k shows up k times
    assert all(sizes.count(k) % k == 0 for k in set(sizes)), sizes
    # and the answers are those of the single images
    for n, response in enumerate(responses):
        alone = httpx.post(f"{server.url}/endpoints/cls/invocations", content=encoded(seed=n), headers=HEADERS)
        assert alone.headers["x-oculi-batch-size"] == "1"
        # a lone request does not wait for batch mates: `cls` allows 250 ms, but nothing else was arriving
        assert float(alone.headers["x-oculi-queue-time-ms"]) < 200
        assert max(abs(a - b) for a, b in zip(alone.json()["prediction"], response.json()["prediction"],
                                               strict=True)) < 1e-5


def test_batching_off_runs_one_image_per_forward(server):
    forwards_before, _ = _batch_metrics(server, "unbatched")
    responses = _concurrently(f"{server.url}/endpoints/unbatched/invocations", [encoded(seed=n) for n in range(6)])
    assert [r.status_code for r in responses] == [200] * 6
    assert {r.headers["x-oculi-batch-size"] for r in responses} == {"1"}
    assert _batch_metrics(server, "unbatched")[0] - forwards_before == 6


def test_overload_answers_503_with_retry_after(server):
    # `tight` holds one request (max_queue_size 1) of a segmentation model on large images
    big = encoded(1200, 900, seed=12)
    responses = _concurrently(f"{server.url}/endpoints/tight/invocations", [big] * 8,
                              {"Content-Type": "image/jpeg", "Accept": "application/json"})
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-amzn-errortype"] == "ServiceUnavailable"
    assert "at capacity" in refused.json()["message"] and "max_queue_size" in refused.json()["message"]
    text = httpx.get(f"{server.url}/metrics").text
    assert metric(text, "oculi_requests_total", endpoint="tight", status="503") >= 1
    assert metric(text, "oculi_queue_depth", endpoint="tight") == 0


def test_mixed_load_never_fails_good_requests(server):
    """Good requests of the three tasks interleaved with every kind of bad one, 16 at a time: each gets exactly
    its expected status, nothing else (no 500, no dropped connection, no hung request)."""
    good = encoded(seed=13)
    cases = [
        ("/endpoints/cls/invocations", good, {"Accept": "application/json;verbose"}, 200),
        ("/endpoints/det/invocations", good, {}, 200),
        ("/endpoints/seg/invocations", good, {"Accept": "image/png"}, 200),
        ("/endpoints/split/invocations", good, {}, 200),
        ("/invocations", b"\x89PNG\r\n\x1a\n garbage", {"Content-Type": "image/png"}, 400),
        ("/invocations", png_bomb(), {"Content-Type": "image/png"}, 400),
        ("/invocations", good, {"Content-Type": "text/csv"}, 415),
        ("/invocations", good, {"Accept": "image/png"}, 406),
        ("/endpoints/missing/invocations", good, {}, 404),
        ("/invocations", bytes(MAX_BODY + 1), {}, 413),
        ("/endpoints/det/predict", json.dumps({"image": base64.b64encode(good).decode()}).encode(),
         {"Content-Type": "application/json"}, 200),
        ("/endpoints/cls/predict", b"{}", {"Content-Type": "application/json"}, 400),
    ]
    plan = [cases[n % len(cases)] for n in range(240)]
    started = time.monotonic()
    # The client's 60 s per request is a hang guard, not a speed assertion: a request that hangs (or a dropped
    # connection) is reported below with the others that went wrong, with when it failed.
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=16)) as client, ThreadPoolExecutor(16) as pool:
        def send(case):
            path, body, headers, _ = case
            try:
                return client.post(f"{server.url}{path}", content=body, headers={**HEADERS, **headers}).status_code
            except httpx.HTTPError as e:
                return f"{type(e).__name__} {e} at +{time.monotonic() - started:.0f} s"

        statuses = list(pool.map(send, plan))
    elapsed = time.monotonic() - started
    mismatches = [(case[0], case[3], got) for case, got in zip(plan, statuses, strict=True) if got != case[3]]
    assert not mismatches, (f"{len(mismatches)} of 240 answers not as expected ({elapsed:.0f} s in all)",
                            mismatches[:10])
    assert httpx.get(f"{server.url}/ping").status_code == 200


def test_capture_records_have_sagemakers_shape(server):
    body = encoded(seed=14)
    answer = httpx.post(f"{server.url}/endpoints/det/invocations", content=body,
                        headers={**HEADERS, "X-Amzn-SageMaker-Inference-Id": "capture-check-1"})
    mask = httpx.post(f"{server.url}/endpoints/seg/invocations", content=body,
                      headers={**HEADERS, "X-Amzn-SageMaker-Inference-Id": "capture-check-2", "Accept": "image/png"})
    deadline = time.monotonic() + 20
    records: dict[str, dict] = {}
    while len(records) < 2 and time.monotonic() < deadline:  # written off the request path, so soon, not at once
        for path in server.capture.rglob("*.jsonl"):
            for line in path.read_text().splitlines():
                record = json.loads(line)
                if record["eventMetadata"].get("inferenceId", "").startswith("capture-check-"):
                    records[record["eventMetadata"]["inferenceId"]] = (record, path)
        time.sleep(0.1)
    record, path = records["capture-check-1"]
    assert path.relative_to(server.capture).parts[:2] == ("det", "AllTraffic")
    assert len(path.relative_to(server.capture).parts) == 7  # endpoint/variant/yyyy/mm/dd/hh/file.jsonl
    assert set(record) == {"captureData", "eventMetadata", "eventVersion"} and record["eventVersion"] == "0"
    request, response = record["captureData"]["endpointInput"], record["captureData"]["endpointOutput"]
    assert request == {"observedContentType": "image/jpeg", "mode": "INPUT",
                       "data": base64.b64encode(body).decode(), "encoding": "BASE64"}
    assert response["mode"] == "OUTPUT" and response["encoding"] == "JSON"
    assert response["observedContentType"] == "application/json" and json.loads(response["data"]) == answer.json()
    assert set(record["eventMetadata"]) == {"eventId", "inferenceId", "inferenceTime"}
    assert record["eventMetadata"]["inferenceTime"].endswith("Z")
    png = records["capture-check-2"][0]["captureData"]["endpointOutput"]
    assert png["encoding"] == "BASE64" and base64.b64decode(png["data"]) == mask.content
