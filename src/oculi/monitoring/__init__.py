"""Model monitoring for images, in SageMaker Model Monitor's file shapes: :func:`baseline` (statistics and
suggested constraints of the training data, the model's predictions and embeddings), :func:`check` (a drift check
of captured traffic: KS, chi-squared and MMD tests, Holm-corrected, ``constraint_violations.json``). Built on the
shared analysis layer (:mod:`oculi.analysis`) and the task contracts' ``monitoring_statistics`` hooks."""

from oculi.monitoring.monitor import baseline, check, export_for_labeling, quality, read_baseline, read_ground_truth

__all__ = ["baseline", "check", "export_for_labeling", "quality", "read_baseline", "read_ground_truth"]
