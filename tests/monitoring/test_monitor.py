"""``oculi monitor``: a baseline from generated training images, then checks of traffic captured by the real
capture writer — an unshifted sample raises nothing, a darkened, blurred or new-kind sample raises the matching
violation; bad capture lines are reported, not fatal; the drift tests keep their false-alarm rate."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from typer.testing import CliRunner

from oculi.cli import app
from oculi.monitoring import baseline, check
from oculi.monitoring.drift import chi2_test, holm, ks_test, mmd_test
from oculi.serving.capture import DataCapture
from tests.helpers import draw, make_class_folders


def capture_images(folder: Path, images: list[Image.Image], endpoint: str = "shapes") -> Path:
    """Send ``images`` through the real capture writer (100 % sampled) as JPEG requests."""
    capture = DataCapture(folder, percent=100, seed=0)
    capture.start()
    for n, img in enumerate(images):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=95)
        capture.record(endpoint, "AllTraffic", "image/jpeg", buf.getvalue(), "application/json",
                       json.dumps({"prediction": [1.0]}).encode(), inference_id=f"req-{n}")
    capture.stop()
    return folder


def shapes(count: int, seed: int, classes: tuple[str, ...] = ("circle", "square", "stripes")) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [draw(classes[n % len(classes)], 32, rng) for n in range(count)]


@pytest.fixture(scope="module")
def jpeg_train(tmp_path_factory) -> Path:
    """The classifier's kind of training images, stored as JPEG like the captured requests."""
    root = tmp_path_factory.mktemp("jpeg-train")
    png = make_class_folders(root / "png", per_class=30, seed=11)
    out = root / "train"
    for f in png.rglob("*.png"):
        (out / f.parent.name).mkdir(parents=True, exist_ok=True)
        Image.open(f).save(out / f.parent.name / f"{f.stem}.jpg", "JPEG", quality=95)
    return out


