"""Predictor for bundles of classification models (detection and segmentation add their own postprocessing)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from oculi.artifacts import ModelBundle, load_bundle
from oculi.data.image import decode_image, decode_image_bytes, pil_to_tensor
from oculi.data.transforms import classification_eval, normalize
from oculi.errors import DataError
from oculi.inference.runtimes import load_runtime

ImageInput = str | Path | bytes | Image.Image | torch.Tensor


@dataclass
class ClassPrediction:
    """Class probabilities of one image (``probabilities[i]`` ↔ ``labels[i]``)."""

    probabilities: list[float]
    labels: list[str]

    @property
    def predicted_index(self) -> int:
        """Index of the most probable class."""
        return max(range(len(self.probabilities)), key=self.probabilities.__getitem__)

    @property
    def predicted_label(self) -> str:
        """Name of the most probable class."""
        return self.labels[self.predicted_index]

    def top(self, k: int) -> list[tuple[str, float]]:
        """The ``k`` most probable ``(label, probability)`` pairs, best first."""
        order = sorted(range(len(self.probabilities)), key=self.probabilities.__getitem__, reverse=True)
        return [(self.labels[i], self.probabilities[i]) for i in order[:k]]

    def sagemaker(self, verbose: bool = False) -> dict[str, Any]:
        """SageMaker's response: ``{"prediction": [...]}``, or with ``verbose`` the
        ``probabilities``/``labels``/``predicted_label`` form."""
        if verbose:
            return {"probabilities": self.probabilities, "labels": self.labels,
                    "predicted_label": self.predicted_label}
        return {"prediction": self.probabilities}


class Predictor:
    """Runs a bundle's model on images. Build with :meth:`from_artifact`; call :meth:`predict`.

    ``runtime`` picks what runs the network — ``torch`` (eager PyTorch) or ``onnx`` (the bundle's ``model.onnx``
    in onnxruntime, CPU) — and ``precision`` the torch runtime's arithmetic: ``auto`` (bf16 autocast +
    channels_last on a CPU with native bf16, float32 otherwise), ``float32`` or ``bfloat16``. Decoding,
    preprocessing and postprocessing are the same for every runtime."""

    def __init__(self, bundle: ModelBundle, device: str | torch.device = "cpu", runtime: str = "torch",
                 precision: str = "auto") -> None:
        self._load(bundle, device, runtime, precision)
        self.min_side: int | None = int(self.spec["resize"])  # large JPEGs may decode at reduced scale
        self.transform = classification_eval(int(self.spec["resize"]), (int(self.spec["height"]),
                                                                         int(self.spec["width"])))

    def _load(self, bundle: ModelBundle, device: str | torch.device, runtime: str, precision: str) -> None:
        """Set what every task's predictor has: the bundle, its model on ``device``, its input spec and the
        runtime that runs :meth:`network`."""
        self.bundle = bundle
        self.device = torch.device(device)
        self.model = bundle.model.to(self.device).eval()
        self.spec = bundle.meta["input"]
        self.runtime = load_runtime(bundle, self.network(), runtime, self.device, precision)

    def network(self) -> torch.nn.Module:
        """The part of the model a runtime runs (and ``oculi export`` writes to ONNX): here the whole classifier,
        normalised ``float32 [B, 3, H, W]`` → logits ``[B, num_classes]``."""
        return self.model

    @classmethod
    def from_artifact(cls, path: str | Path, device: str | torch.device = "cpu", runtime: str = "torch",
                      precision: str = "auto") -> Predictor:
        """Load a bundle folder, a job output folder or a ``model.tar.gz``; detection bundles give a
        :class:`~oculi.inference.detection.DetectionPredictor`, segmentation bundles a
        :class:`~oculi.inference.segmentation.SegmentationPredictor`.

        ``runtime``: ``torch`` (default) or ``onnx`` (needs ``model.onnx`` from ``oculi export MODEL --format
        onnx``; CPU only). ``precision`` (torch runtime): ``auto`` (default; bf16 autocast + channels_last where
        the CPU has native bf16), ``float32`` or ``bfloat16``. Raises :class:`~oculi.errors.ConfigError` for
        unknown or conflicting values and :class:`~oculi.errors.ArtifactError` for a missing or stale
        ``model.onnx``."""
        return cls.from_bundle(load_bundle(Path(path)), device, runtime, precision)

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, device: str | torch.device = "cpu", runtime: str = "torch",
                    precision: str = "auto") -> Predictor:
        """The predictor of the task of an already loaded ``bundle`` (see :meth:`from_artifact`)."""
        if bundle.meta.get("task") == "detection":
            from oculi.inference.detection import DetectionPredictor

            return DetectionPredictor(bundle, device, runtime, precision)
        if bundle.meta.get("task") == "segmentation":
            from oculi.inference.segmentation import SegmentationPredictor

            return SegmentationPredictor(bundle, device, runtime, precision)
        return Predictor(bundle, device, runtime, precision)

    @property
    def classes(self) -> list[str]:
        """Class names of the model."""
        return self.bundle.classes

    def to_tensor(self, image: ImageInput) -> torch.Tensor:
        """Decode any supported input to ``uint8 [3, H, W]``: a path, encoded bytes, a PIL image or a tensor."""
        if isinstance(image, torch.Tensor):
            if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
                raise DataError(f"expected a uint8 [3, H, W] tensor, got {image.dtype} {tuple(image.shape)}")
            return image
        if isinstance(image, Image.Image):
            return pil_to_tensor(image)
        if isinstance(image, bytes):
            return decode_image_bytes(image, min_side=self.min_side)
        return decode_image(Path(image), min_side=self.min_side)

    def preprocess(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Images → a ``uint8 [B, 3, H, W]`` batch resized and centre-cropped to the model's input size."""
        return torch.stack([self.transform(self.to_tensor(img)) for img in images])

    @torch.inference_mode()
    def probabilities_of_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """Preprocessed ``uint8 [B, 3, H, W]`` crops → class probabilities ``float32 [B, num_classes]`` on the
        CPU (normalised on the model's device; softmax, or sigmoid for multi-label models)."""
        inputs = normalize(batch.to(self.device), tuple(self.spec["mean"]), tuple(self.spec["std"]))
        logits = self.runtime(inputs)[0]
        probs = torch.sigmoid(logits) if self.spec.get("output") == "sigmoid" else torch.softmax(logits, dim=1)
        return probs.cpu()

    def probabilities(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """Class probabilities ``float32 [B, num_classes]`` of images in any supported input form."""
        return self.probabilities_of_batch(self.preprocess(images))

    def predict(self, images: ImageInput | Iterable[ImageInput], batch_size: int = 32) -> Any:
        """Predict one image (returns a :class:`ClassPrediction`) or a list of images (returns a list)."""
        single = isinstance(images, (str, Path, bytes, Image.Image, torch.Tensor))
        items = [images] if single else list(images)  # type: ignore[list-item]
        out: list[ClassPrediction] = []
        for start in range(0, len(items), batch_size):
            probs = self.probabilities(items[start:start + batch_size])
            out += [ClassPrediction([round(float(p), 6) for p in row], self.classes) for row in probs]
        return out[0] if single else out
