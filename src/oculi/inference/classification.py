"""Predictor for image-classification bundles: decode → resize + centre crop → network → softmax (or sigmoid for
multi-label models) → :class:`ClassPrediction` (SageMaker's ``prediction`` / verbose response shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch

from oculi.artifacts import ModelBundle
from oculi.data.transforms import classification_eval, normalize
from oculi.inference.calibration import Override, scale_distribution, scale_scores
from oculi.inference.predictor import ImageInput, Predictor


@dataclass
class ClassPrediction:
    """Class probabilities of one image (``probabilities[i]`` ↔ ``labels[i]``). A calibrated answer (see
    :mod:`oculi.inference.calibration`) also has ``calibration`` (what was applied), and ``predicted_labels``
    (multi-label: the classes at or above their thresholds) or ``unsure`` (single-label: the top probability is
    below the unsure threshold)."""

    probabilities: list[float]
    labels: list[str]
    predicted_labels: list[str] | None = None
    unsure: bool | None = None
    calibration: dict[str, Any] | None = None

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
                    "predicted_label": self.predicted_label, **self.decisions()}
        return {"prediction": self.probabilities}

    def decisions(self) -> dict[str, Any]:
        """The calibrated answer's extra keys (``predicted_labels``, ``unsure``, ``calibration``) that are set."""
        extra = {"predicted_labels": self.predicted_labels, "unsure": self.unsure, "calibration": self.calibration}
        return {key: value for key, value in extra.items() if value is not None}


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

    def thresholds_per_class(self) -> bool:
        """Multi-label models threshold each class; single-label ones the top probability ("unsure")."""
        return self.spec.get("output") == "sigmoid"

    def calibrate(self, result: ClassPrediction, threshold: Override = None) -> ClassPrediction:
        """``result`` with the temperature applied to its probabilities (softmax: ``softmax(log p / T)``;
        sigmoid: ``σ(logit p / T)``) and ``predicted_labels`` (multi-label) or ``unsure`` (single-label) decided
        by the thresholds; unchanged for a bundle without calibration and no override."""
        applied = self.applied(threshold)
        if applied is None:
            return result
        probs = torch.tensor(result.probabilities, dtype=torch.float64)
        if self.thresholds_per_class():
            probs = scale_scores(probs, applied.temperature)
        else:
            probs = scale_distribution(probs, applied.temperature)
        scaled = probs.tolist()  # thresholds compare the unrounded probabilities
        out = replace(result, probabilities=[round(p, 6) for p in scaled], calibration=applied.to_json())
        if applied.thresholds is not None:
            out.predicted_labels = [name for name, p in zip(out.labels, scaled, strict=True)
                                    if p >= applied.thresholds.get(name, 0.5)]
        if applied.unsure is not None:
            out.unsure = max(scaled) < applied.unsure
        return out

    def predict_batch(self, images: list[torch.Tensor], **options: Any) -> list[ClassPrediction]:
        """``uint8 [3, H, W]`` images → one :class:`ClassPrediction` each (probabilities rounded to 6 digits)."""
        probs = self.probabilities(images)
        return [ClassPrediction([round(float(p), 6) for p in row], self.classes) for row in probs]
