"""Predictor for image-classification bundles: decode → resize + centre crop → network → softmax (or sigmoid for
multi-label models) → :class:`ClassPrediction` (SageMaker's ``prediction`` / verbose response shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from oculi.artifacts import ModelBundle
from oculi.data.transforms import classification_eval, normalize
from oculi.inference.predictor import ImageInput, Predictor


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


class ClassificationPredictor(Predictor):
    """Runs an image-classification bundle; ``predict`` returns a :class:`ClassPrediction` per image."""

    task: ClassVar[str] = "classification"
    default_batch_size: ClassVar[int] = 32

    def __init__(self, bundle: ModelBundle, device: str | torch.device = "cpu", runtime: str = "torch",
                 precision: str = "auto") -> None:
        super().__init__(bundle, device, runtime, precision)
        self.transform = classification_eval(int(self.spec["resize"]), (int(self.spec["height"]),
                                                                         int(self.spec["width"])))

    def decode_min_side(self) -> int | None:
        """Large JPEGs may decode at reduced scale down to the resize side."""
        return int(self.spec["resize"])

    def network(self) -> torch.nn.Module:
        """The whole classifier: normalised ``float32 [B, 3, H, W]`` → logits ``[B, num_classes]``."""
        return self.model

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

    def predict_batch(self, images: list[torch.Tensor], **options: Any) -> list[ClassPrediction]:
        """``uint8 [3, H, W]`` images → one :class:`ClassPrediction` each (probabilities rounded to 6 digits)."""
        probs = self.probabilities(images)
        return [ClassPrediction([round(float(p), 6) for p in row], self.classes) for row in probs]
