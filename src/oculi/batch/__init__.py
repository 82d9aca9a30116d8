"""Batch transform (SageMaker's ``CreateTransformJob``, locally): :func:`transform` runs a model bundle over a
folder of images, one image or an augmented manifest and writes one ``<name>.out`` per image (or one JSON-lines
file), resumable, with bad images listed in ``errors.jsonl``, as a job in the store.

Importing this package does no I/O and loads no model."""

from oculi.batch.job import TransformSummary, describe_summary, transform

__all__ = ["TransformSummary", "describe_summary", "transform"]
