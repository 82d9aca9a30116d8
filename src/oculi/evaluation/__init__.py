"""Evaluation: run a model bundle over labelled data and measure it, optionally writing a report folder. One
evaluator per task (:mod:`~oculi.evaluation.classification`, :mod:`~oculi.evaluation.detection`,
:mod:`~oculi.evaluation.segmentation`); :func:`oculi.evaluate` picks the one of the bundle's task::

    import oculi
    result = oculi.evaluate("models/ants", "hymenoptera_data/val", output=Path("reports/ants"), top_k=2)
    result.metrics["accuracy"]
"""

from oculi.evaluation.detection import DetectionEvaluation
from oculi.evaluation.report import EvaluationResult
from oculi.evaluation.segmentation import SegmentationEvaluation

__all__ = ["DetectionEvaluation", "EvaluationResult", "SegmentationEvaluation"]
