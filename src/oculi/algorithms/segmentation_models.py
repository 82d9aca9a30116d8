"""Segmentation networks for ``semantic-segmentation`` (SageMaker's FCN, PSP and DeepLab-v3): an ImageNet
backbone with dilated last stages and one of three heads — torchvision's :class:`FCNHead` and
:class:`DeepLabHead` (ASPP), and a pyramid-pooling head (PSPNet, Zhao et al. 2017; torchvision has none, and the
only packaged one, segmentation-models-pytorch, brings its own encoders and a Hugging Face Hub dependency for a
30-line module).

- ``resnet-50`` / ``resnet-101``: torchvision ResNets with layer3/layer4 dilated (output stride 8, 2048 channels),
  as torchvision's and GluonCV's segmentation models. ImageNet weights come from a local torchvision state dict.
- ``efficientnet-lite0``: timm's EfficientNet-Lite0 blocks with the last stage dilated (output stride 16, 320
  channels — stride 8 would cost several times the compute on CPU); its ImageNet weights ship with oculi.

By default (``skip=True``, the ``decoder=skip`` hyperparameter) the head's features go through a light
DeepLab-v3+-style decoder (:class:`SkipDecoder`) that fuses them with the backbone's stride-4 features before the
classifier; ``skip=False`` is the plain head whose logits at output stride 8/16 are bilinearly upsampled (SageMaker's
networks, and every bundle trained before the decoder existed). Why: logits at stride 16 (8) upsampled bilinearly
are smooth over 16 (8) px, so they cannot draw structures a few pixels wide. On isbi2012-em (membranes 2–5 px wide,
22 % of pixels) the best any stride-16 logit map can do is about pixel accuracy 0.82 / mIoU 0.53 (stride 8: 0.91 /
0.75, stride 4: 0.98 / 0.95 — area-averaged masks upsampled back); trained FCN/PSP/DeepLab on lite0 stayed at the
majority class (mIoU 0.38) for 25 epochs and reached 0.41–0.48 after 75. With the decoder the same FCN reaches mIoU
0.72 / accuracy 0.88 in 15 epochs at about the same step time.

Input ``float [B, 3, H, W]`` normalised with the bundle's mean/std, any ``H, W ≥ 16`` (non-square too: every head
pools adaptively and the logits are interpolated to the input size). Output logits ``float [B, num_classes, H,
W]``. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's convention
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead

from oculi.algorithms import backbones
from oculi.errors import ArtifactError, ConfigError

SEGMENTATION_ALGORITHMS = ("fcn", "psp", "deeplab")
SEGMENTATION_BACKBONES = ("resnet-50", "resnet-101", *backbones.LITES)
_WEIGHT_EXAMPLES = {"resnet-50": "resnet50-0676ba61.pth", "resnet-101": "resnet101-63fe2227.pth"}


class DilatedResNet(nn.Module):
    """torchvision ResNet-50/101 trunk without pooling and classifier, layer3/layer4 dilated instead of strided:
    ``float [B, 3, H, W]`` → ``[B, 2048, H/8, W/8]``. Parameter names keep torchvision's (``layer3.0…``)."""

    out_channels = 2048
    output_stride = 8
    low_channels = 256  # layer1, stride 4

    def __init__(self, depth: int) -> None:
        super().__init__()
        network = backbones.IMAGENET_RESNETS[depth](weights=None, replace_stride_with_dilation=[False, True, True])
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            setattr(self, name, getattr(network, name))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stride-4 features of layer1, features of the last stage)``."""
        low = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        return low, self.layer4(self.layer3(self.layer2(low)))


class LiteFeatures(nn.Module):
    """timm's EfficientNet-Lite0/1/2 blocks up to the last stage, that stage dilated: ``float [B, 3, H, W]`` →
    ``[B, out_channels, H/16, W/16]`` (Lite0 320 channels, Lite2 352) and the stride-4 features of stage 1
    (``[B, low_channels, H/4, W/4]``, 24 channels). Parameter names are timm's under ``body.``
    (``body.blocks.6.0…``)."""

    output_stride = 16

    def __init__(self, lite: str = "efficientnet-lite0") -> None:
        super().__init__()
        import timm

        self.body = timm.create_model(backbones.timm_name(lite), pretrained=False, features_only=True,
                                      out_indices=(1, 4), output_stride=self.output_stride)
        self.low_channels, self.out_channels = self.body.feature_info.channels()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stride-4 features, features of the last stage)``."""
        low, high = self.body(x)
        return low, high


