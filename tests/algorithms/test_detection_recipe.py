"""object-detection's recipe for small data (issue 17): network / optimizer / learning_rate / backbone_lr_factor
``auto``, SSD default boxes fitted to the training boxes (stored in the bundle; bundles without them keep
SageMaker's), normalised base-network maps under a small-initialised head, and hard-negative mining with a minimum
number of negatives per image."""

from __future__ import annotations

import json
import shutil

import lightning as L
import pytest
import torch
from torchvision.models.detection.fcos import FCOS
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from oculi.algorithms import get_algorithm
from oculi.algorithms.detection import auto_network
from oculi.algorithms.detection_models import (
    build_ssd,
    default_boxes,
    fitted_boxes,
    ssd_default_boxes,
    ssd_grid_sizes,
    to_model_targets,
)
from oculi.algorithms.detection_priors import best_overlaps, fit_default_boxes, priors
from oculi.artifacts import WEIGHTS, load_bundle, save_bundle
from oculi.data.synthetic import write_detection_data
from oculi.engine.training import train
from oculi.errors import ConfigError

TINY = {"image_shape": "128", "mini_batch_size": "4", "num_workers": "0", "epochs": "1", "network": "ssd"}


class Rates(L.Callback):
    """The optimiser's class and its parameter groups' initial rates when training starts."""

    def on_train_start(self, trainer, pl_module):  # noqa: ANN001, ANN201
        opt = trainer.optimizers[0]
        self.kind = type(opt).__name__
        self.rates = [group.get("initial_lr", group["lr"]) for group in opt.param_groups]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_detection_data(tmp_path_factory.mktemp("shapes"), count=8)


@pytest.fixture(scope="module")
def auto_run(data, tmp_path_factory):
    """One tiny run with every recipe value left at auto: the result, its printed lines, the optimiser seen."""
    lines: list[str] = []
    rates = Rates()
    result = train("object-detection", data, TINY, output=tmp_path_factory.mktemp("auto") / "m", progress=False,
                   echo=lines.append, callbacks=[rates])
    return result, "\n".join(lines), rates


def test_auto_fine_tunes_with_adamw_and_a_slower_base_network(auto_run):
    result, text, rates = auto_run
    assert rates.kind == "AdamW", text
    base, rest = rates.rates  # the base network's group first, then extra layers and heads
    assert rest == pytest.approx(0.001) and base == pytest.approx(0.0001)
    assert "optimizer=auto → adamw (fine-tuning a pretrained base network)" in text
    assert "learning_rate=auto → 0.001 (adamw)" in text and "backbone_lr_factor=auto → 0.1" in text
    saved = result.hyperparameters
    assert (saved["optimizer"], saved["learning_rate"], saved["backbone_lr_factor"]) == ("adamw", 0.001, 0.1)


def test_explicit_sagemaker_values_mean_what_they_say(data, tmp_path):
    rates = Rates()
    hp = {**TINY, "optimizer": "sgd", "learning_rate": "0.004", "backbone_lr_factor": "0.5",
          "default_boxes": "sagemaker"}
    result = train("object-detection", data, hp, output=tmp_path / "m", progress=False, echo=lambda _: None,
                   callbacks=[rates])
    assert rates.kind == "SGD"
    assert rates.rates == pytest.approx([0.002, 0.004])
    saved = result.hyperparameters
    assert saved["default_boxes"] == "sagemaker" and saved.get("default_box_scales") is None
    # SageMaker's layout: the maps start at stride 16 and the boxes are the fixed ones
    model = load_bundle(result.model_dir).model
    assert torch.equal(ssd_default_boxes(model), priors(default_boxes("efficientnet-lite0", 128, 4), [8, 4, 2, 1], 128))


