"""What a CAM explains, per task — the adapters behind each :class:`~oculi.tasks.base.TaskContract`'s
``explanation_target`` hook. An adapter turns one decoded image into the network input the model sees, runs the
network differentiably in float32, and names the targets of one result:

- classification: a class's logit (score: its probability);
- detection: one detected box's score followed through box decoding and NMS (the detector's own ``finish``), so
  the map explains that box (score on a changed image: the best score of a same-class box overlapping it by
  IoU ≥ 0.5, 0 when none survives);
- segmentation: a class's logits summed over the pixels predicted as that class (score: its mean probability
  over those pixels).

Every adapter works on the predictor's own module (``predictor.model``) without autocast, so explanations run in
float32 whatever precision the predictor serves in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from oculi.data.transforms import normalize
from oculi.errors import ConfigError

BOX_MATCH_IOU = 0.5  # a box on a changed image still "is" the explained box at this overlap
MAX_BOXES = 5  # detection: boxes explained by default (the top ones above min_score)


@dataclass
class Target:
    """One thing to explain: ``name`` (for file names), ``describe`` (its JSON), ``value(outputs)`` the scalar
    whose gradient the CAM uses, ``score(outputs)`` ``float32 [B]`` the score faithfulness tracks over a batch of
    changed inputs."""

    name: str
    describe: dict[str, Any]
    value: Callable[[Any], torch.Tensor]
    score: Callable[[Any], torch.Tensor]
    box: list[float] | None = None  # detection: the box in the view's pixels (drawn on the overlay)


@dataclass
class Prepared:
    """One image ready to explain: ``inputs`` normalised ``float32 [1, 3, h, w]`` (what the network sees),
    ``view`` ``uint8 [3, H, W]`` (what the map is drawn over), ``state`` what the adapter needs later."""

    inputs: torch.Tensor
    view: torch.Tensor
    state: dict[str, Any] = field(default_factory=dict)


def _producer(container: nn.Module, inputs: torch.Tensor, pick: Callable[[Any], torch.Tensor], prefix: str) -> str:
    """Name (``prefix`` + path) of the last-finished submodule of ``container`` whose output is the very tensor
    ``pick(container output)``: the layer every later output is computed from."""
    outputs: list[tuple[str, Any]] = []
    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: outputs.append((name, out)))
             for name, module in container.named_modules() if name]
    try:
        with torch.no_grad():
            chosen = pick(container(inputs))
    finally:
        for hook in hooks:
            hook.remove()
    names = [name for name, out in outputs if out is chosen]
    if not names:
        raise ConfigError(f"no layer of {type(container).__name__} produces its features; pass --layer NAME.")
    return prefix + names[-1]


def _last_spatial(model: nn.Module, inputs: torch.Tensor, not_channels: int | None = None) -> str:
    """Name of the last-finished module whose output is a ``[B, C, h, w]`` map with ``h, w ≥ 2`` (and
    ``C != not_channels``: not the class logits)."""
    found: list[str] = []

    def spatial(out: Any) -> bool:
        return (isinstance(out, torch.Tensor) and out.ndim == 4 and min(out.shape[-2:]) >= 2
                and out.shape[1] != not_channels)

    hooks = [module.register_forward_hook(lambda _m, _i, out, name=name: found.append(name) if spatial(out) else None)
             for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for hook in hooks:
            hook.remove()
    if not found:
        raise ConfigError(f"{type(model).__name__} has no spatial layer to explain; pass --layer NAME.")
    return found[-1]


def _classes(request: list[str] | None, classes: list[str], what: str) -> list[int] | None:
    """Indices of the requested class names (or 0-based indices); None = the task's default."""
    if not request:
        return None
    out = []
    for name in request:
        if name in classes:
            out.append(classes.index(name))
        elif name.isdigit() and int(name) < len(classes):
            out.append(int(name))
        else:
            raise ConfigError(f"--target {name!r} is not a class of this {what} model; expected one of "
                              f"{', '.join(classes)} (or a class index).")
    return out


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


