"""The detection networks ``object-detection`` can train (``-p network=…``), one registered entry each: how to
build it, its exportable part, and how to finish a forward from that part's outputs. Training, evaluation,
prediction, serving, batch transform and ONNX export reach a network only through its entry, so a new network is
its module plus one ``NETWORKS.register`` line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.models.detection.fcos import FCOS
from torchvision.models.detection.ssd import SSD

from oculi.algorithms.detection_fcos import FCOSNetwork, build_fcos, fcos_detections, fcos_locations
from oculi.algorithms.detection_models import SSDNetwork, build_ssd, ssd_default_boxes, ssd_detections
from oculi.algorithms.detection_priors import resolve_default_boxes
from oculi.registry import Registry


@dataclass(frozen=True)
class DetectionNetwork:
    """One detection network.

    - ``build(base_network, num_classes, image_size, *, pretrained, pretrained_weights, frozen_batch_norm,
      nms_threshold, nms_topk)`` → the torchvision detector (training: ``model(images, targets)`` → loss dict;
      eval: ``model(images)`` → ``[{"boxes", "scores", "labels"}]``, labels with the background shift);
    - ``network(model)`` → the part without pre/post-processing: normalised ``float32 [B, 3, S, S]`` → the tuple
      of tensors named ``outputs`` (what ONNX export writes);
    - ``priors(model)`` → what ``finish`` needs that depends only on the input size (default boxes, anchors),
      computed once per predictor;
    - ``finish(model, priors, outputs, original_sizes)`` → the eval-mode detections, boxes in each original
      image's pixels, exactly as the detector's own forward;
    - ``edge(model, priors)`` → what the edge package's numpy decoder needs (``oculi export --edge``): the
      decoder's settings (``kind`` names its function in ``edge_predict.py``) and the priors as an array;
    - ``options``: the hyperparameters ``build`` also takes, as keywords of the same names (stored in the bundle,
      so a rebuilt model gets them back; a bundle without one gets ``build``'s default);
    - ``prepare(hp, train, notes, init_meta)`` → hyperparameter updates the network resolves from the training
      data (or the ``--init-model``'s ``model.json``, None without one) at prepare time (SSD's fitted default
      boxes), or None."""

    summary: str
    model_type: type[nn.Module]
    build: Callable[..., nn.Module]
    network: Callable[[nn.Module], nn.Module]
    outputs: tuple[str, ...]
    priors: Callable[[nn.Module], Any]
    finish: Callable[[nn.Module, Any, tuple[torch.Tensor, ...], list[tuple[int, int]]], list[dict[str, Any]]]
    edge: Callable[[nn.Module, Any], tuple[dict[str, Any], np.ndarray]]
    options: tuple[str, ...] = ()
    prepare: Callable[[Any, Any, list[str], dict[str, Any] | None], dict[str, Any]] | None = None


def _thresholds(model: nn.Module) -> dict[str, Any]:
    """The post-processing settings torchvision's SSD and FCOS share."""
    return {"score_thresh": float(model.score_thresh), "topk_candidates": int(model.topk_candidates),
            "nms_thresh": float(model.nms_thresh), "detections_per_img": int(model.detections_per_img)}


def _ssd_edge(model: nn.Module, priors: Any) -> tuple[dict[str, Any], np.ndarray]:
    return ({"kind": "ssd", "box_weights": [float(w) for w in model.box_coder.weights],
             "bbox_xform_clip": float(model.box_coder.bbox_xform_clip), **_thresholds(model)},
            priors.detach().cpu().float().numpy())


def _fcos_edge(model: nn.Module, priors: Any) -> tuple[dict[str, Any], np.ndarray]:
    anchors, per_level = priors
    return ({"kind": "fcos", "per_level": [int(n) for n in per_level],
             "normalize_by_size": bool(model.box_coder.normalize_by_size), **_thresholds(model)},
            anchors.detach().cpu().float().numpy())


def _ssd_finish(model: nn.Module, priors: Any, outputs: tuple[torch.Tensor, ...],
                original_sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    return ssd_detections(model, priors, *outputs, original_sizes)


def _ssd_prepare(hp: Any, train: Any, notes: list[str], init_meta: dict[str, Any] | None) -> dict[str, Any]:
    """SSD's prepare-time values: the default boxes (:func:`resolve_default_boxes`) and ``feature_norm=auto`` —
    on for a new model, the ``--init-model``'s value (off for a bundle from before it existed) otherwise."""
    up = resolve_default_boxes(hp, train, notes, init_meta)
    if hp.feature_norm == "auto":
        saved = init_meta["hyperparameters"].get("feature_norm", "off") if init_meta else "on"
        up["feature_norm"] = "on" if saved == "on" else "off"
        notes.append(f"feature_norm=auto → {up['feature_norm']}" + (" (the --init-model's)" if init_meta else
                     " (a batch norm on the base network's maps before the head)"))
    return up


NETWORKS: Registry[DetectionNetwork] = Registry("detection network")
NETWORKS.register("ssd", DetectionNetwork(
    "SSD (SageMaker's): default boxes on 4–7 feature maps, hard-negative mining", SSD, build_ssd, SSDNetwork,
    ("cls_logits", "bbox_regression"), ssd_default_boxes, _ssd_finish, _ssd_edge,
    ("default_box_scales", "default_box_ratios", "min_negatives", "feature_norm"), _ssd_prepare))
NETWORKS.register("fcos", DetectionNetwork(
    "FCOS: anchor-free, feature pyramid P3–P7 (strides 8–128), focal loss", FCOS, build_fcos, FCOSNetwork,
    ("cls_logits", "bbox_regression", "bbox_ctrness"), fcos_locations, fcos_detections, _fcos_edge))


def network_of(model: nn.Module) -> DetectionNetwork:
    """The registered network ``model`` (a built detector) is an instance of."""
    for name in NETWORKS.names():
        if isinstance(model, NETWORKS.get(name).model_type):
            return NETWORKS.get(name)
    raise TypeError(f"{type(model).__name__} is not a registered detection network ({', '.join(NETWORKS.names())})")
