"""FCOS networks for ``object-detection`` (``-p network=fcos``): torchvision's anchor-free one-stage detector
(:class:`~torchvision.models.detection.FCOS`: centre sampling, sigmoid focal loss, GIoU box loss, centre-ness, NMS)
over a feature pyramid (P3–P7, strides 8–128) on an EfficientNet-Lite (0, 1, 2) or ResNet-50 base network.

It follows SSD's contract (:mod:`oculi.algorithms.detection_models`): images are stretched to the square
``image_size × image_size`` input and normalised by the base network's statistics, labels carry the background
shift (:func:`~oculi.algorithms.detection_models.to_model_labels`), eval output is torchvision's detection dict.
For CPUs the pyramid and heads are slim (:data:`PYRAMID_CHANNELS` channels, :data:`HEAD_CONVS` convolutions per
tower instead of 256 and 4): the small objects of the bee photos need the stride-8 level, not a wide head.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOS, FCOSHead
from torchvision.models.detection.image_list import ImageList
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

from oculi.algorithms import backbones
from oculi.algorithms.detection_models import _load_all, _pretrained_state, check_sizes, ssd_input_spec
from oculi.errors import ConfigError

BASE_NETWORKS = (*backbones.LITES, "resnet-50")
PYRAMID_CHANNELS = 64
HEAD_CONVS = 2
STRIDES = (8, 16, 32, 64, 128)


class Float32Anchors(AnchorGenerator):
    """torchvision's anchor generator with the anchors always in float32 (under bf16 autocast the stock one
    returns bf16 pixel corners, steps of 2 px at 256–512)."""

    def forward(self, image_list: ImageList, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        grids = [f.new_empty((0, *f.shape[-2:]), dtype=torch.float32) for f in feature_maps]
        return super().forward(image_list, grids)


class Float32FCOSHead(FCOSHead):
    """torchvision's FCOS head whose outputs are cast to float32, so decoding and the losses run in float32 when
    the convolutions run under bf16 autocast."""

    def forward(self, x: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.float() for key, value in super().forward(x).items()}


class PyramidFeatures(nn.Module):
    """``body`` (strides 8, 16, 32) → a feature pyramid P3–P7 of ``out_channels`` each: an ``OrderedDict``
    ``"0"…"4"`` of ``[B, C, H_i, W_i]``, finest first. The base network's parameters live under ``body.`` (they
    learn at a tenth of the rate, as SSD's)."""

    def __init__(self, body: nn.Module, in_channels: list[int], out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.fpn = FeaturePyramidNetwork(in_channels, out_channels, extra_blocks=LastLevelP6P7(out_channels,
                                                                                                out_channels))
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = self.body(x)
        maps = features if isinstance(features, list) else list(features.values())
        pyramid = self.fpn(OrderedDict((str(i), f) for i, f in enumerate(maps)))
        return OrderedDict((str(i), f) for i, f in enumerate(pyramid.values()))


class ResNetC3C5(nn.Module):
    """torchvision ResNet-50 without pooling and classifier; returns ``[C3, C4, C5]`` (strides 8, 16, 32)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(network, name))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.layer2(self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x))))))
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


def _body(base_network: str, state: tuple[dict[str, torch.Tensor], str] | None) -> tuple[nn.Module, list[int]]:
    if base_network == "resnet-50":
        network = resnet50(weights=None)
        if state is not None:
            _load_all(network, *state, skip=("fc.",))
        return ResNetC3C5(network), [512, 1024, 2048]
    import timm

    body = timm.create_model(backbones.timm_name(base_network), pretrained=False, features_only=True,
                             out_indices=(2, 3, 4))
    if state is not None:
        _load_all(body, *state)
    return body, list(body.feature_info.channels())


def build_fcos(base_network: str, num_classes: int, image_size: int, *, pretrained: bool = False,
               pretrained_weights: Path | None = None, frozen_batch_norm: bool = False, nms_threshold: float = 0.45,
               nms_topk: int = 400, score_threshold: float = 0.05, detections_per_image: int = 200) -> FCOS:
    """An FCOS detector for ``num_classes`` object classes on ``base_network`` (efficientnet-lite* or resnet-50),
    for ``image_size × image_size`` inputs; the same arguments and label convention as
    :func:`~oculi.algorithms.detection_models.build_ssd` (the network has ``num_classes + 1`` class outputs, class
    0 unused). Raises :class:`ConfigError` for a base network FCOS has no pyramid for."""
    if base_network not in BASE_NETWORKS:
        raise ConfigError(f"network=fcos takes base_network {' or '.join(BASE_NETWORKS)}; got {base_network!r}. "
                          "Pass -p base_network=efficientnet-lite0, or -p network=ssd for vgg-16.")
    check_sizes(num_classes, image_size)
    body, channels = _body(base_network, _pretrained_state(base_network, pretrained, pretrained_weights))
    if frozen_batch_norm:
        from timm.layers import freeze_batch_norm_2d

        body = freeze_batch_norm_2d(body)
    features = PyramidFeatures(body, channels, PYRAMID_CHANNELS)
    anchors = Float32Anchors(tuple((s,) for s in STRIDES), ((1.0,),) * len(STRIDES))
    head = Float32FCOSHead(PYRAMID_CHANNELS, 1, num_classes + 1, num_convs=HEAD_CONVS)
    spec = ssd_input_spec(base_network, image_size)
    return FCOS(features, num_classes + 1, min_size=image_size, max_size=image_size, image_mean=spec["mean"],
                image_std=spec["std"], anchor_generator=anchors, head=head, score_thresh=score_threshold,
                nms_thresh=nms_threshold, detections_per_img=detections_per_image, topk_candidates=nms_topk,
                size_divisible=1, fixed_size=(image_size, image_size))


class FCOSNetwork(nn.Module):
    """FCOS without pre- and post-processing (what ``oculi export`` writes to ONNX): normalised ``float32
    [B, 3, S, S]`` → ``(cls_logits [B, A, num_classes + 1], bbox_regression [B, A, 4], bbox_ctrness [B, A, 1])``
    over the ``A`` locations of every pyramid level, finest first."""

    def __init__(self, fcos: FCOS) -> None:
        super().__init__()
        self.backbone = fcos.backbone
        self.head = fcos.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised ``[B, 3, S, S]`` images → the three head outputs."""
        out = self.head(list(self.backbone(images).values()))
        return out["cls_logits"], out["bbox_regression"], out["bbox_ctrness"]


@torch.no_grad()
def fcos_locations(fcos: FCOS) -> tuple[torch.Tensor, list[int]]:
    """The anchor boxes of ``fcos`` at its fixed input size (``float32 [A, 4]`` xyxy, one per location, in
    :class:`FCOSNetwork`'s output order) and the number of locations per pyramid level."""
    width, height = fcos.transform.fixed_size
    parameter = next(fcos.parameters())
    blank = torch.zeros(1, 3, height, width, device=parameter.device, dtype=torch.float32)
    with torch.autocast(parameter.device.type, enabled=False):
        maps = list(fcos.backbone(blank).values())
    anchors = fcos.anchor_generator(ImageList(blank, [(height, width)]), maps)[0]
    return anchors, [m.shape[-2] * m.shape[-1] for m in maps]


def fcos_detections(fcos: FCOS, locations: tuple[torch.Tensor, list[int]], outputs: tuple[torch.Tensor, ...],
                    original_sizes: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """Finish an FCOS forward from :class:`FCOSNetwork`'s outputs exactly as ``FCOS.forward`` does in eval mode
    (per-level split, score threshold and top-k, box decoding, NMS), boxes scaled back to ``original_sizes``."""
    anchors, per_level = locations
    width, height = fcos.transform.fixed_size
    sizes = [(height, width)] * len(original_sizes)
    names = ("cls_logits", "bbox_regression", "bbox_ctrness")
    split = {name: list(out.float().split(per_level, dim=1)) for name, out in zip(names, outputs, strict=True)}
    level_anchors = [list(anchors.split(per_level))] * len(original_sizes)
    detections = fcos.postprocess_detections(split, level_anchors, sizes)
    return fcos.transform.postprocess(detections, sizes, original_sizes)