@pytest.fixture(scope="module")
def base(classifier, jpeg_train, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baseline")
    baseline(classifier, jpeg_train, out)
    return out


def test_baseline_writes_sagemaker_shaped_statistics_and_constraints(base):
    stats = json.loads((base / "statistics.json").read_text())
    constraints = json.loads((base / "constraints.json").read_text())
    names = {f["name"]: f for f in stats["features"]}
    assert stats["dataset"]["item_count"] == 90
    for name in ("brightness", "contrast", "saturation", "sharpness", "width", "confidence"):
        assert names[name]["numerical_statistics"]["common"]["num_present"] == 90
    assert {b["value"] for b in names["predicted_class"]["string_statistics"]["distribution"]["categorical"]
            ["buckets"]} <= {"circle", "square", "stripes"}
    assert names["format"]["string_statistics"]["distribution"]["categorical"]["buckets"][0]["value"] == "JPEG"
    by_name = {c["name"]: c for c in constraints["features"]}
    assert by_name["brightness"]["num_constraints"]["is_non_negative"] is True
    assert by_name["format"]["string_constraints"]["domains"] == ["JPEG"]
    assert constraints["monitoring_config"]["drift"]["alpha"] == 0.01
    assert (base / "embeddings.safetensors").is_file()


def test_unshifted_traffic_raises_nothing_and_a_darkened_window_flags_brightness(base, tmp_path):
    same = check(capture_images(tmp_path / "same", shapes(60, seed=21)), base, tmp_path / "out-same")
    assert same["violations"] == 0, [t for t in same["tests"] if t["flagged"]]
    assert same["images"] == 60 and {t["feature"] for t in same["tests"]} >= {"brightness", "embedding"}
    assert json.loads((tmp_path / "out-same" / "constraint_violations.json").read_text()) == {"violations": []}

    dark = [Image.eval(img, lambda v: int(v * 0.35)) for img in shapes(60, seed=22)]
    report = check(capture_images(tmp_path / "dark", dark), base, tmp_path / "out-dark")
    violations = json.loads((tmp_path / "out-dark" / "constraint_violations.json").read_text())["violations"]
    flagged = {v["feature_name"] for v in violations if v["constraint_check_type"] == "baseline_drift_check"}
    assert "brightness" in flagged, violations
    brightness = next(t for t in report["tests"] if t["feature"] == "brightness")
    assert brightness["p_adjusted"] < 0.01 and brightness["effect"] > 0.5
    assert len(list((tmp_path / "out-dark" / "images").glob("*.jpg"))) == 60


def test_blur_flags_sharpness_and_a_new_kind_of_image_flags_the_class_mix_or_embeddings(base, tmp_path):
    blurred = [img.resize((128, 128)).filter(ImageFilter.GaussianBlur(6)).resize((32, 32))
               for img in shapes(60, seed=23)]
    report = check(capture_images(tmp_path / "blur", blurred), base, tmp_path / "out-blur")
    assert "sharpness" in {t["feature"] for t in report["tests"] if t["flagged"]}

    rng = np.random.default_rng(5)  # another domain: smooth gray gradients, no shape of the three classes
    other = [Image.fromarray(np.tile(np.linspace(0, rng.integers(100, 255), 32, dtype=np.uint8), (32, 1))[..., None]
                             .repeat(3, 2)) for _ in range(60)]
    report = check(capture_images(tmp_path / "other", other), base, tmp_path / "out-other")
    flagged = {t["feature"] for t in report["tests"] if t["flagged"]}
    assert flagged & {"embedding", "predicted_class", "confidence"}, report["tests"]
    assert "saturation" in flagged or "colourfulness" in flagged


def test_bad_capture_lines_are_reported_and_the_window_is_honoured(base, tmp_path):
    folder = capture_images(tmp_path / "cap", shapes(30, seed=24))
    files = sorted(folder.rglob("*.jsonl"))
    with files[0].open("a") as f:
        f.write("{not json\n")
        f.write(json.dumps({"captureData": {"endpointInput": {"observedContentType": "image/jpeg",
                                                              "data": "@@@", "encoding": "BASE64"}},
                            "eventMetadata": {"eventId": "x", "inferenceTime": "2026-01-01T00:00:00Z"}}) + "\n")
    result = CliRunner().invoke(app, ["monitor", "run", "--capture", str(folder), "--baseline", str(base),
                                      "--output", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "bad capture line" in result.output and f"{files[0]}:31" in result.output
    report = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert [b["line"] for b in report["bad_lines"]] == [31, 32] and report["images"] == 30
    # a window that ends before the traffic has no images and runs no test
    report = check(folder, base, tmp_path / "old", until="2020-01-01")
    assert report["images"] == 0 and report["tests"] == [] and "fewer than min_images" in report["notes"][0]
    result = CliRunner().invoke(app, ["monitor", "run", "--capture", str(tmp_path / "nowhere"), "--baseline",
                                      str(base)])
    assert result.exit_code != 0 and "capture folder not found" in str(result.exception)


def test_a_drifted_window_exits_3_from_the_cli(base, tmp_path):
    dark = [Image.eval(img, lambda v: int(v * 0.3)) for img in shapes(40, seed=25)]
    result = CliRunner().invoke(app, ["monitor", "run", "--capture", str(capture_images(tmp_path / "c", dark)),
                                      "--baseline", str(base), "--output", str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 3, result.output
    assert "brightness" in result.output and "violation" in result.output


def test_drift_tests_hold_their_false_alarm_rate_and_find_shifts():
    rng = np.random.default_rng(0)
    draws = 200
    ks_alarms = sum(ks_test(rng.normal(size=300), rng.normal(size=50)).p_value < 0.05 for _ in range(draws))
    assert ks_alarms / draws < 0.1
    mmd_alarms = sum(mmd_test(rng.normal(size=(120, 8)), rng.normal(size=(40, 8)), permutations=100,
                              seed=i).p_value < 0.05 for i in range(60))
    assert mmd_alarms / 60 < 0.15
    assert mmd_test(rng.normal(size=(120, 8)), rng.normal(0.5, 1, size=(40, 8))).p_value < 0.01
    chi = chi2_test({"a": 500, "b": 500}, {"a": 10, "b": 40})
    assert chi.p_value < 0.01 and 0 < chi.effect < 1
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
