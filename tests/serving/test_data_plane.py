"""The data plane on a real server: every content type and Accept form per task (answers compared with the
in-process predictor), the friendly /predict form, boto3's sagemaker-runtime client, and each bad input's status
and message."""

from __future__ import annotations

import base64
import io
import json

import boto3
import httpx
import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image

from oculi.inference.codecs import decode_request
from oculi.tasks import get_task, load_predictor
from tests.serving.conftest import MAX_BODY, encoded, png_bomb

ENDPOINT_MODEL = {"cls": "classification", "det": "detection", "seg": "segmentation"}
ACCEPTS = [("cls", None), ("cls", "application/json"), ("cls", "application/json;verbose"),
           ("det", "application/json"), ("det", "application/json;annotation=1"),
           ("seg", "image/png"), ("seg", "application/json")]
FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "application/x-image": "JPEG"}


@pytest.fixture(scope="module")
def predictors(bundles):
    """In-process predictors of the same bundles, for the expected answers."""
    return {name: load_predictor(bundles[key]) for name, key in ENDPOINT_MODEL.items()}


def expected(predictor, body: bytes, content_type: str, accept: str | None) -> tuple[str, bytes]:
    codec = get_task(predictor.bundle.meta["task"]).codec
    media = codec.choose(accept)
    image = decode_request(body, content_type, getattr(predictor, "min_side", None))
    return media, codec.encode(predictor.predict([image])[0], media)


def close(got, want, tolerance: float = 1e-5) -> bool:
    """JSON values equal, numbers within ``tolerance`` (batched and single forwards may differ in the last bits)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(close, got, want))
    if isinstance(want, float | int) and not isinstance(want, bool):
        return abs(got - want) <= tolerance
    return got == want


def assert_same_answer(media: str, got: bytes, want: bytes) -> None:
    if media == "image/png":
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(got))), np.asarray(Image.open(io.BytesIO(want))))
        return
    got_json, want_json = json.loads(got), json.loads(want)
    if "mask_png_base64" in want_json:
        assert_same_answer("image/png", base64.b64decode(got_json.pop("mask_png_base64")),
                           base64.b64decode(want_json.pop("mask_png_base64")))
    assert close(got_json, want_json), (got_json, want_json)


@pytest.mark.parametrize("content_type", list(FORMATS))
@pytest.mark.parametrize(("endpoint", "accept"), ACCEPTS)
def test_every_content_type_and_accept(server, predictors, endpoint, accept, content_type):
    body = encoded(96, 72, FORMATS[content_type], seed=3)
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
    response = httpx.post(f"{server.url}/endpoints/{endpoint}/invocations", content=body, headers=headers)
    assert response.status_code == 200, response.text
    media, want = expected(predictors[endpoint], body, content_type, accept)
    assert response.headers["content-type"].startswith(media)
    assert response.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert int(response.headers["x-oculi-batch-size"]) >= 1
    assert_same_answer(media, response.content, want)


def test_shapes_of_the_sagemaker_answers(server):
    body = encoded(120, 90, seed=4)
    cls = httpx.post(f"{server.url}/invocations", content=body, headers={"Content-Type": "image/jpeg"}).json()
    assert list(cls) == ["prediction"] and len(cls["prediction"]) == 3 and sum(cls["prediction"]) == \
        pytest.approx(1, abs=1e-4)
    verbose = httpx.post(f"{server.url}/endpoints/cls/invocations", content=body,
                         headers={"Content-Type": "image/jpeg", "Accept": "application/json; verbose"}).json()
    assert verbose["labels"] == ["circle", "square", "stripes"] and verbose["predicted_label"] in verbose["labels"]
    det = httpx.post(f"{server.url}/endpoints/det/invocations", content=body,
                     headers={"Content-Type": "image/jpeg"}).json()
    assert det["prediction"], "an untrained SSD scores many boxes above its threshold"
    for row in det["prediction"]:
        assert len(row) == 6 and row[0] in (0.0, 1.0) and 0 <= row[1] <= 1
        assert all(0 <= v <= 1 for v in row[2:]) and row[2] <= row[4] and row[3] <= row[5]
    pixels = httpx.post(f"{server.url}/endpoints/det/invocations", content=body,
                        headers={"Content-Type": "image/jpeg", "Accept": "application/json;annotation=1"}).json()
    assert pixels["image_size"] == [{"width": 120, "height": 90, "depth": 3}]
    assert {"class_id", "score", "left", "top", "width", "height"} == set(pixels["annotations"][0])
    mask = httpx.post(f"{server.url}/endpoints/seg/invocations", content=body,
                      headers={"Content-Type": "image/jpeg", "Accept": "image/png"})
    assert Image.open(io.BytesIO(mask.content)).size == (120, 90)


def test_friendly_predict_forms_and_schema(server):
    body = encoded(64, 64, "PNG", seed=5)
    url = f"{server.url}/endpoints/{{}}/predict"
    uploaded = httpx.post(url.format("cls"), files={"image": ("x.png", body, "image/png")}, params={"top_k": 2})
    assert uploaded.status_code == 200, uploaded.text
    answer = uploaded.json()
    assert answer["task"] == "classification" and answer["endpoint"] == "cls" and answer["variant"] == "AllTraffic"
    assert len(answer["predictions"]) == 2 and answer["predictions"][0]["label"] == answer["predicted_label"]
    assert answer["predictions"][0]["score"] >= answer["predictions"][1]["score"]
    as_json = httpx.post(url.format("cls"), json={"image": base64.b64encode(body).decode()}).json()
    assert [p["label"] for p in as_json["predictions"]][:2] == [p["label"] for p in answer["predictions"]]
    data_uri = httpx.post(url.format("det"), json={"image": "data:image/png;base64," + base64.b64encode(body).decode()},
                          params={"min_score": 0.5}).json()
    assert data_uri["task"] == "detection" and (data_uri["width"], data_uri["height"]) == (64, 64)
    for found in data_uri["detections"]:
        assert found["label"] in ("box", "disc") and found["score"] >= 0.5
        assert 0 <= found["box"]["xmin"] <= found["box"]["xmax"] <= 64
    raw = httpx.post(url.format("seg"), content=body, headers={"Content-Type": "image/png"}).json()
    assert raw["classes"] == ["background", "box", "disc"] and sum(raw["fractions"].values()) == pytest.approx(1)
    assert Image.open(io.BytesIO(base64.b64decode(raw["mask_png_base64"]))).size == (64, 64)
    schema = httpx.get(f"{server.url}/openapi.json").json()
    predict = schema["paths"]["/endpoints/{name}/predict"]["post"]
    assert {"multipart/form-data", "application/json", "image/jpeg"} <= set(predict["requestBody"]["content"])
    assert "image/jpeg" in schema["paths"]["/endpoints/{name}/invocations"]["post"]["requestBody"]["content"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    assert httpx.get(f"{server.url}/ping").status_code == 200


@pytest.fixture(scope="module")
def runtime(server):
    """boto3's real sagemaker-runtime client pointed at the test server."""
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")