class ClassificationTarget:
    """Classification: the image as the model sees it (resized, centre-cropped), a map per requested class
    (default: the top-1); the target is the class's logit."""

    default_method = "gradcam"

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.model = predictor.model

    def prepare(self, image: torch.Tensor) -> Prepared:
        """Resize + centre-crop (the view) and normalise (the inputs)."""
        crop = self.predictor.transform(image)
        spec = self.predictor.spec
        inputs = normalize(crop[None].to(self.predictor.device), tuple(spec["mean"]), tuple(spec["std"]))
        return Prepared(inputs, crop)

    def forward(self, inputs: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """Logits ``[B, num_classes]``."""
        return self.model(inputs).float()

    def default_layer(self, prepared: Prepared) -> str:
        """The last spatial feature map before pooling."""
        return _last_spatial(self.model, prepared.inputs)

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        sigmoid = self.predictor.spec.get("output") == "sigmoid"
        return torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=1)

    def targets(self, outputs: torch.Tensor, prepared: Prepared, request: list[str] | None,
                min_score: float) -> list[Target]:
        """One target per requested class, default the most probable one."""
        classes = self.predictor.classes
        probs = self._probs(outputs.detach())[0]
        chosen = _classes(request, classes, "classification") or [int(probs.argmax())]
        return [Target(_slug(classes[c]), {"class": classes[c], "class_id": c, "score": round(float(probs[c]), 6),
                                           "value": "logit"},
                       value=lambda out, c=c: out[0, c], score=lambda out, c=c: self._probs(out)[:, c])
                for c in chosen]


class DetectionTarget:
    """Detection: the image stretched to the detector's square input; a map per detected box (default: the top
    :data:`MAX_BOXES` above ``min_score``); the target is the box's score after decoding and NMS."""

    # LayerCAM (element-wise positive gradients) keeps a box's map on its object: pointing game on the bees
    # validation split (bench/explain_pointing.py, FCOS on Lite0) 0.92 of detected bees' maps peak inside the bee,
    # against Grad-CAM++ 0.33, EigenCAM 0.19 and Grad-CAM 0.11
    default_method = "layercam"

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.model = predictor.model
        self.kind = predictor.kind
        self.network = self.kind.network(self.model)

    def prepare(self, image: torch.Tensor) -> Prepared:
        """The predictor's own resize + normalise; the view is the original image."""
        inputs = self.predictor.network_input([image])
        return Prepared(inputs.float(), image, {"size": (int(image.shape[-2]), int(image.shape[-1]))})

    def forward(self, inputs: torch.Tensor, prepared: Prepared) -> list[dict[str, torch.Tensor]]:
        """Detections per input, boxes in the ``S × S`` input's pixels (torchvision labels, background 0)."""
        size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        outputs = tuple(out.float() for out in self.network(inputs))
        return self.kind.finish(self.model, self.predictor.priors, outputs, [size] * len(inputs))

    def default_layer(self, prepared: Prepared) -> str:
        """The base network's finest returned map: every feature map (and so every box) is computed from it."""
        backbone = self.network.backbone
        body = getattr(backbone, "body", backbone)
        prefix = "backbone.body." if body is not backbone else "backbone."
        return _producer(body, prepared.inputs, lambda out: list(out.values() if isinstance(out, dict) else out)[0],
                         prefix)

    def _score(self, outputs: list[dict[str, torch.Tensor]], box: torch.Tensor, label: int) -> torch.Tensor:
        from torchvision.ops import box_iou

        scores = []
        for found in outputs:
            same = found["labels"] == label
            if not bool(same.any()):
                scores.append(torch.zeros((), device=box.device))
                continue
            overlap = box_iou(box[None], found["boxes"][same].detach())[0]
            ok = overlap >= BOX_MATCH_IOU
            scores.append(found["scores"][same][ok].detach().max() if bool(ok.any())
                          else torch.zeros((), device=box.device))
        return torch.stack(scores).float()

    def targets(self, outputs: list[dict[str, torch.Tensor]], prepared: Prepared, request: list[str] | None,
                min_score: float) -> list[Target]:
        """One target per detected box scoring at least ``min_score`` (of the requested classes), best first."""
        classes = self.predictor.classes
        wanted = _classes(request, classes, "object-detection")
        found = outputs[0]
        height, width = prepared.state["size"]
        side_h, side_w = prepared.inputs.shape[-2:]
        scale = torch.tensor([width / side_w, height / side_h] * 2, device=found["boxes"].device)
        out = []
        for k in range(len(found["scores"])):
            score, label = float(found["scores"][k].detach()), int(found["labels"][k]) - 1
            if score < min_score or (wanted is not None and label not in wanted):
                continue
            box = found["boxes"][k].detach()
            pixels = [round(float(v), 2) for v in box * scale]
            out.append(Target(f"box{k}-{_slug(classes[label])}",
                              {"box_index": k, "class": classes[label], "class_id": label,
                               "score": round(score, 6), "box": dict(zip(("xmin", "ymin", "xmax", "ymax"), pixels,
                                                                         strict=True)),
                               "value": "box score after decoding and NMS"},
                              value=lambda o, k=k: o[0]["scores"][k],
                              score=lambda o, box=box, label=label + 1: self._score(o, box, label), box=pixels))
            if len(out) >= MAX_BOXES:
                break
        return out


