"""Inference: :class:`Predictor` turns a model bundle into predictions (decode → preprocess → model →
postprocess), reading every preprocessing setting and class name from the bundle."""

from oculi.inference.detection import DetectionPredictor, Detections
from oculi.inference.predictor import ClassPrediction, Predictor
from oculi.inference.segmentation import SegmentationPredictor, SegmentationResult

__all__ = ["ClassPrediction", "DetectionPredictor", "Detections", "Predictor", "SegmentationPredictor",
           "SegmentationResult"]