def test_boto3_invoke_endpoint_returns_the_prediction_unchanged(server, runtime, predictors):
    body = encoded(100, 80, seed=6)
    for endpoint, accept in ACCEPTS:
        kwargs = {"Accept": accept} if accept else {}
        answer = runtime.invoke_endpoint(EndpointName=endpoint, ContentType="image/jpeg", Body=body, **kwargs)
        direct = httpx.post(f"{server.url}/endpoints/{endpoint}/invocations", content=body,
                            headers={"Content-Type": "image/jpeg", **({"Accept": accept} if accept else {})})
        media, want = expected(predictors[endpoint], body, "image/jpeg", accept)
        got = answer["Body"].read()
        assert answer["ContentType"] == media and answer["InvokedProductionVariant"] == "AllTraffic"
        assert got == direct.content
        assert_same_answer(media, got, want)


def test_boto3_target_variant_and_errors(server, runtime):
    body = encoded(seed=7)
    for variant in ("A", "B", "A"):
        answer = runtime.invoke_endpoint(EndpointName="split", ContentType="image/jpeg", Accept="application/json",
                                         Body=body, TargetVariant=variant, InferenceId="req-1",
                                         CustomAttributes="trace=1")
        assert answer["InvokedProductionVariant"] == variant
        assert len(json.loads(answer["Body"].read())["prediction"]) == 3
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="split", ContentType="image/jpeg", Body=body, TargetVariant="C")
    error = raised.value.response
    assert error["Error"]["Code"] == "ValidationError" and "A, B" in error["Error"]["Message"]
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="nope", ContentType="image/jpeg", Body=body)
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "cls, det, seg, split" in raised.value.response["Error"]["Message"]


def _post(server, path: str, body, content_type: str = "image/jpeg", **headers: str) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=body, headers={"Content-Type": content_type, **headers},
                      timeout=30)


def _error(response: httpx.Response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"}
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return body


def test_bad_requests_get_a_status_and_a_message_that_says_what_was_wrong(server):
    good = encoded(seed=8)
    _error(_post(server, "/invocations", b"definitely not a jpeg"), 400, "not an image")
    _error(_post(server, "/invocations", b""), 400, "empty")
    truncated = encoded(200, 200, "PNG", seed=9)
    _error(_post(server, "/invocations", truncated[: len(truncated) // 2], "image/png"), 400, "image")
    _error(_post(server, "/invocations", png_bomb(), "image/png"), 400, "too large")
    _error(_post(server, "/invocations", good, "text/plain"), 415, "image/jpeg, image/png, application/x-image")
    _error(_post(server, "/invocations", good, Accept="image/png"), 406, "application/json;verbose")
    _error(_post(server, "/endpoints/seg/invocations", good, Accept="text/csv"), 406, "image/png")
    _error(_post(server, "/endpoints/nope/invocations", good), 404, "cls, det, seg, split, unbatched, tight")
    _error(_post(server, "/endpoints/split/invocations", good, **{"X-Amzn-SageMaker-Target-Variant": "C"}), 400,
           "A, B")
    too_big = _post(server, "/invocations", b"\xff\xd8" + bytes(MAX_BODY + 10))
    _error(too_big, 413, "limit", "--max-body-mb")
    assert too_big.headers["x-amzn-errortype"] == "ValidationError"

    def chunks():  # no Content-Length: the server counts the bytes as they stream in
        for _ in range(MAX_BODY // 65536 + 4):
            yield bytes(65536)

    _error(_post(server, "/invocations", chunks()), 413, "while streaming")
    friendly = "/endpoints/cls/predict"
    _error(_post(server, friendly, json.dumps({"picture": "x"}), "application/json"), 400, "image")
    _error(_post(server, friendly, json.dumps({"image": "not base64!"}), "application/json"), 400, "base64")
    _error(httpx.post(f"{server.url}{friendly}", files={"photo": ("x.jpg", good, "image/jpeg")}), 400,
           "no file field `image`", "photo")
    _error(_post(server, friendly, good, "text/plain"), 415, "multipart/form-data")
    _error(httpx.post(f"{server.url}{friendly}", params={"top_k": 0}, content=good,
                      headers={"Content-Type": "image/jpeg"}), 400, "top_k")
    # after all that, the server still answers
    assert _post(server, "/invocations", good).status_code == 200
