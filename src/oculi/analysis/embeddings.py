"""Embeddings from a model bundle's own backbone: the penultimate features of its network, L2-normalised
``float32 [D]`` per image (or per box crop). What "penultimate" means differs per task and is the task contract's
``embedding_tap`` hook (classification: the input of the final linear layer; detection and segmentation:
the deepest backbone feature map, averaged over space). Images are stretched to the network's input size and
normalised with the bundle's mean/std. Vectors are cached per file fingerprint, region and bundle."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oculi.analysis.cache import VectorCache, fingerprint
from oculi.errors import ArtifactError, DataError

Box = tuple[float, float, float, float]  # xyxy absolute pixels


Tap = tuple[nn.Module, Callable[[tuple[Any, ...], Any], torch.Tensor]]
"""A task's embedding point: the module whose forward call carries the penultimate features, and how to get
``[B, D]`` from that call's ``(inputs, output)``."""


def last_linear_tap(network: nn.Module) -> Tap:
    """Classifiers: the input of ``network``'s last ``nn.Linear``."""
    linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ArtifactError("the network has no linear classifier layer to take penultimate features from.")
    return linears[-1], lambda inputs, _output: inputs[0].flatten(1)


def backbone_tap(network: nn.Module) -> Tap:
    """Detectors and segmenters: ``network.backbone``'s deepest feature map averaged over space (backbones return a
    dict, list or tuple of maps, finest first)."""

    def pooled(_inputs: tuple[Any, ...], features: Any) -> torch.Tensor:
        if isinstance(features, dict):
            features = list(features.values())
        deepest = features[-1] if isinstance(features, list | tuple) else features
        return deepest.float().mean(dim=(2, 3))

    return network.backbone, pooled


class _Reached(Exception):
    """Raised by :func:`tap_features`'s hook: the features are in, the rest of the forward pass is not needed."""


def tap_features(network: nn.Module, images: torch.Tensor, tap: Tap) -> torch.Tensor:
    """Normalised ``float32 [B, 3, H, W]`` → the tap's features ``[B, D]``, running ``network`` only as far as the
    tapped module."""
    module, reduce = tap
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        captured.append(reduce(inputs, output))
        raise _Reached

    handle = module.register_forward_hook(hook)
    try:
        network(images)
    except _Reached:
        pass
    finally:
        handle.remove()
    if not captured:
        raise ArtifactError("the network's forward pass never reached its embedding layer.")
    return captured[-1]


@contextmanager
def tapped(tap: Tap) -> Iterator[list[torch.Tensor]]:
    """While inside, every forward call of the tap's module (a predictor's own pass, at its own input size)
    appends its L2-normalised ``float32 [B, D]`` features to the yielded list: embeddings without a second pass."""
    module, reduce = tap
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(
        lambda _m, inputs, output: captured.append(F.normalize(reduce(inputs, output).float(), dim=1).cpu()))
    try:
        yield captured
    finally:
        handle.remove()


def _input_size(spec: dict[str, Any]) -> tuple[int, int]:
    if "height" in spec:
        return int(spec["height"]), int(spec["width"])
    return int(spec["crop_size"]), int(spec["crop_size"])


class Embedder:
    """Embeds images with a loaded predictor's network (see the module docstring); ``dimension`` is ``D``."""

    def __init__(self, predictor: Any, batch_size: int = 16) -> None:
        from oculi.tasks import task_of

        self.predictor = predictor
        self.contract = task_of(predictor)
        if self.contract.embedding_tap is None:
            raise ArtifactError(f"{predictor.bundle.path}: {self.contract.title} models have no embedding hook.")
        self.network = predictor.network()
        self.tap = self.contract.embedding_tap(self.network)
        self.size = _input_size(predictor.spec)
        self.mean = torch.tensor(predictor.spec["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(predictor.spec["std"], dtype=torch.float32).view(1, 3, 1, 1)
        self.batch_size = batch_size
        weights = Path(predictor.bundle.path) / "weights.safetensors"
        ident = fingerprint(weights) if weights.exists() else str(predictor.bundle.path)
        self.key = hashlib.sha1(ident.encode()).hexdigest()[:16]
        self.dimension = int(self.embed_tensors([torch.zeros(3, *self.size, dtype=torch.uint8)]).shape[1])

    @classmethod
    def from_bundle(cls, path: str | Path, batch_size: int = 16) -> Embedder:
        """Load a bundle folder, job output folder or ``model.tar.gz`` (CPU, float32) and embed with it."""
        from oculi.tasks import load_predictor

        return cls(load_predictor(path, precision="float32"), batch_size)

    @torch.inference_mode()
    def embed_tensors(self, images: Sequence[torch.Tensor]) -> np.ndarray:
        """``uint8 [3, H, W]`` images (any sizes) → L2-normalised ``float32 [N, D]``."""
        out = []
        for start in range(0, len(images), self.batch_size):
            chunk = [F.interpolate(img[None].float(), size=self.size, mode="bilinear", antialias=True,
                                   align_corners=False)[0] for img in images[start:start + self.batch_size]]
            batch = (torch.stack(chunk) / 255 - self.mean) / self.std
            feats = tap_features(self.network, batch.to(self.predictor.device), self.tap)
            out.append(F.normalize(feats.float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, getattr(self, "dimension", 0)), np.float32)

    def embed_items(self, items: Sequence[tuple[Path, Box | None]], *, cache: bool = True,
                    advance: Callable[[int], None] | None = None) -> np.ndarray:
        """Embed ``(image file, box or None)`` items — a box embeds that crop — as ``float32 [N, D]``, reading
        and filling the per-fingerprint cache. A file that cannot be decoded raises
        :class:`~oculi.errors.DataError` naming it."""
        store = VectorCache(f"embeddings-{self.key}", enabled=cache)
        vectors: list[np.ndarray | None] = []
        missing: dict[Path, list[int]] = {}
        keys = []
        for n, (path, box) in enumerate(items):
            key = fingerprint(path) + ("" if box is None else "|" + ",".join(f"{v:.1f}" for v in box))
            keys.append(key)
            hit = store.get(key)
            vectors.append(hit)
            if hit is None:
                missing.setdefault(Path(path), []).append(n)
        if advance:
            advance(len(items) - sum(len(v) for v in missing.values()))
        pending: list[tuple[int, torch.Tensor]] = []

        def flush() -> None:
            done = self.embed_tensors([t for _, t in pending])
            for (n, _), vec in zip(pending, done, strict=True):
                vectors[n] = vec
                store.put(keys[n], vec)
            if advance:
                advance(len(pending))
            pending.clear()

        for path, indices in missing.items():
            image = self.predictor.to_tensor(path)
            for n in indices:
                pending.append((n, crop(image, items[n][1])))
            if len(pending) >= self.batch_size:
                flush()
        if pending:
            flush()
        store.save()
        if not vectors:
            return np.zeros((0, self.dimension), np.float32)
        return np.stack([v for v in vectors if v is not None])


def crop(image: torch.Tensor, box: Box | None) -> torch.Tensor:
    """``image[:, y0:y1, x0:x1]`` for an ``xyxy`` pixel box (clamped to the image, at least 1 pixel); the whole
    image for None. Raises :class:`~oculi.errors.DataError` for a box outside the image."""
    if box is None:
        return image
    height, width = image.shape[-2:]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(width, max(x0 + 1, int(round(box[2])))), min(height, max(y0 + 1, int(round(box[3]))))
    if x0 >= width or y0 >= height:
        raise DataError(f"box {list(box)} lies outside the {width}×{height} image; give x0,y0,x1,y1 in its pixels.")
    return image[:, y0:y1, x0:x1]
