"""``oculi export MODEL --format onnx``: write the network part of a bundle's model to ``model.onnx`` beside its
weights, after checking that onnxruntime reproduces PyTorch's float32 outputs on generated sample images.

What is exported (the runtime's input is always normalised ``float32 [B, 3, H, W]``; decoding, resizing,
normalisation and postprocessing stay in the predictors, shared by both runtimes):

- classification: ``images [batch, 3, H, W]`` → ``logits [batch, num_classes]``; dynamic batch, the bundle's
  crop size.
- segmentation: ``images [batch, 3, height, width]`` → ``logits [batch, num_classes, height, width]``; dynamic
  batch, height and width (the predictor scales each image's long side to ``base_size``).
- detection (SSD): ``images [batch, 3, S, S]`` → ``cls_logits [batch, A, num_classes + 1]``, ``bbox_regression
  [batch, A, 4]`` (base network + heads, :class:`~oculi.algorithms.detection_models.SSDNetwork`); dynamic batch.
  Default boxes, decoding and NMS stay torchvision's, in torch, so both runtimes give the same detections.

Exporter: torch.onnx's TorchScript-based exporter (``dynamo=False``), opset :data:`OPSET`. torch 2.14's default
dynamo exporter was tried on every network here: it exports the same graphs, but 10–20× slower (about a minute for
a small segmentation network on 2 cores) and, with dynamic height/width, PSP's adaptive pooling came out wrong
(onnxruntime failed on some input sizes) — the kind of silent error the parity check exists for. The TorchScript
exporter is deprecated upstream but complete for these convolutional networks; torch is pinned.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oculi.algorithms import ALGORITHMS, get_algorithm
from oculi.algorithms.base import ExportPlan
from oculi.artifacts import ONNX, ModelBundle, load_bundle, pack, update_meta, weights_digest
from oculi.errors import ArtifactError, ConfigError
from oculi.inference.predictor import Predictor
from oculi.inference.runtimes import OnnxRuntime
from oculi.tasks import task_of

OPSET = 17
# Largest accepted |onnxruntime − torch| of any output, for outputs within ±1; larger outputs scale it by their
# largest magnitude (float32 rounding grows with it). Measured differences are ~1e-6 (classification, segmentation)
# to ~1e-4 (random-weight SSD heads with outputs ~100), so 1e-3 passes a faithful export with a wide margin and
# catches a wrong one (a mis-exported operator is off by far more).
DEFAULT_TOLERANCE = 1e-3


@dataclass
class ParityReport:
    """onnxruntime vs PyTorch float32 on generated images. ``outputs``: per output name, the largest absolute
    difference ``max_abs_diff`` and the largest torch magnitude ``max_abs_torch`` over every sample;
    ``samples``: the network input shapes checked; ``final``: the plan's checks of the whole predictor with either
    runtime, by name (SSD: ``detections``, the final boxes after decoding and NMS — see
    :func:`oculi.algorithms.detection_export.detection_export_plan`)."""

    tolerance: float
    samples: list[list[int]]
    outputs: dict[str, dict[str, float]]
    final: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    shapes: dict[str, list[int]] = field(default_factory=dict)  # input and output shapes of the last sample
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)  # the export's, by input/output name

    @property
    def passed(self) -> bool:
        """True when every output and the final boxes are within the tolerances."""
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        """The report as model.json records it."""
        return {"tolerance": self.tolerance, "passed": self.passed, "samples": self.samples,
                "outputs": self.outputs, **self.final}

    def max_abs_diff(self) -> float:
        """The largest absolute difference over every output."""
        return max(value["max_abs_diff"] for value in self.outputs.values())


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote: ``path`` the ``model.onnx`` file (inside ``archive`` when the bundle was a
    ``model.tar.gz``, which was re-packed with it), ``entry`` the ``"onnx"`` record added to model.json,
    ``parity`` the check it passed, ``seconds`` the time taken."""

    path: Path
    archive: Path | None
    entry: dict[str, Any]
    parity: ParityReport
    seconds: float


