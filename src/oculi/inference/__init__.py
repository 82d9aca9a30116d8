"""Inference: a :class:`Predictor` turns a model bundle into predictions (decode → preprocess → model →
postprocess), reading every preprocessing setting and class name from the bundle. One subclass per task; load any
bundle with :func:`oculi.load_model` (which looks the bundle's task up in :mod:`oculi.tasks`)."""

from oculi.inference.classification import ClassificationPredictor, ClassPrediction
from oculi.inference.detection import DetectionPredictor, Detections
from oculi.inference.predictor import Predictor
from oculi.inference.segmentation import SegmentationPredictor, SegmentationResult

__all__ = ["ClassPrediction", "ClassificationPredictor", "DetectionPredictor", "Detections", "Predictor",
           "SegmentationPredictor", "SegmentationResult"]
