"""`object-detection` through the engine on generated shapes: training, bundle round trip, mAP, errors."""

from __future__ import annotations

import json

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from oculi.artifacts import load_bundle
from oculi.data.image import decode_image
from oculi.engine.training import train
from oculi.errors import ConfigError

TINY_SSD = {"image_shape": "128", "mini_batch_size": "8", "num_workers": "0", "epochs": "1"}


def _shapes_coco(root, count: int, seed: int):
    """``count`` 128×96 PNGs with one or two filled rectangles (class box) or discs (class disc); a COCO file."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    images, annotations = [], []
    for i in range(count):
        canvas = rng.integers(0, 80, (96, 128, 3)).astype(np.uint8)
        for _ in range(int(rng.integers(1, 3))):
            w, h = (int(v) for v in rng.integers(20, 45, 2))
            x, y = int(rng.integers(0, 128 - w)), int(rng.integers(0, 96 - h))
            kind = int(rng.integers(0, 2))
            if kind == 0:
                canvas[y:y + h, x:x + w] = (230, 60, 60)
            else:
                yy, xx = np.mgrid[:h, :w]
                disc = ((yy - h / 2) / (h / 2)) ** 2 + ((xx - w / 2) / (w / 2)) ** 2 <= 1
                canvas[y:y + h, x:x + w][disc] = (60, 230, 60)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": kind + 1,
                                "bbox": [x, y, w, h]})
        Image.fromarray(canvas).save(root / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 128, "height": 96})
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "box"}, {"id": 2, "name": "disc"}]}))
    return path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return {"train": _shapes_coco(root / "train", 48, 1), "validation": _shapes_coco(root / "val", 16, 2)}


class KeepModule(L.Callback):
    """Keeps the LightningModule a training ran, so a test can reach the trained network in memory (the engine
    loads the best epoch's weights into it before writing the bundle)."""

    module: L.LightningModule | None = None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.module = pl_module


@pytest.fixture(scope="module")
def trained(shapes, tmp_path_factory):
    """Two epochs on the shapes (shared by the tests that read the bundle): the result, the printed lines and
    the trained network as training left it in memory."""
    kept = KeepModule()
    lines: list[str] = []
    result = train("object-detection", shapes, {**TINY_SSD, "epochs": "2"}, output=tmp_path_factory.mktemp("det") / "m",
                   progress=False, echo=lines.append, callbacks=[kept])
    assert kept.module is not None
    return result, lines, kept.module.model


def test_object_detection_trains_and_bundles(trained, shapes):
    from oculi import evaluate, load_model

    result, lines, in_memory = trained
    assert any("num_classes=auto → 2" in line for line in lines)
    assert result.classes == ["box", "disc"]
    # The bundle keeps the epoch with the best validation:mAP (logged at epoch end, after callbacks' epoch hooks).
    assert result.metrics["validation:mAP"] == max(row["validation:mAP"] for row in result.history)
    assert result.history[-1]["train:loss"] < result.history[0]["train:loss"] * 1.5
    meta = json.loads((result.model_dir / "model.json").read_text())
    assert meta["algorithm"] == "object-detection" and meta["input"]["height"] == 128
    # The bundle rebuilds the trained network: the network training left in memory and the one loaded from the
    # bundle (rebuilt from model.json, weights from the safetensors file) give identical detections on the
    # validation images — weights, buffers and the SSD settings (anchors, thresholds) all made the trip.
    loaded = load_bundle(result.model_dir).model
    assert in_memory is not loaded and not in_memory.training
    paths = sorted((shapes["validation"].parent / "images").glob("*.png"))[:4]
    images = [decode_image(path).float() / 255 for path in paths]
    with torch.no_grad():
        for a, b in zip(in_memory(images), loaded(images), strict=True):
            assert len(a["scores"]) > 0  # something to compare
            assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["scores"], b["scores"])
            assert torch.equal(a["labels"], b["labels"])
    # validation:mAP is the number `oculi evaluate` gives for the saved bundle on the validation data (there at
    # full resolution, in the original pixels; in training on the resized batches — IoU does not change under the
    # resize). Two epochs leave mAP near zero, so the tolerance is absolute and tight: the last epoch's weights
    # (mAP 0.0033 against the best epoch's 0.0072 when measured) or shifted labels would not pass.
    evaluated = evaluate(load_model(result.model_dir, precision="float32"), shapes["validation"], progress=False)
    assert evaluated.metrics["mAP"] == pytest.approx(result.metrics["validation:mAP"], abs=1e-3, rel=0.05), (
        evaluated.metrics, result.history)


