"""Predictor for object-detection bundles: decode → SSD (resize, normalise, NMS) → boxes in the original image's
pixels → SageMaker's response shapes (normalised rows, or the training schema with scores) or a drawn image."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch

from oculi.algorithms.detection_networks import network_of
from oculi.artifacts import ModelBundle
from oculi.inference.calibration import Override, raw_score, scale_scores
from oculi.inference.predictor import Predictor


@dataclass
class Detections:
    """Detections of one image: ``boxes`` xyxy pixels of the original ``width × height`` image, highest score
    first; ``labels`` 0-based indices into ``classes``. ``calibration``: what a calibrated answer applied
    (temperature, per-class thresholds; see :mod:`oculi.inference.calibration`), None otherwise."""

    boxes: list[list[float]]
    scores: list[float]
    labels: list[int]
    classes: list[str]
    width: int
    height: int
    calibration: dict[str, Any] | None = None

    def sagemaker(self) -> dict[str, Any]:
        """SageMaker's ``application/json`` response: ``{"prediction": [[class_id, score, xmin, ymin, xmax,
        ymax], …]}`` with corners normalised to the image width/height."""
        rows = []
        for (x0, y0, x1, y1), score, label in zip(self.boxes, self.scores, self.labels, strict=True):
            rows.append([float(label), round(score, 6), *(round(min(max(v, 0.0), 1.0), 6) for v in
                                                          (x0 / self.width, y0 / self.height, x1 / self.width,
                                                           y1 / self.height))])
        return {"prediction": rows}

    def annotation(self) -> dict[str, Any]:
        """SageMaker's ``application/json;annotation=1`` form: the training schema in pixels, with scores."""
        annotations = [{"class_id": label, "score": round(score, 6), "left": round(x0, 2), "top": round(y0, 2),
                        "width": round(x1 - x0, 2), "height": round(y1 - y0, 2)}
                       for (x0, y0, x1, y1), score, label in zip(self.boxes, self.scores, self.labels, strict=True)]
        return {"image_size": [{"width": self.width, "height": self.height, "depth": 3}],
                "annotations": annotations}

    def filtered(self, min_score: float) -> Detections:
        """Only the detections scoring at least ``min_score`` (SageMaker applies no threshold by default)."""
        return self.kept([s >= min_score for s in self.scores])

    def kept(self, keep: list[bool]) -> Detections:
        """Only the detections whose ``keep`` flag is set (same order)."""
        rows = [i for i, flag in enumerate(keep) if flag]
        return replace(self, boxes=[self.boxes[i] for i in rows], scores=[self.scores[i] for i in rows],
                       labels=[self.labels[i] for i in rows])


class DetectionPredictor(Predictor):
    """Runs an object-detection bundle. ``predict`` returns :class:`Detections` per image. The runtime runs the
    detector's network part (its registered network's ``network``, see
    :mod:`oculi.algorithms.detection_networks`); resizing, normalisation, box decoding and NMS run in torch for
    every runtime (torchvision's own code)."""

    task: ClassVar[str] = "detection"
    default_batch_size: ClassVar[int] = 8

    def __init__(self, bundle: ModelBundle, device: str | torch.device = "cpu", runtime: str = "torch",
                 precision: str = "auto") -> None:
        super().__init__(bundle, device, runtime, precision)  # full-size decode: boxes in the original pixels
        self.kind = network_of(self.model)
        self.priors = self.kind.priors(self.model)

    def network(self) -> torch.nn.Module:
        """The detector without pre/post-processing: normalised ``float32 [B, 3, S, S]`` → its output tensors
        (SSD: ``(cls_logits, bbox_regression)``, see :class:`~oculi.algorithms.detection_models.SSDNetwork`)."""
        return network_of(self.model).network(self.model)

    @torch.no_grad()
    def network_input(self, images: list[torch.Tensor]) -> torch.Tensor:
        """``uint8 [3, H, W]`` images (any sizes) → the network's normalised ``float32 [B, 3, S, S]`` input:
        each stretched to ``S × S`` with an antialiased bilinear resize — as training's augmentation resizes —
        then the detector's own normalisation. (torchvision's detection transform alone resizes without
        antialiasing: on coco128 person at 256 px that cost 0.08 mAP@0.5 against the validation score.)"""
        width, height = self.model.transform.fixed_size
        stretched = [torch.nn.functional.interpolate(img.to(self.device)[None].float(), size=(height, width),
                                                     mode="bilinear", antialias=True, align_corners=False)[0] / 255.0
                     for img in images]
        return self.model.transform(stretched)[0].tensors

    @torch.inference_mode()
    def detect(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """``uint8 [3, H, W]`` images (any sizes) → detections with boxes in each image's own pixels
        (torchvision's labels: background = 0), exactly what the detector's forward returns in eval mode on
        :meth:`network_input`'s input."""
        sizes = [(int(img.shape[-2]), int(img.shape[-1])) for img in images]
        outputs = tuple(out.to(self.device) for out in self.runtime(self.network_input(images)))
        return self.kind.finish(self.model, self.priors, outputs, sizes)

    def thresholds_per_class(self) -> bool:
        """Detection thresholds each class's box scores."""
        return True

    def calibrate(self, result: Detections, threshold: Override = None) -> Detections:
        """``result`` with the temperature applied to every score (``σ(logit s / T)``) and only the boxes at or
        above their class's threshold kept; unchanged for a bundle without calibration and no override."""
        applied = self.applied(threshold)
        if applied is None:
            return result
        scaled = scale_scores(torch.tensor(result.scores, dtype=torch.float64), applied.temperature).tolist()
        out = replace(result, scores=[round(s, 6) for s in scaled], calibration=applied.to_json())
        if applied.thresholds is None:
            return out
        limits = [applied.thresholds.get(out.classes[c], 0.0) for c in out.labels]
        return out.kept([s >= t for s, t in zip(scaled, limits, strict=True)])  # compared before rounding

    def predict_batch(self, images: list[torch.Tensor], min_score: float = 0.0, **options: Any) -> list[Detections]:
        """``uint8 [3, H, W]`` images → one :class:`Detections` each, keeping those scoring at least
        ``min_score`` (a calibrated score when the bundle has a temperature; the scores stay uncalibrated until
        :meth:`calibrate`)."""
        if self.calibration is not None:
            min_score = raw_score(min_score, self.calibration.temperature)
        return [Detections(result["boxes"].float().cpu().tolist(), result["scores"].float().cpu().tolist(),
                           (result["labels"].cpu() - 1).tolist(), self.classes, int(image.shape[-1]),
                           int(image.shape[-2])).filtered(min_score)
                for image, result in zip(images, self.detect(images), strict=True)]

def draw(image: torch.Tensor, detections: Detections, path: Path) -> Path:
    """Write ``image`` (``uint8 [3, H, W]``) with labelled boxes to ``path`` (PNG/JPEG by extension)."""
    from torchvision.io import write_png
    from torchvision.utils import draw_bounding_boxes

    labels = [f"{detections.classes[c]} {s:.2f}" for c, s in zip(detections.labels, detections.scores, strict=True)]
    boxes = torch.tensor(detections.boxes, dtype=torch.float32).reshape(-1, 4)
    drawn = draw_bounding_boxes(image, boxes, labels=labels, width=2, colors="yellow") if len(boxes) else image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        from PIL import Image

        Image.fromarray(drawn.permute(1, 2, 0).numpy()).save(path, quality=95)
    else:
        write_png(drawn, str(path))
    return path
