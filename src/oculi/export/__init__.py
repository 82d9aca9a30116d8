"""Export a model bundle to other runtimes: :func:`export_onnx` adds ``model.onnx`` to a bundle after a parity
check against PyTorch (``oculi export MODEL --format onnx``)."""

from oculi.export.onnx import DEFAULT_TOLERANCE, OPSET, ExportResult, ParityReport, export_onnx

__all__ = ["DEFAULT_TOLERANCE", "OPSET", "ExportResult", "ParityReport", "export_onnx"]
