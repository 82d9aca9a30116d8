"""Maps with a known answer: the classifier's and the segmenter's maps must point at the evidence the generated
data put there, and a real map's faithfulness must beat a random map's; every method writes its files, and a
detector's maps differ per box."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from oculi.explain import METHODS, Explainer
from oculi.explain.cam import faithfulness
from oculi.tasks import load_predictor
from tests.explain.conftest import Trained


def test_classifier_puts_its_map_on_the_coloured_patch(patch_classifier: Trained) -> None:
    # LayerCAM at ResNet-20's full-resolution stage: Grad-CAM at the default last stage (stride 4, 12×12 cells for
    # 48² inputs) smears each cell's evidence over the patch's edges (about 60 % of the mass inside a 16² patch)
    explainer = Explainer(load_predictor(patch_classifier.model, precision="float32"), "layercam", layer="layer1",
                          faithfulness=False)
    masses, right = [], 0
    for path, (x0, y0, x1, y1) in patch_classifier.boxes.items():
        item = explainer.explain(path).explanations[0]
        if item.target.describe["class"] == Path(path).parent.name:
            right += 1
            masses.append(float(item.saliency[y0:y1, x0:x1].sum() / item.saliency.sum()))
        assert item.saliency.shape == (48, 48) and item.saliency.max() == pytest.approx(1.0)
    assert right >= 0.8 * len(patch_classifier.boxes), f"the classifier is not trained enough ({right} right)"
    assert float(np.mean(masses)) >= 0.8, f"map mass in the patch: {np.round(masses, 2)}"


def test_real_map_is_more_faithful_than_a_random_map(patch_classifier: Trained) -> None:
    explainer = Explainer(load_predictor(patch_classifier.model, precision="float32"), faithfulness=False)
    real, random = [], []
    generator = torch.Generator().manual_seed(0)
    for path in list(patch_classifier.boxes)[:6]:
        prepared = explainer.adapter.prepare(explainer.predictor.to_tensor(path))
        item = explainer.explain(path).explanations[0]
        saliency = torch.from_numpy(item.saliency)
        real.append(faithfulness(explainer.adapter, prepared, item.target, saliency)["score"])
        noise = torch.rand(saliency.shape, generator=generator)
        random.append(faithfulness(explainer.adapter, prepared, item.target, noise)["score"])
    assert np.mean(real) > np.mean(random) + 0.2, (real, random)


def test_segmentation_map_lies_in_its_region(scene_segmenter: Trained) -> None:
    explainer = Explainer(load_predictor(scene_segmenter.model, precision="float32"), faithfulness=False)
    images = sorted(Path(scene_segmenter.data["validation"]).glob("*.png"))
    hits, total = 0, 0
    for image in images:
        truth = np.asarray(Image.open(Path(scene_segmenter.data["validation_annotation"]) / image.name))
        for item in explainer.explain(image, targets=["1", "2"]).explanations:
            region = truth == item.target.describe["class_id"]
            y, x = np.unravel_index(int(np.argmax(item.saliency)), item.saliency.shape)
            total += 1
            hits += bool(region[max(0, y - 1):y + 2, max(0, x - 1):x + 2].any())
    assert total >= len(images), "the segmenter predicted too few object regions to test"
    assert hits >= 0.75 * total, f"{hits}/{total} class maps peak in their region"


@pytest.mark.parametrize("method", METHODS)
def test_every_method_writes_overlay_map_and_json(method: str, scene_detector: Trained, tmp_path: Path) -> None:
    image = sorted(Path(scene_detector.data["validation"]).parent.glob("*.png"))[0]
    explainer = Explainer(load_predictor(scene_detector.model), method)
    result = explainer.explain(image, min_score=0.0)
    assert len(result.explanations) == 5 and all("NMS" in e.target.describe["value"] for e in result.explanations)
    if method != "eigencam":  # each box's map follows that box's score (EigenCAM ignores the target)
        assert not np.allclose(result.explanations[0].saliency, result.explanations[1].saliency)
    written = json.loads(result.write(tmp_path).read_text())
    assert written["method"] == method and written["precision"] == "float32" and written["layer"]
    entry = written["explanations"][0]
    assert set(entry["faithfulness"]) >= {"score", "salient_removed", "random_removed", "fractions"}
    raw = np.load(tmp_path / entry["map"])
    assert raw.shape == (96, 128) and raw.dtype == np.float32 and 0 <= raw.min() and raw.max() <= 1
    assert Image.open(tmp_path / entry["overlay"]).size == (128, 96)


def test_auto_is_each_tasks_measured_default(scene_detector: Trained, patch_classifier: Trained,
                                             tmp_path: Path) -> None:
    detector = Explainer(load_predictor(scene_detector.model), faithfulness=False)  # method left at auto
    assert detector.method == "layercam"  # the pointing game's winner on bees (bench/explain_pointing.py)
    image = sorted(Path(scene_detector.data["validation"]).parent.glob("*.png"))[0]
    written = json.loads(detector.explain(image, min_score=0.0).write(tmp_path).read_text())
    assert written["method"] == "layercam"  # the answer names the method used, never "auto"
    assert Explainer(load_predictor(patch_classifier.model), "auto", faithfulness=False).method == "gradcam"
