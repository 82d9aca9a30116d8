"""The detection networks' ONNX export plan (the detection algorithm's own, see
:attr:`oculi.algorithms.base.Algorithm.export_plan`): the network part (base network + heads, the registered
network's ``network``, e.g. :class:`~oculi.algorithms.detection_models.SSDNetwork`) is exported and compared on
generated images; then the whole predictor — default boxes or anchors, decoding and NMS in torch — runs with
either runtime and the final detections are compared."""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import nn

from oculi.algorithms.base import ExportPlan
from oculi.data.synthetic import sample_images

# Detections compared in the final-box check: the highest-scoring ones of each image (a near-tie among the low
# scores of an untrained model may swap which of two boxes survives NMS; that is not an export error).
COMPARED_DETECTIONS = 20
BOX_TOLERANCE_PIXELS = 0.5


def detection_export_plan(model: nn.Module, spec: dict[str, Any]) -> ExportPlan:
    """``images [batch, 3, S, S]`` → the network's outputs (SSD: ``cls_logits``, ``bbox_regression``; FCOS adds
    ``bbox_ctrness``); batches of 2 and 1 at the network size, then final detections compared on those 3 images
    and one of another size and aspect."""
    from oculi.algorithms.detection_networks import network_of

    outputs = list(network_of(model).outputs)
    width, height = model.transform.fixed_size
    images = sample_images(3, height, width, seed=1)
    samples = [model.transform([i.float() / 255.0 for i in images[:2]])[0].tensors,
               model.transform([images[2].float() / 255.0])[0].tensors]
    others = sample_images(1, round(height * 0.75), round(width * 1.25), seed=3)
    return ExportPlan(outputs, {"images": {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
                      samples[0], samples, final_check=partial(_check_detections, images + others))


def _check_detections(images: list[torch.Tensor], predictor: Any, session: Any
                      ) -> tuple[str, dict[str, Any], list[str]]:
    """Run ``predictor.detect`` with its torch runtime and with ``session``; compare the results (``result``: the
    comparison in words)."""
    reference = predictor.detect(images)
    torch_runtime, predictor.runtime = predictor.runtime, session
    try:
        exported = predictor.detect(images)
    finally:
        predictor.runtime = torch_runtime
    summary = compare_detections(reference, exported)
    summary["result"] = (f"top {summary['compared']} over {summary['images']} images agree (boxes within "
                         f"{summary['box_max_abs_diff']:.2e} px, scores within {summary['score_max_abs_diff']:.2e})")
    problems = []
    if summary["label_mismatches"] or summary["box_max_abs_diff"] > BOX_TOLERANCE_PIXELS:
        problems.append(f"final detections differ: {summary['label_mismatches']} of {summary['compared']} top "
                        f"detections with another class or missing, boxes up to {summary['box_max_abs_diff']:.3g} "
                        f"px apart (allowed {BOX_TOLERANCE_PIXELS} px)")
    return "detections", summary, problems


def compare_detections(reference: list[dict[str, torch.Tensor]], exported: list[dict[str, torch.Tensor]]
                        ) -> dict[str, Any]:
    """Compare each image's :data:`COMPARED_DETECTIONS` highest-scoring detections rank by rank."""
    compared = mismatches = 0
    box_diff = score_diff = 0.0
    for ref, out in zip(reference, exported, strict=True):
        count = min(COMPARED_DETECTIONS, len(ref["scores"]))
        compared += count
        if len(out["scores"]) < count:
            mismatches += count - len(out["scores"])
            count = len(out["scores"])
        mismatches += int((ref["labels"][:count] != out["labels"][:count]).sum())
        if count:
            box_diff = max(box_diff, float((ref["boxes"][:count] - out["boxes"][:count]).abs().max()))
            score_diff = max(score_diff, float((ref["scores"][:count] - out["scores"][:count]).abs().max()))
    return {"images": len(reference), "compared": compared, "label_mismatches": mismatches,
            "box_max_abs_diff": box_diff, "score_max_abs_diff": score_diff}


