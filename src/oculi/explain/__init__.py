"""What the model sees: class activation maps for every task (Grad-CAM, Grad-CAM++, LayerCAM, EigenCAM from the
``grad-cam`` package; the per-task targets are the task contracts' ``explanation_target`` adapters), each with a
faithfulness score, plus first-layer feature maps. The CLI's ``oculi explain``, ``oculi predict --explain``,
``oculi transform --explain`` and the endpoints' ``/explain`` all call :class:`Explainer`.

Explanations always run in float32 on the predictor's own module, whatever precision or runtime the predictor
serves with; every answer says so (``precision``, ``serving_precision``)."""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oculi.errors import ConfigError
from oculi.explain.cam import CHOICES, DEFAULT_METHOD, FRACTIONS, METHODS, Explanation, explain_prepared, find_layer
from oculi.explain.render import grid, overlay, png_bytes


@dataclass
class ImageExplanation:
    """The explanations of one image: ``view`` ``uint8 [3, H, W]`` the image the maps cover (classification: the
    centre crop the model saw; detection and segmentation: the original image), one :class:`Explanation` per
    target."""

    image: str
    task: str
    method: str
    layer: str
    view: torch.Tensor
    explanations: list[Explanation]
    serving_precision: str

    def overlay_png(self, index: int) -> bytes:
        """The ``index``-th map blended over the view, as PNG bytes (detection: the box outlined)."""
        item = self.explanations[index]
        return png_bytes(overlay(self.view, item.saliency, item.target.box))

    def summary(self) -> dict[str, Any]:
        """The JSON head: image, task, method, layer, precisions, the view's size."""
        return {"image": self.image, "task": self.task, "method": self.method, "layer": self.layer,
                "precision": "float32", "serving_precision": self.serving_precision,
                "width": int(self.view.shape[-1]), "height": int(self.view.shape[-2])}

    def response(self) -> dict[str, Any]:
        """For HTTP answers: the summary and per target its description, faithfulness and the overlay PNG in
        base64."""
        return {**self.summary(), "explanations": [
            {"target": item.target.describe, "faithfulness": item.faithfulness,
             "overlay_png_base64": base64.b64encode(self.overlay_png(n)).decode("ascii")}
            for n, item in enumerate(self.explanations)]}

    def write(self, folder: Path, stem: str | None = None) -> Path:
        """Write ``<stem>-<target>.png`` (overlay) and ``<stem>-<target>.npy`` (``float32 [H, W]`` map in 0–1 over
        the view) per target and ``<stem>.explain.json`` into ``folder`` (each file written to a temporary name and
        renamed); returns the JSON's path."""
        folder.mkdir(parents=True, exist_ok=True)
        stem = stem or Path(self.image).stem
        entries = []
        for n, item in enumerate(self.explanations):
            picture, raw = folder / f"{stem}-{item.target.name}.png", folder / f"{stem}-{item.target.name}.npy"
            _atomic(picture, self.overlay_png(n))
            with _Temp(raw) as temp, open(temp, "wb") as handle:
                np.save(handle, item.saliency.astype(np.float32))
            entries.append({"target": item.target.describe, "faithfulness": item.faithfulness,
                            "overlay": picture.name, "map": raw.name})
        path = folder / f"{stem}.explain.json"
        _atomic(path, json.dumps({**self.summary(), "explanations": entries}, indent=2).encode())
        return path


class _Temp:
    """Context manager giving a temporary path beside ``path`` that becomes ``path`` on success."""

    def __init__(self, path: Path) -> None:
        self.path, self.temp = path, path.with_name(f".{path.name}.tmp")

    def __enter__(self) -> Path:
        return self.temp

    def __exit__(self, kind: Any, *_: Any) -> None:
        if kind is None:
            os.replace(self.temp, self.path)
        else:
            self.temp.unlink(missing_ok=True)


def _atomic(path: Path, data: bytes) -> None:
    with _Temp(path) as temp:
        temp.write_bytes(data)