def test_object_detection_errors_name_the_fix(shapes, tmp_path):
    with pytest.raises(ConfigError, match="pretrained_weights"):
        train("object-detection", shapes, {**TINY_SSD, "base_network": "vgg-16"}, output=tmp_path / "a",
              progress=False, echo=lambda *_: None)
    with pytest.raises(ConfigError, match="not \"C,H,W\""):
        train("object-detection", shapes, {**TINY_SSD, "image_shape": "3,300,300"}, output=tmp_path / "b",
              progress=False, echo=lambda *_: None)
    with pytest.raises(ConfigError, match="network=fcos.*not vgg-16"):
        train("object-detection", shapes, {**TINY_SSD, "network": "fcos", "base_network": "vgg-16"},
              output=tmp_path / "d", progress=False, echo=lambda *_: None)
    with pytest.raises(ConfigError, match="matches no parameter"):
        train("object-detection", shapes, {**TINY_SSD, "freeze_layer_pattern": "^conv1_"}, output=tmp_path / "c",
              progress=False, echo=lambda *_: None)


@pytest.fixture(scope="module")
def detector(trained):
    """The trained bundle's folder."""
    return trained[0].model_dir


def test_predict_gives_sagemaker_shapes(detector, shapes, tmp_path):
    from typer.testing import CliRunner

    from oculi import load_model
    from oculi.cli import app

    image = shapes["train"].parent / "images" / "0.png"
    runner = CliRunner()
    rows = json.loads(runner.invoke(app, ["predict", str(detector), str(image), "--json"]).output)["prediction"]
    assert rows and all(len(r) == 6 and r[0] in (0.0, 1.0) for r in rows)
    assert all(0.0 <= v <= 1.0 for r in rows for v in r[2:]) and all(r[2] <= r[4] and r[3] <= r[5] for r in rows)
    assert [r[1] for r in rows] == sorted((r[1] for r in rows), reverse=True)
    annotated = json.loads(runner.invoke(app, ["predict", str(detector), str(image), "--annotation"]).output)
    assert annotated["image_size"] == [{"width": 128, "height": 96, "depth": 3}]
    first = annotated["annotations"][0]
    assert abs(first["left"] / 128 - rows[0][2]) < 1e-3
    assert abs((first["top"] + first["height"]) / 96 - rows[0][5]) < 1e-3
    drawn = tmp_path / "drawn.png"
    result = runner.invoke(app, ["predict", str(detector), str(image), "--draw", str(drawn), "--min-score", "0.2"])
    assert result.exit_code == 0 and Image.open(drawn).size == (128, 96)
    detections = load_model(detector).predict(image, min_score=0.2)
    assert all(s >= 0.2 for s in detections.scores)


def test_predict_stretches_large_images_as_training_did(detector):
    """The served input of a large image is training's antialiased resize of it: 1-px stripes shrunk 3× become
    flat grey (a plain bilinear resize samples every third column and keeps stark stripes)."""
    from torchvision.transforms import v2

    from oculi.tasks import load_predictor

    predictor = load_predictor(detector, precision="float32")
    width, height = predictor.model.transform.fixed_size
    stripes = torch.zeros(3, 3 * height, 3 * width, dtype=torch.uint8)
    stripes[:, :, ::2] = 255
    inputs = predictor.network_input([stripes])
    assert inputs.shape == (1, 3, height, width)
    trained = v2.Resize((height, width), antialias=True)(stripes)  # what the training augmentation ends with
    expected = predictor.model.transform([trained.float() / 255.0])[0].tensors
    assert torch.allclose(inputs, expected, atol=0.02)
    plain = predictor.model.transform([stripes.float() / 255.0])[0].tensors
    assert plain[0].std(dim=-1).mean() > 5 * inputs[0].std(dim=-1).mean()  # 1.0 against 0.11