class SegmentationTarget:
    """Segmentation: the image with its long side at ``base_size`` (as the predictor scales it); a map per class
    region (default: every class present); the target is the class's logits summed over its predicted pixels."""

    default_method = "gradcam"

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.model = predictor.model

    def prepare(self, image: torch.Tensor) -> Prepared:
        """Scale and normalise; the view is the original image."""
        scaled = self.predictor.scaled(image)
        spec = self.predictor.spec
        inputs = normalize(scaled[None].to(self.predictor.device), tuple(spec["mean"]), tuple(spec["std"]))
        return Prepared(inputs, image)

    def forward(self, inputs: torch.Tensor, prepared: Prepared) -> torch.Tensor:
        """Logits ``[B, C, h, w]`` at the input's size."""
        return self.model(inputs).float()

    def default_layer(self, prepared: Prepared) -> str:
        """The features the final per-pixel classifier reads (the last spatial map that is not the logits: the
        decoder's fused map, or the head's), finer than the backbone's deepest map."""
        return _last_spatial(self.model, prepared.inputs, not_channels=len(self.predictor.classes))

    def targets(self, outputs: torch.Tensor, prepared: Prepared, request: list[str] | None,
                min_score: float) -> list[Target]:
        """One target per requested class present in the prediction (default: every class present)."""
        classes = self.predictor.classes
        mask = outputs.detach()[0].argmax(0)
        present = [int(c) for c in torch.unique(mask)]
        chosen = _classes(request, classes, "semantic-segmentation")
        out = []
        for c in chosen if chosen is not None else present:
            region = mask == c
            if not bool(region.any()):
                continue
            share = float(region.float().mean())
            out.append(Target(_slug(classes[c]), {"class": classes[c], "class_id": c, "pixel_share": round(share, 6),
                                                  "value": "class logits summed over its predicted pixels"},
                              value=lambda o, c=c, r=region: o[0, c][r].sum(),
                              score=lambda o, c=c, r=region: torch.softmax(o, dim=1)[:, c][:, r].mean(1)))
        return out


def resize_map(saliency: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``float32 [h, w]`` → ``[H, W]`` (bilinear)."""
    return F.interpolate(saliency[None, None].float(), size=size, mode="bilinear", align_corners=False)[0, 0]
