"""Class activation maps for any task: one forward pass with a hook on the explained layer, one gradient per
target, the map computed by the ``grad-cam`` package's method (Grad-CAM, Grad-CAM++, LayerCAM, EigenCAM), and a
faithfulness score — how much the target's score falls when the map's most salient pixels are removed, against
removing as many random pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from oculi.errors import ConfigError
from oculi.explain.targets import Prepared, Target, resize_map

METHODS = ("gradcam", "gradcam++", "layercam", "eigencam")
DEFAULT_METHOD = "auto"  # each task adapter's ``default_method``, chosen by measurement (see oculi.explain.targets)
CHOICES = (DEFAULT_METHOD, *METHODS)
FRACTIONS = (0.1, 0.2, 0.5)  # shares of the input's pixels removed for the faithfulness score
RANDOM_REPEATS = 2  # random removals averaged per fraction


def cam_method(name: str, model: nn.Module, layer: nn.Module) -> Any:
    """The ``grad-cam`` package's object for method ``name`` (its hooks released: oculi runs the passes and only
    borrows the method's arithmetic, ``get_cam_image``)."""
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM

    classes = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "layercam": LayerCAM, "eigencam": EigenCAM}
    if name not in classes:
        raise ConfigError(f"--method got {name!r}; expected one of {', '.join(METHODS)}.")
    method = classes[name](model, [layer])
    method.activations_and_grads.release()
    return method


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` of ``model``; an unknown name lists the closest names."""
    from oculi.registry import closest

    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    near = closest(name, [n for n in modules if n])
    hint = f" Did you mean {', '.join(repr(n) for n in near)}?" if near else ""
    raise ConfigError(f"--layer {name!r} is not a layer of this model.{hint}")


@dataclass
class Explanation:
    """One target's map: ``saliency`` ``float32 [H, W]`` in 0–1 over the view image, ``faithfulness`` its score
    (see :func:`faithfulness`), ``target`` the adapter's :class:`Target`."""

    target: Target
    saliency: np.ndarray
    faithfulness: dict[str, Any]


def normalised(cam: torch.Tensor) -> torch.Tensor:
    """Clip below 0 and scale to 0–1 (an all-zero map stays zero)."""
    cam = cam.clamp(min=0)
    top = cam.max()
    return cam / top if float(top) > 0 else cam


def faithfulness(adapter: Any, prepared: Prepared, target: Target, saliency: torch.Tensor,
                 fractions: tuple[float, ...] = FRACTIONS, repeats: int = RANDOM_REPEATS, seed: int = 0
                 ) -> dict[str, Any]:
    """Deletion test of ``saliency`` (``[h, w]`` at the network input's size): for each fraction, the target's
    score with that share of the most salient input pixels removed (set to the normalised mean, 0) against the
    mean score with as many random pixels removed. ``score`` = mean over fractions of ``(random − salient) /
    original``: above 0 the map points at pixels the target needs, about 0 it is no better than chance."""
    inputs = prepared.inputs
    h, w = inputs.shape[-2:]
    order = torch.argsort(saliency.flatten().to(inputs.device), descending=True)
    generator = torch.Generator().manual_seed(seed)
    masks = []
    for fraction in fractions:
        count = round(fraction * h * w)
        keep = torch.ones(h * w, dtype=torch.bool, device=inputs.device)
        keep[order[:count]] = False
        masks.append(keep)
        for _ in range(repeats):
            keep = torch.ones(h * w, dtype=torch.bool, device=inputs.device)
            keep[torch.randperm(h * w, generator=generator)[:count].to(inputs.device)] = False
            masks.append(keep)
    batch = torch.cat([inputs, inputs.repeat(len(masks), 1, 1, 1) * torch.stack(masks).view(-1, 1, h, w)])
    with torch.no_grad():
        scores = target.score(adapter.forward(batch, prepared)).float().cpu()
    original = float(scores[0])
    salient = [float(scores[1 + i * (repeats + 1)]) for i in range(len(fractions))]
    random = [float(scores[2 + i * (repeats + 1):(i + 1) * (repeats + 1) + 1].mean()) for i in range(len(fractions))]
    gain = [(r - s) / max(original, 1e-6) for s, r in zip(salient, random, strict=True)]
    return {"score": round(float(np.mean(gain)), 4), "original_score": round(original, 6),
            "fractions": list(fractions), "salient_removed": [round(v, 6) for v in salient],
            "random_removed": [round(v, 6) for v in random], "removed_pixels_set_to": "mean (0 after normalising)"}


def explain_prepared(adapter: Any, prepared: Prepared, *, method: str = DEFAULT_METHOD, layer: str | None = None,
                     request: list[str] | None = None, min_score: float = 0.0, measure: bool = True
                     ) -> tuple[str, list[Explanation]]:
    """Explain one prepared image: ``(layer name, [Explanation per target])``. One forward pass in float32 with
    gradients; one gradient per target (none for EigenCAM, which is the same for every target). ``auto``: the
    adapter's ``default_method``."""
    method = adapter.default_method if method == DEFAULT_METHOD else method
    model = adapter.model
    layer = layer or adapter.default_layer(prepared)
    module = find_layer(model, layer)
    cam = cam_method(method, model, module)
    captured: list[torch.Tensor] = []
    # only this pass's output (it needs a gradient): a server may run the same module for other requests
    hook = module.register_forward_hook(
        lambda _m, _i, out: captured.append(out) if getattr(out, "requires_grad", False) else None)
    try:
        with torch.enable_grad():
            inputs = prepared.inputs.detach().clone().requires_grad_(True)
            outputs = adapter.forward(inputs, prepared)
            activation = captured[-1] if captured else None
            if not isinstance(activation, torch.Tensor) or activation.ndim != 4:
                raise ConfigError(f"layer {layer!r} gives no [B, C, h, w] feature map with a gradient; pass --layer "
                                  "with a convolution or block name.")
            targets = adapter.targets(outputs, prepared, request, min_score)
            found = []
            for target in targets:
                if method == "eigencam":
                    grads = torch.zeros_like(activation)
                else:
                    grads, = torch.autograd.grad(target.value(outputs), activation, retain_graph=True,
                                                 allow_unused=False)
                acts = activation.detach().float().cpu().numpy()
                image = cam.get_cam_image(inputs, module, None, acts, grads.detach().float().cpu().numpy(), False)
                small = normalised(torch.from_numpy(np.asarray(image[0], dtype=np.float32)))
                at_input = resize_map(small, tuple(prepared.inputs.shape[-2:]))
                score = faithfulness(adapter, prepared, target, at_input) if measure else {}
                view = normalised(resize_map(small, tuple(prepared.view.shape[-2:])))
                found.append(Explanation(target, view.numpy().astype(np.float32), score))
    finally:
        hook.remove()
    return layer, found
