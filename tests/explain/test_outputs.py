"""Explanations everywhere a prediction is made: ``oculi explain``, ``oculi predict --explain``, ``oculi transform
--explain``, ``POST /endpoints/NAME/explain`` and ``Accept: application/json;explain=1`` on a real server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from oculi.cli import app
from oculi.errors import ConfigError
from tests.explain.conftest import Trained
from tests.serving.conftest import start_server

runner = CliRunner()


@pytest.fixture(scope="module")
def server(patch_classifier: Trained, scene_segmenter: Trained):
    bundles = {"patches": patch_classifier.model, "scenes": scene_segmenter.model}
    endpoints = [{"name": "patches", "variants": [{"name": "AllTraffic", "model": "patches"}]},
                 {"name": "scenes", "variants": [{"name": "AllTraffic", "model": "scenes"}]}]
    background = start_server(bundles, endpoints)
    yield background.url
    background.stop()


def _overlay(entry: dict) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(entry["overlay_png_base64"])))


def test_explain_endpoint_answers_prediction_overlay_and_score(server: str, patch_classifier: Trained) -> None:
    path = next(p for p in patch_classifier.boxes if "/green/" in p)
    response = httpx.post(f"{server}/endpoints/patches/explain?method=gradcam%2B%2B", timeout=120,
                          files={"image": ("patch.png", Path(path).read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predicted_label"] == "green"
    explained = body["explanation"]
    assert explained["method"] == "gradcam++" and explained["precision"] == "float32"
    assert explained["serving_precision"].startswith("torch ")
    entry = explained["explanations"][0]
    assert entry["target"]["class"] == "green" and isinstance(entry["faithfulness"]["score"], float)
    assert _overlay(entry).size == (48, 48)

    refused = httpx.post(f"{server}/endpoints/patches/explain?method=shap", content=Path(path).read_bytes(),
                         headers={"Content-Type": "image/png"}, timeout=60)
    assert refused.status_code == 400 and "gradcam, gradcam++" in refused.json()["message"]


def test_invocations_with_explain_accept(server: str, scene_segmenter: Trained) -> None:
    image = sorted(Path(scene_segmenter.data["validation"]).glob("*.png"))[0]
    response = httpx.post(f"{server}/endpoints/scenes/invocations", content=image.read_bytes(), timeout=120,
                          headers={"Content-Type": "image/png", "Accept": "application/json;explain=1"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {"fractions", "mask_png_base64", "explanation"}  # the JSON answer, plus the explanation
    classes = [entry["target"]["class"] for entry in body["explanation"]["explanations"]]
    assert classes and set(classes) <= {name for name, share in body["fractions"].items() if share > 0}
    assert _overlay(body["explanation"]["explanations"][0]).size == (64, 48)
    png = httpx.post(f"{server}/invocations", content=image.read_bytes(), timeout=60,
                     headers={"Content-Type": "image/png", "Accept": "image/png;explain=1"})
    assert png.status_code == 400 and "application/json;explain=1" in png.json()["message"]


def test_transform_writes_explanations_beside_the_results(patch_classifier: Trained, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for n, path in enumerate(list(patch_classifier.boxes)[:3]):
        (inputs / f"{n}.png").write_bytes(Path(path).read_bytes())
    result = runner.invoke(app, ["transform", str(patch_classifier.model), "-i", str(inputs), "-o",
                                 str(tmp_path / "out"), "--explain", "--explain-method", "layercam", "--no-progress"])
    assert result.exit_code == 0, result.output
    for n in range(3):
        out = json.loads((tmp_path / "out" / f"{n}.png.out").read_text())
        explained = json.loads((tmp_path / "out" / f"{n}.png.explain.json").read_text())
        assert explained["method"] == "layercam"
        entry = explained["explanations"][0]
        assert entry["target"]["class_id"] == int(np.argmax(out["prediction"]))
        assert (tmp_path / "out" / entry["overlay"]).is_file() and (tmp_path / "out" / entry["map"]).is_file()


def test_explain_and_predict_commands(scene_segmenter: Trained, tmp_path: Path) -> None:
    image = sorted(Path(scene_segmenter.data["validation"]).glob("*.png"))[0]
    result = runner.invoke(app, ["explain", str(scene_segmenter.model), str(image), "-o", str(tmp_path / "x"),
                                 "--method", "eigencam", "--feature-maps"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "x" / f"{image.stem}.explain.json").read_text())
    assert written["method"] == "eigencam" and written["task"] == "segmentation"
    assert (tmp_path / "x" / f"{image.stem}-feature-maps.png").is_file()
    assert (tmp_path / "x" / f"{image.stem}-filters.png").is_file()

    result = runner.invoke(app, ["predict", str(scene_segmenter.model), str(image), "--explain", "--explain-output",
                                 str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p" / f"{image.stem}.explain.json").read_text())["precision"] == "float32"

    for args, message in ((["--method", "shap"], "expected one of auto, gradcam"), (["--target", "cat"], "not a class"),
                          (["--layer", "backbone.nope"], "is not a layer")):
        result = runner.invoke(app, ["explain", str(scene_segmenter.model), str(image), "-o", str(tmp_path), *args])
        assert isinstance(result.exception, ConfigError) and message in str(result.exception), result.output