class PyramidPoolingHead(nn.Module):
    """PSPNet's head: the feature map average-pooled to 1×1, 2×2, 3×3 and 6×6 bins, each reduced to
    ``in_channels / 4`` channels by a 1×1 convolution, upsampled and concatenated with the input, then a 3×3
    convolution (≤ 512 channels), dropout 0.1 and the 1×1 classifier. Works for any (non-square) map size."""

    def __init__(self, in_channels: int, num_classes: int, bins: tuple[int, ...] = (1, 2, 3, 6)) -> None:
        super().__init__()
        branch = in_channels // 4
        # No BatchNorm in the branches: a 1×1 bin has one value per channel, which BatchNorm cannot normalise
        # over a batch of one image.
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(in_channels, branch, 1),
                                                  nn.ReLU(inplace=True)) for b in bins)
        mid = min(512, in_channels)
        self.bottleneck = nn.Sequential(nn.Conv2d(in_channels + branch * len(bins), mid, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Dropout(0.1))
        self.classifier = nn.Conv2d(mid, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, h, w]`` features → ``[B, num_classes, h, w]`` logits."""
        size = x.shape[-2:]
        pooled = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False) for stage in self.stages]
        return self.classifier(self.bottleneck(torch.cat([x, *pooled], dim=1)))


class SkipDecoder(nn.Module):
    """DeepLab-v3+'s decoder (Chen et al. 2018), slimmed for CPU: the backbone's stride-4 features projected to
    32 channels (1×1 conv, BatchNorm, ReLU), concatenated with the head's features upsampled to stride 4, two
    3×3 convolutions of ``channels`` (BatchNorm, ReLU) and the 1×1 classifier: logits at stride 4, which can
    follow edges and thin structures that stride-8/16 logits blur away."""

    def __init__(self, low_channels: int, head_channels: int, num_classes: int, channels: int = 64) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(low_channels, 32, 1, bias=False), nn.BatchNorm2d(32),
                                     nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(head_channels + 32, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU(inplace=True))
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, low: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """``[B, low_channels, H/4, W/4]`` and ``[B, head_channels, h, w]`` → logits ``[B, num_classes, H/4,
        W/4]``."""
        low = self.project(low)
        features = F.interpolate(features, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(self.fuse(torch.cat([features, low], dim=1)))


class SegmentationNet(nn.Module):
    """``backbone`` → ``head`` (→ ``decoder`` with the stride-4 features, when given) → logits bilinearly
    upsampled to the input size: ``float [B, 3, H, W]`` → ``float [B, num_classes, H, W]``. With a decoder the
    head ends before its classifier (it gives features, the decoder classifies)."""

    def __init__(self, backbone: nn.Module, head: nn.Module, decoder: SkipDecoder | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel class logits at the input's size."""
        low, high = self.backbone(x)
        logits = self.head(high) if self.decoder is None else self.decoder(low, self.head(high))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def _without_classifier(head: nn.Module) -> tuple[nn.Module, int]:
    """``head`` up to (not including) its final 1×1 classifier, and the channels it then outputs. torchvision's
    FCNHead/DeepLabHead are Sequentials ending in the classifier (parameter names are kept: ``head.0…``)."""
    if isinstance(head, PyramidPoolingHead):
        channels = head.classifier.in_channels
        head.classifier = nn.Identity()
        return head, channels
    assert isinstance(head, nn.Sequential) and isinstance(head[-1], nn.Conv2d)
    channels = head[-1].in_channels
    del head[len(head) - 1]
    return head, channels


def _head(algorithm: str, in_channels: int, num_classes: int, output_stride: int) -> nn.Module:
    if algorithm == "fcn":
        return FCNHead(in_channels, num_classes)
    if algorithm == "deeplab":
        # DeepLab-v3's ASPP rates: 12/24/36 at output stride 8, 6/12/18 at 16.
        rates = [12, 24, 36] if output_stride == 8 else [6, 12, 18]
        return DeepLabHead(in_channels, num_classes, atrous_rates=rates)
    return PyramidPoolingHead(in_channels, num_classes)


def _imagenet_state(backbone: str, weights: Path | None) -> tuple[dict[str, torch.Tensor], str]:
    if weights is not None:
        return backbones.read_state_dict(weights), str(weights)
    if backbone in backbones.LITES:
        return backbones.efficientnet_lite_imagenet_state(backbone), f"the shipped {backbone} ImageNet weights"
    raise ConfigError(f"backbone={backbone} with use_pretrained_model=1 needs ImageNet weights from a local file: "
                      f"pass -p pretrained_weights=~/weights/{_WEIGHT_EXAMPLES[backbone]} (a torchvision state "
                      "dict, .pth or .safetensors), or -p backbone=efficientnet-lite0 (its weights install with "
                      "oculi), or -p use_pretrained_model=0 to start from random weights. Nothing is downloaded.")


def _load_backbone(module: nn.Module, state: dict[str, torch.Tensor], source: str, prefix: str) -> None:
    """Copy every tensor of ``module`` from ``state`` (keys without ``prefix``); name ``source`` when any is
    missing or has another shape."""
    own = {k: v for k, v in module.state_dict().items()}
    key = {k: k.removeprefix(prefix) for k in own}
    missing = [key[k] for k in own if key[k] not in state]
    wrong = [f"{key[k]} {tuple(state[key[k]].shape)} ≠ {tuple(v.shape)}" for k, v in own.items()
             if key[k] in state and state[key[k]].shape != v.shape]
    if missing or wrong:
        detail = "; ".join(([f"missing {', '.join(missing[:3])}"] if missing else []) + wrong[:3])
        raise ArtifactError(f"{source} does not fit this backbone ({len(missing)} tensors missing, {len(wrong)} "
                            f"with other shapes: {detail}). Check backbone and the file.")
    module.load_state_dict({k: state[key[k]] for k in own})


def build_segmentation(algorithm: str, backbone: str, num_classes: int, *, pretrained: bool = False,
                       pretrained_weights: Path | None = None, skip: bool = True) -> SegmentationNet:
    """A ``algorithm`` (fcn | psp | deeplab) network on ``backbone`` (resnet-50 | resnet-101 | efficientnet-lite0)
    with ``num_classes`` outputs.

    ``pretrained`` loads ImageNet weights into the backbone: from ``pretrained_weights`` (a torchvision
    ``resnet50``/``resnet101`` or timm ``efficientnet_lite0`` state dict) or, for efficientnet-lite0, the shipped
    weights. Raises :class:`ConfigError` when a ResNet needs a file that was not given, :class:`ArtifactError`
    when a file does not fit. The head is always freshly initialised (SageMaker: "the decoder is never
    pretrained"). ``skip`` adds the stride-4 :class:`SkipDecoder` (see the module docstring for why it is the
    default); ``skip=False`` is the plain head, as bundles trained before it have."""
    if algorithm not in SEGMENTATION_ALGORITHMS:
        raise ConfigError(f"algorithm got {algorithm!r}; expected one of {', '.join(SEGMENTATION_ALGORITHMS)}.")
    if backbone not in SEGMENTATION_BACKBONES:
        raise ConfigError(f"backbone got {backbone!r}; expected one of {', '.join(SEGMENTATION_BACKBONES)}.")
    if pretrained_weights is not None and not pretrained:
        raise ConfigError("pretrained_weights was given with use_pretrained_model=0; drop one of them.")
    lite = backbone in backbones.LITES
    body: nn.Module = LiteFeatures(backbone) if lite else DilatedResNet(int(backbone[7:]))
    if pretrained:
        state, source = _imagenet_state(backbone, pretrained_weights)
        _load_backbone(body, state, source, "body." if lite else "")
    head = _head(algorithm, body.out_channels, num_classes, body.output_stride)
    if not skip:
        return SegmentationNet(body, head)
    head, channels = _without_classifier(head)
    return SegmentationNet(body, head, SkipDecoder(body.low_channels, channels, num_classes))


def segmentation_input_spec(backbone: str, base_size: int, crop_size: int,
                            label_encoding: dict[str, Any] | None) -> dict[str, Any]:
    """Pre/post-processing a bundle records: images are rescaled so the long side is ``base_size`` (aspect kept),
    normalised with ``mean``/``std`` (ImageNet statistics for ResNets, 0.5/0.5 for efficientnet-lite0/1/2); the
    logits are scaled back to the original image size; predicted class indices are written in
    ``label_encoding`` (the training label map; None = class indices)."""
    lite = backbone in backbones.LITES
    return {"mode": "segmentation", "base_size": base_size, "crop_size": crop_size,
            "mean": list(backbones.LITE_MEAN if lite else backbones.IMAGENET_MEAN),
            "std": list(backbones.LITE_STD if lite else backbones.IMAGENET_STD),
            "ignore_index": 255, "label_encoding": label_encoding}