def test_fitted_default_boxes_are_stored_and_rebuilt_by_the_bundle(auto_run, tmp_path):
    result, text, _ = auto_run
    saved = result.hyperparameters
    assert saved["default_boxes"] == "fitted" and "default_boxes=auto → fitted to the training boxes" in text
    scales, ratios = saved["default_box_scales"], saved["default_box_ratios"]
    grids = ssd_grid_sizes("efficientnet-lite0", 128, fitted=True)
    assert grids[0] == 16 and len(scales) == len(grids) + 1  # the stride-8 map is there
    loaded = load_bundle(result.model_dir).model
    assert torch.equal(ssd_default_boxes(loaded), priors(fitted_boxes(len(grids), scales, ratios), grids, 128))
    # A bundle written before the fitted layout existed (no default-box fields) still loads, with the old boxes.
    old = tmp_path / "old"
    shutil.copytree(result.model_dir, old)
    meta = json.loads((old / "model.json").read_text())
    for key in ("default_boxes", "default_box_scales", "default_box_ratios", "min_negatives", "feature_norm",
                "network"):
        meta["hyperparameters"].pop(key, None)
    (old / WEIGHTS).unlink()
    old_model = get_algorithm("object-detection").model_from_meta(meta).eval()
    save_bundle(old, meta, old_model)
    rebuilt = load_bundle(old).model
    assert torch.equal(ssd_default_boxes(rebuilt), ssd_default_boxes(old_model))
    assert len(ssd_default_boxes(rebuilt)) == len(priors(default_boxes("efficientnet-lite0", 128, 4), [8, 4, 2, 1],
                                                        128))
    assert isinstance(rebuilt, SSD) and rebuilt.backbone.norms is None  # network and feature_norm as before


def test_network_auto_is_fcos_on_a_pyramid_base_network_and_ssd_otherwise(data, tmp_path):
    hp = get_algorithm("object-detection").hyperparameters
    assert auto_network(hp.model_validate({}))[0] == "fcos"
    assert auto_network(hp.model_validate({"base_network": "resnet-50"}))[0] == "fcos"
    network, why = auto_network(hp.model_validate({"base_network": "vgg-16"}))
    assert network == "ssd" and "vgg-16" in why
    network, why = auto_network(hp.model_validate({"default_boxes": "sagemaker"}))
    assert network == "ssd" and "default_boxes given" in why
    lines: list[str] = []
    tiny = {k: v for k, v in TINY.items() if k != "network"}
    result = train("object-detection", data, tiny, output=tmp_path / "m", progress=False, echo=lines.append)
    assert result.hyperparameters["network"] == "fcos" and "network=auto → fcos" in "\n".join(lines)
    assert isinstance(load_bundle(result.model_dir).model, FCOS)
    # an SSD bundle cannot start an FCOS run
    with pytest.raises(ConfigError, match="network=fcos detector, this run has network=ssd"):
        train("object-detection", data, TINY, output=tmp_path / "m2", init_model=result.model_dir, progress=False,
              echo=lambda _: None)


def test_feature_norm_gives_the_fresh_head_unit_scale_inputs_and_small_outputs():
    """With feature_norm the head reads base-network maps of unit RMS (raw: RMS 2–8), and its small
    initialisation starts box offsets and class logits near zero, so the first steps fit rather than undo."""
    torch.manual_seed(0)
    images = [torch.rand(3, 128, 128) for _ in range(4)]
    seen = {}
    for norm in ("off", "on"):
        model = build_ssd("efficientnet-lite0", 1, 128, pretrained=True, frozen_batch_norm=True, feature_norm=norm,
                          default_box_scales=[0.05, 0.1, 0.2, 0.4, 0.6, 0.8], default_box_ratios=[2.0])
        assert (model.backbone.norms is not None) == (norm == "on")
        model.train()
        batch, _ = model.transform(images)
        maps = list(model.backbone(batch.tensors).values())[:3]  # the base network's three maps
        seen[norm] = [float(m.detach().pow(2).mean().sqrt()) for m in maps]
        if norm == "on":
            out = model.head(list(model.backbone(batch.tensors).values()))
            assert out["bbox_regression"].abs().mean() < 0.5 and out["cls_logits"].abs().mean() < 0.5
    assert max(seen["off"]) > 2 and all(abs(r - 1) < 0.1 for r in seen["on"]), seen


