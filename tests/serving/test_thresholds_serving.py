"""Served answers apply the thresholds and temperature stored in model.json, say which were applied, and a
request may override them (``?threshold=`` or the ``X-Oculi-Threshold`` header); batch transform applies them
too."""

from __future__ import annotations

import json
import shutil

import httpx
import pytest
import torch

from oculi.artifacts import update_meta
from oculi.inference.calibration import Calibration, scale_distribution
from oculi.tasks import load_predictor
from tests.serving.conftest import encoded, start_server

IMAGE = encoded(160, 120, seed=4)


@pytest.fixture(scope="module")
def calibrated(bundles, tmp_path_factory):
    """Copies of the tiny detection and classification bundles with a calibration in model.json: detection
    thresholds between the middle raw scores of the test image's boxes, classification a temperature of 2 and an
    unsure threshold above any top probability it will reach."""
    root = tmp_path_factory.mktemp("calibrated")
    det, cls = root / "det", root / "cls"
    shutil.copytree(bundles["detection"], det)
    shutil.copytree(bundles["classification"], cls)
    raw = load_predictor(det).predict(IMAGE, calibrate=False)
    assert len(raw.scores) >= 4, "the tiny detector should give a handful of boxes to threshold"
    ranked = sorted(raw.scores, reverse=True)
    half = len(ranked) // 2
    median = round((ranked[half - 1] + ranked[half]) / 2, 6)  # between two scores: no rounding ties
    update_meta(det, {"calibration": Calibration("max_f1", 1.0, {"box": median, "disc": median},
                                                 data={"fingerprint": "0" * 16}).to_meta()})
    update_meta(cls, {"calibration": Calibration("precision=0.95", 2.0, None, 0.999).to_meta()})
    return {"det": det, "cls": cls, "seg": bundles["segmentation"], "raw": raw, "median": median}


@pytest.fixture(scope="module")
def served(calibrated):
    endpoints = [{"name": "det", "variants": [{"name": "AllTraffic", "model": "det"}]},
                 {"name": "cls", "variants": [{"name": "AllTraffic", "model": "cls"}]},
                 {"name": "seg", "variants": [{"name": "AllTraffic", "model": "seg"}]}]
    background = start_server(calibrated, endpoints)
    yield background.url
    background.stop()


def _predict(url: str, name: str, params: dict | None = None, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/endpoints/{name}/predict", content=IMAGE, params=params or {},
                      headers={"Content-Type": "image/jpeg", **headers}, timeout=60)


def test_detection_answers_apply_the_stored_thresholds_and_say_so(served, calibrated):
    raw, median = calibrated["raw"], calibrated["median"]
    answer = _predict(served, "det")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["calibration"]["source"] == "model" and body["calibration"]["rule"] == "max_f1"
    assert body["calibration"]["thresholds"] == {"box": median, "disc": median}
    kept = [d["score"] for d in body["detections"]]
    assert kept and min(kept) >= median and len(kept) == sum(s >= median for s in raw.scores) < len(raw.scores)
    assert json.loads(answer.headers["X-Oculi-Calibration"])["source"] == "model"

    sagemaker = httpx.post(f"{served}/endpoints/det/invocations", content=IMAGE,
                           headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert sagemaker.status_code == 200 and len(sagemaker.json()["prediction"]) == len(kept)
    assert json.loads(sagemaker.headers["X-Oculi-Calibration"])["thresholds"]["box"] == median


def test_a_request_overrides_the_thresholds_by_query_or_header(served, calibrated):
    raw = calibrated["raw"]
    everything = _predict(served, "det", {"threshold": "0"}).json()
    assert everything["calibration"]["source"] == "request"
    assert len(everything["detections"]) == len(raw.scores)
    off = _predict(served, "det", **{"X-Oculi-Threshold": "none"}).json()
    assert off["calibration"]["source"] == "none" and len(off["detections"]) == len(raw.scores)
    high = max(raw.scores)
    only_best = httpx.post(f"{served}/endpoints/det/invocations", content=IMAGE, params={"threshold": f"{high}"},
                           headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert len(only_best.json()["prediction"]) == sum(s >= high for s in raw.scores) >= 1
    per_class = _predict(served, "det", {"threshold": "box=0,disc=1"}).json()
    assert {d["label"] for d in per_class["detections"]} <= {"box"}
    assert per_class["calibration"]["thresholds"] == {"box": 0.0, "disc": 1.0}
    wrong = _predict(served, "det", {"threshold": "wasp=0.2"})
    assert wrong.status_code == 400 and "not a class of the model" in wrong.json()["message"]


def test_a_threshold_for_a_segmentation_model_is_refused(served):
    answer = httpx.post(f"{served}/endpoints/seg/predict", content=IMAGE, params={"threshold": "0.5"},
                        headers={"Content-Type": "image/jpeg"}, timeout=60)
    assert answer.status_code == 400 and "takes no score thresholds" in answer.json()["message"]
    plain = httpx.post(f"{served}/endpoints/seg/predict", content=IMAGE, headers={"Content-Type": "image/jpeg"},
                       timeout=60)
    assert plain.status_code == 200 and "calibration" not in plain.json()
    assert "X-Oculi-Calibration" not in plain.headers


def test_classification_answers_are_temperature_scaled_and_marked_unsure(served, calibrated):
    raw = load_predictor(calibrated["cls"]).predict(IMAGE, calibrate=False)
    body = _predict(served, "cls").json()
    want = scale_distribution(torch.tensor(raw.probabilities, dtype=torch.float64), 2.0)
    got = {p["label"]: p["score"] for p in body["predictions"]}
    assert [got[name] for name in raw.labels] == pytest.approx(want.tolist(), abs=1e-5)
    assert body["unsure"] is True and body["calibration"]["unsure"] == 0.999
    sure = _predict(served, "cls", {"threshold": "0.1"}).json()
    assert sure["unsure"] is False and sure["calibration"]["source"] == "request"
    verbose = httpx.post(f"{served}/endpoints/cls/invocations", content=IMAGE, timeout=60,
                         headers={"Content-Type": "image/jpeg", "Accept": "application/json;verbose"}).json()
    assert "unsure" in verbose and verbose["calibration"]["temperature"] == 2.0


def test_batch_transform_applies_the_stored_thresholds(calibrated, tmp_path):
    from oculi.batch import transform

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(IMAGE)
    said: list[str] = []
    transform(calibrated["det"], folder, tmp_path / "out", progress=False, echo=said.append)
    assert any("applying the calibration in model.json (max_f1)" in line for line in said)
    rows = json.loads((tmp_path / "out" / "a.jpg.out").read_text())["prediction"]
    median = calibrated["median"]
    assert rows and len(rows) == sum(s >= median for s in calibrated["raw"].scores)
    assert min(row[1] for row in rows) >= median