class _AdaptiveAvgPool(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` written with operators ONNX has for any input size: each bin averages
    rows ``floor(i·H/n) … ceil((i+1)·H/n) − 1`` (and likewise columns), as PyTorch's kernel does, as a product with
    two averaging matrices. The TorchScript exporter refuses adaptive pooling to sizes other than 1×1 when the
    input size is dynamic (PSP's 2×2, 3×3, 6×6 bins)."""

    def __init__(self, output_size: tuple[int, int]) -> None:
        super().__init__()
        self.output_size = output_size

    @staticmethod
    def _averaging(bins: int, size: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
        index = torch.arange(bins, device=like.device)
        start = torch.div(index * size, bins, rounding_mode="floor")
        end = torch.div((index + 1) * size + bins - 1, bins, rounding_mode="floor")
        position = torch.arange(size, device=like.device)
        inside = ((position[None] >= start[:, None]) & (position[None] < end[:, None])).to(like.dtype)
        return inside / inside.sum(1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` → ``[B, C, *output_size]``."""
        rows = self._averaging(self.output_size[0], x.shape[-2], x)
        columns = self._averaging(self.output_size[1], x.shape[-1], x)
        return torch.einsum("ih,bchw,jw->bcij", rows, x, columns)


def _onnx_ready(network: nn.Module) -> nn.Module:
    """A copy of ``network`` with every adaptive average pooling to a size other than 1×1 replaced by
    :class:`_AdaptiveAvgPool` (same function); the network itself is left as it is."""
    network = copy.deepcopy(network)
    for name, module in list(network.named_modules()):
        if isinstance(module, nn.AdaptiveAvgPool2d):
            size = module.output_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            if None not in size and size != (1, 1):
                parent_name, _, child = name.rpartition(".")
                setattr(network.get_submodule(parent_name) if parent_name else network, child, _AdaptiveAvgPool(size))
    return network


def _parity(predictor: Predictor, network: nn.Module, session: OnnxRuntime, plan: ExportPlan,
            tolerance: float) -> ParityReport:
    """Run the torch float32 ``network`` and the ONNX ``session`` on the plan's samples, then the plan's own check
    of the whole predictor with either runtime (SSD: decoding + NMS), if it has one."""
    outputs: dict[str, dict[str, float]] = {name: {"max_abs_diff": 0.0, "max_abs_torch": 0.0} for name in plan.outputs}
    report_shapes: dict[str, list[int]] = {}
    with torch.inference_mode():
        for sample in plan.samples:
            reference = network(sample)
            reference = reference if isinstance(reference, tuple) else (reference,)
            for name, ref, out in zip(plan.outputs, reference, session(sample), strict=True):
                if tuple(ref.shape) != tuple(out.shape):
                    raise ArtifactError(f"the exported {name} has shape {tuple(out.shape)} for input "
                                        f"{tuple(sample.shape)}; PyTorch gives {tuple(ref.shape)}. Nothing was "
                                        "written. Run with --debug and report it.")
                report_shapes[name] = list(ref.shape)
                record = outputs[name]
                record["max_abs_diff"] = max(record["max_abs_diff"], float((ref.float() - out).abs().max()))
                record["max_abs_torch"] = max(record["max_abs_torch"], float(ref.abs().max()))
    report_shapes["images"] = list(plan.samples[-1].shape)
    report = ParityReport(tolerance, [list(s.shape) for s in plan.samples], outputs, shapes=report_shapes,
                          dynamic_axes=plan.dynamic_axes)
    for name, record in outputs.items():
        allowed = tolerance * max(1.0, record["max_abs_torch"])
        if not record["max_abs_diff"] <= allowed:
            report.problems.append(f"{name} differ by up to {record['max_abs_diff']:.3g} (allowed {allowed:.3g}: "
                                   f"tolerance {tolerance:g} × max(1, largest |{name}| {record['max_abs_torch']:.3g}))")
    if plan.final_check is not None:
        name, summary, problems = plan.final_check(predictor, session)
        report.final[name] = summary
        report.problems += problems
    return report


def export_onnx(model: str | Path, *, tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export the network of the bundle ``model`` (a bundle folder, a job output folder or a ``model.tar.gz``)
    to ``model.onnx`` in the bundle and record it under model.json's ``"onnx"`` key (opset, inputs and outputs
    with their shapes, the parity report, the SHA-256 of the weights it came from).

    Before anything is written, onnxruntime (CPU) and PyTorch (float32) run the network on generated images at the
    bundle's input size (segmentation: a landscape batch of 2 and a portrait image, both long sides at
    ``base_size``; classification and detection: batches of 3/2 and 1). Every output must agree within
    ``tolerance`` × max(1, the output's largest magnitude); a plan with a final check runs it too (SSD bundles
    compare the final detections, see :func:`oculi.algorithms.detection_export.detection_export_plan`). Otherwise
    :class:`ArtifactError` is raised and the bundle is left untouched.

    A ``model.tar.gz`` is re-packed with ``model.onnx`` and the updated model.json (written to a temporary name
    and renamed). Raises :class:`ConfigError` for a negative tolerance."""
    started = time.perf_counter()
    if not tolerance >= 0:
        raise ConfigError(f"tolerance got {tolerance}; expected a number ≥ 0 (default {DEFAULT_TOLERANCE:g}). Pass "
                          f"e.g. --tolerance {DEFAULT_TOLERANCE:g}.")
    source = Path(model).expanduser()
    with opened(source) as bundle, tempfile.TemporaryDirectory(prefix="oculi-export-") as scratch:
        onnx_file = Path(scratch) / ONNX
        report = export_checked(bundle, source, tolerance, onnx_file)
        entry = onnx_entry(bundle.path, report)
        commit(bundle, source, {ONNX: onnx_file}, {"onnx": entry})
    archive = source if source.is_file() else None
    return ExportResult(path=archive / ONNX if archive else bundle.path / ONNX, archive=archive, entry=entry,
                        parity=report, seconds=time.perf_counter() - started)


@contextmanager
def opened(source: Path) -> Iterator[ModelBundle]:
    """The bundle at ``source`` loaded for an export; the unpacked copy of a ``model.tar.gz`` is removed after."""
    bundle = load_bundle(source)
    try:
        yield bundle
    finally:
        if source.is_file():
            shutil.rmtree(bundle.path, ignore_errors=True)  # the unpacked copy load_bundle made


def commit(bundle: ModelBundle, source: Path, files: dict[str, Path], meta: dict[str, Any]) -> None:
    """Copy ``files`` (name in the bundle → file written elsewhere) into the bundle and merge ``meta`` into its
    model.json, each file written to a temporary name first and renamed; a ``model.tar.gz`` ``source`` is
    re-packed the same way. Nothing is left half-written when a copy fails (:class:`ArtifactError`)."""
    archive = source if source.is_file() else None
    staged = [bundle.path / (name + ".tmp") for name in files]
    try:
        for path, temporary in zip(files.values(), staged, strict=True):
            shutil.copyfile(path, temporary)
        for name, temporary in zip(files, staged, strict=True):
            temporary.replace(bundle.path / name)
        update_meta(bundle.path, meta)
        if archive is not None:
            pack(bundle.path, archive.with_name(archive.name + ".tmp")).replace(archive)
    except OSError as e:
        raise ArtifactError(f"{source}: cannot write the export ({e}). Copy the bundle to a writable folder and "
                            "export that copy.") from None
    finally:
        for temporary in staged:
            temporary.unlink(missing_ok=True)
        if archive is not None:
            archive.with_name(archive.name + ".tmp").unlink(missing_ok=True)


def export_checked(bundle: ModelBundle, source: Path, tolerance: float, destination: Path) -> ParityReport:
    """Export ``bundle``'s network to ``destination`` and check it against PyTorch; raise :class:`ArtifactError`
    (``destination`` removed) when export or parity fails. The bundle itself is not touched."""
    contract = task_of(bundle)
    predictor = contract.predictor(bundle, precision="float32")
    network = predictor.network().eval()
    algorithm = bundle.meta.get("algorithm")
    own_plan = get_algorithm(algorithm).export_plan if algorithm in ALGORITHMS else None
    make_plan = own_plan or contract.export_plan
    if make_plan is None:
        raise ArtifactError(f"{source}: the {bundle.meta['algorithm']} algorithm has no ONNX export plan; it cannot "
                            "be exported yet.")
    plan = make_plan(predictor.model, predictor.spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
            torch.onnx.export(_onnx_ready(network), (plan.example,), str(destination), input_names=["images"],
                              output_names=plan.outputs, dynamic_axes=plan.dynamic_axes, opset_version=OPSET,
                              do_constant_folding=True, dynamo=False)
    except Exception as e:
        destination.unlink(missing_ok=True)
        raise ArtifactError(f"{source}: torch.onnx could not export the {bundle.meta.get('task')} network "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Nothing was "
                            "written. Run with --debug for the traceback.") from e
    report = _parity(predictor, network, OnnxRuntime(destination), plan, tolerance)
    if not report.passed:
        destination.unlink(missing_ok=True)
        raise ArtifactError(f"{source}: {ONNX} was not written — onnxruntime does not reproduce PyTorch on the "
                            f"sample images: " + "; ".join(report.problems) + ". If that difference is "
                            "acceptable, pass a larger --tolerance.")
    return report


def onnx_entry(directory: Path, report: ParityReport) -> dict[str, Any]:
    """model.json's ``"onnx"`` record; dynamic axes appear by name (``batch``, ``height``, ``width``)."""
    import onnx
    import onnxruntime

    def shape(name: str) -> list[int | str]:
        return [report.dynamic_axes[name].get(axis, size) for axis, size in enumerate(report.shapes[name])]

    return {
        "file": ONNX,
        "opset": OPSET,
        "exporter": f"torch.onnx TorchScript exporter (torch {torch.__version__})",
        "inputs": [{"name": "images", "dtype": "float32", "shape": shape("images"),
                    "preprocessing": "RGB scaled to [0, 1], normalised with input.mean/input.std"}],
        "outputs": [{"name": name, "dtype": "float32", "shape": shape(name)} for name in report.outputs],
        "parity": report.to_json(),
        "weights_sha256": weights_digest(directory),
        "versions": {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        "exported": datetime.now(UTC).isoformat(timespec="seconds"),
    }