def test_incremental_training_keeps_the_init_models_default_boxes(auto_run, data, tmp_path):
    result, _, _ = auto_run
    lines: list[str] = []
    again = train("object-detection", data, TINY, output=tmp_path / "m", init_model=result.model_dir,
                  progress=False, echo=lines.append)
    assert "default_boxes=auto → fitted (the --init-model's default boxes)" in "\n".join(lines)
    for key in ("default_box_scales", "default_box_ratios"):
        assert again.hyperparameters[key] == result.hyperparameters[key]


def test_the_closed_form_overlap_is_the_best_default_box_iou():
    torch.manual_seed(0)
    corner = torch.rand(300, 2) * 0.8
    boxes = torch.cat([corner, corner + 0.02 + torch.rand(300, 2) * 0.5], dim=1).clamp(max=1)
    grids, scales, ratios = [38, 19, 10, 5, 3, 2, 1], [0.04, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.05], [2.0, 3.0]
    brute = box_iou(boxes * 300, priors(fitted_boxes(len(grids), scales, ratios), grids, 300)).max(dim=1).values
    assert torch.allclose(best_overlaps(boxes, grids, scales, ratios), brute, atol=1e-4)


def test_the_fit_matches_more_small_boxes_than_sagemakers_boxes():
    # small, mostly square objects (as bees): 10–40 px at 300, anywhere in the image
    torch.manual_seed(1)
    side = 0.033 + torch.rand(400, 1) * 0.1
    width = side * (0.7 + torch.rand(400, 1) * 0.6)
    corner = torch.rand(400, 2) * 0.85
    boxes = torch.cat([corner, corner + torch.cat([width, side], dim=1)], dim=1)
    grids = ssd_grid_sizes("efficientnet-lite0", 300, fitted=True)
    fit = fit_default_boxes(boxes, grids, 300, "efficientnet-lite0", ssd_grid_sizes("efficientnet-lite0", 300, False))
    assert fit.matched > fit.sagemaker_matched + 0.15, fit
    assert fit.scales[0] < 0.07  # below SageMaker's smallest scale


def test_default_box_mistakes_name_the_fix(data, tmp_path):
    with pytest.raises(ConfigError, match="needs 6"):
        train("object-detection", data, {**TINY, "default_box_scales": "0.1,0.2,0.4"}, output=tmp_path / "a",
              progress=False, echo=lambda _: None)
    with pytest.raises(ConfigError, match="network=fcos has none"):
        train("object-detection", data, {**TINY, "network": "fcos", "default_boxes": "fitted"},
              output=tmp_path / "b", progress=False, echo=lambda _: None)
    with pytest.raises(ConfigError, match="default_boxes=sagemaker"):
        train("object-detection", data, {**TINY, "default_boxes": "sagemaker", "default_box_ratios": "2"},
              output=tmp_path / "c", progress=False, echo=lambda _: None)


def test_min_negatives_teaches_background_on_images_without_objects():
    torch.manual_seed(0)
    model = build_ssd("efficientnet-lite0", 1, 128, default_box_scales=[0.1, 0.2, 0.35, 0.5, 0.8, 1.0],
                      default_box_ratios=[2.0]).train()
    images = list(torch.rand(2, 3, 128, 128))
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}] * 2
    with_objects = [{"boxes": torch.tensor([[10.0, 10, 60, 70]]), "labels": torch.tensor([0])},
                    {"boxes": torch.tensor([[50.0, 40, 90, 80], [5, 80, 40, 120]]), "labels": torch.tensor([0, 0])}]
    losses = {}
    for minimum in (0, 1, 32):
        model.min_negatives = minimum
        with torch.no_grad():
            losses[minimum] = (model(images, to_model_targets(empty))["classification"],
                               model(images, to_model_targets(with_objects))["classification"])
    assert losses[0][0] == 0  # torchvision's rule: background-only images teach nothing
    assert losses[32][0] > 0
    # below 3 negatives per positive the minimum changes nothing: the rewritten loss is torchvision's
    assert torch.allclose(losses[1][1], losses[0][1])
    assert losses[32][1] >= losses[0][1]