class Explainer:
    """Explains a loaded predictor's results with ``method`` (one of :data:`METHODS`, or ``auto``: the task's
    measured default — Grad-CAM for classification and segmentation, LayerCAM for detection) at ``layer`` (default: the
    task adapter's choice — the last feature map the answer is computed from). ``faithfulness`` runs the deletion
    test (nine more forward passes per target).

    >>> explainer = Explainer(oculi.load_model("model/"), method="gradcam")
    >>> result = explainer.explain("cat.jpg")          # ImageExplanation
    >>> result.write(Path("explained"))"""

    def __init__(self, predictor: Any, method: str = DEFAULT_METHOD, layer: str | None = None,
                 faithfulness: bool = True) -> None:
        from oculi.tasks import task_of

        if method not in CHOICES:
            raise ConfigError(f"--method got {method!r}; expected one of {', '.join(CHOICES)}.")
        contract = task_of(predictor)
        if contract.explanation_target is None:
            raise ConfigError(f"{contract.title} models cannot be explained yet.")
        self.predictor = predictor
        self.task = contract.name
        self.adapter = contract.explanation_target(predictor)
        self.method = self.adapter.default_method if method == DEFAULT_METHOD else method
        self.layer, self.measure = layer, faithfulness
        if layer is not None:
            find_layer(self.adapter.model, layer)

    def explain(self, image: Any, targets: list[str] | None = None, min_score: float = 0.0,
                name: str | None = None) -> ImageExplanation:
        """Explain one image (a path, bytes, a PIL image or a ``uint8 [3, H, W]`` tensor) for ``targets`` (class
        names; default the task's: top-1 class, top boxes above ``min_score``, every class present)."""
        tensor = self.predictor.to_tensor(image)
        prepared = self.adapter.prepare(tensor)
        if self.layer is None:  # the task's choice, found once (it runs the model with hooks on every module)
            self.layer = self.adapter.default_layer(prepared)
        layer, found = explain_prepared(self.adapter, prepared, method=self.method, layer=self.layer,
                                        request=targets, min_score=min_score, measure=self.measure)
        precision = f"{self.predictor.runtime.name} {self.predictor.runtime.precision}"
        label = name or (str(image) if isinstance(image, str | Path) else "image")
        return ImageExplanation(label, self.task, self.method, layer, prepared.view.cpu(), found, precision)

    def feature_maps(self, image: Any, layer: str | None = None) -> tuple[str, Any, Any]:
        """``(layer name, feature-map grid, filter grid)`` of the first convolution layer (or ``layer``): its
        outputs for ``image`` (up to 64 channels) and its weights (RGB tiles when it takes the 3 image channels,
        else each filter's mean over its inputs) as PIL images."""
        from torch import nn

        model = self.adapter.model
        if layer is None:
            layer = next((name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)
            if layer is None:
                raise ConfigError("this model has no convolution layer; pass --feature-maps LAYER.")
        module = find_layer(model, layer)
        prepared = self.adapter.prepare(self.predictor.to_tensor(image))
        captured: list[torch.Tensor] = []
        hook = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
        try:
            with torch.no_grad():
                self.adapter.forward(prepared.inputs, prepared)
        finally:
            hook.remove()
        maps = grid(captured[0][0, :64].float().cpu().numpy())
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.ndim != 4:
            return layer, maps, None
        weight = weight.detach().float().cpu()[:64]
        tiles = weight.permute(0, 2, 3, 1).numpy() if weight.shape[1] == 3 else weight.mean(1).numpy()
        return layer, maps, grid(tiles)


def explain(model: Any, images: list[Any], *, output: Path | None = None, method: str = DEFAULT_METHOD,
            targets: list[str] | None = None, min_score: float = 0.0, layer: str | None = None,
            feature_maps: str | None = None, faithfulness: bool = True) -> list[ImageExplanation]:
    """Explain ``images`` with a model (a bundle path or a loaded predictor); with ``output``, write each image's
    overlays, raw maps and JSON there (and with ``feature_maps`` — ``"first"`` or a layer name — the layer's
    feature-map and filter grids). Loads a path in float32."""
    from oculi.tasks import load_predictor

    predictor = load_predictor(model, precision="float32") if isinstance(model, str | Path) else model
    explainer = Explainer(predictor, method, layer, faithfulness)
    results = []
    for image in images:
        result = explainer.explain(image, targets, min_score)
        results.append(result)
        if output is not None:
            result.write(Path(output), Path(result.image).stem)
            if feature_maps is not None:
                name, maps, filters = explainer.feature_maps(image, None if feature_maps == "first" else feature_maps)
                stem = Path(result.image).stem
                maps.save(Path(output) / f"{stem}-feature-maps.png")
                if filters is not None:
                    filters.save(Path(output) / f"{stem}-filters.png")
    return results


__all__ = ["CHOICES", "DEFAULT_METHOD", "FRACTIONS", "METHODS", "Explainer", "ImageExplanation", "explain"]
