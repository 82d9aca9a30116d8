"""Export a model bundle to other runtimes: :func:`export_onnx` adds ``model.onnx`` to a bundle after a parity
check against PyTorch (``oculi export MODEL --format onnx``); :func:`export_quantized` adds an int8 or fp16 model
whose accuracy on the user's data was checked (``--precision``); :func:`export_edge` writes a torch-free package
(``--edge``); :func:`benchmark` measures every runtime × precision (``oculi benchmark``)."""

from oculi.export.benchmark import BenchmarkTable, benchmark
from oculi.export.edge import EdgePackage, export_edge
from oculi.export.onnx import DEFAULT_TOLERANCE, OPSET, ExportResult, ParityReport, export_onnx
from oculi.export.quantize import QuantizationRefused, QuantizationResult, export_quantized

__all__ = ["DEFAULT_TOLERANCE", "OPSET", "BenchmarkTable", "EdgePackage", "ExportResult", "ParityReport",
           "QuantizationRefused", "QuantizationResult", "benchmark", "export_edge", "export_onnx", "export_quantized"]
