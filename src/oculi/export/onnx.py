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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from oculi.artifacts import ONNX, ModelBundle, load_bundle, pack, update_meta, weights_digest
from oculi.data.transforms import normalize
from oculi.errors import ArtifactError, ConfigError
from oculi.inference import DetectionPredictor, Predictor, SegmentationPredictor
from oculi.inference.runtimes import OnnxRuntime

OPSET = 17
# Largest accepted |onnxruntime − torch| of any output, for outputs within ±1; larger outputs scale it by their
# largest magnitude (float32 rounding grows with it). Measured differences are ~1e-6 (classification, segmentation)
# to ~1e-4 (random-weight SSD heads with outputs ~100), so 1e-3 passes a faithful export with a wide margin and
# catches a wrong one (a mis-exported operator is off by far more).
DEFAULT_TOLERANCE = 1e-3
# Detections compared in the final-box check: the highest-scoring ones of each image (a near-tie among the low
# scores of an untrained model may swap which of two boxes survives NMS; that is not an export error).
COMPARED_DETECTIONS = 20
BOX_TOLERANCE_PIXELS = 0.5


@dataclass
class ParityReport:
    """onnxruntime vs PyTorch float32 on generated images. ``outputs``: per output name, the largest absolute
    difference ``max_abs_diff`` and the largest torch magnitude ``max_abs_torch`` over every sample;
    ``samples``: the network input shapes checked; ``detections`` (SSD only): the final-box comparison after
    decoding and NMS (``compared`` detections, ``label_mismatches``, ``box_max_abs_diff`` in pixels of the original
    images, ``score_max_abs_diff``)."""

    tolerance: float
    samples: list[list[int]]
    outputs: dict[str, dict[str, float]]
    detections: dict[str, Any] | None = None
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
                "outputs": self.outputs, **({"detections": self.detections} if self.detections else {})}

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


def sample_images(count: int, height: int, width: int, seed: int) -> list[torch.Tensor]:
    """``count`` generated ``uint8 [3, height, width]`` images (smooth colour gradients, a few filled rectangles
    and discs, mild noise; seeded): inputs with photo-like structure for parity checks, no data needed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    images = []
    for _ in range(count):
        pixels = np.stack([rng.uniform(0, 255) * (xx / width) + rng.uniform(0, 255) * (yy / height)
                           for _ in range(3)], axis=-1) / 2
        for _ in range(int(rng.integers(2, 5))):
            h, w = (int(rng.integers(max(2, n // 8), max(3, n // 2))) for n in (height, width))
            y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            colour = rng.uniform(0, 255, 3)
            if rng.random() < 0.5:
                pixels[y:y + h, x:x + w] = colour
            else:
                inside = ((yy - y - h / 2) / (h / 2)) ** 2 + ((xx - x - w / 2) / (w / 2)) ** 2 <= 1
                pixels[inside] = colour
        pixels += rng.normal(0, 8, pixels.shape)
        images.append(torch.from_numpy(pixels.clip(0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous())
    return images


@dataclass
class _Plan:
    """How one task's network is exported and checked: output names, dynamic axes, the traced example input, the
    network inputs compared, and (detection) the images whose final detections are compared."""

    outputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    example: torch.Tensor
    samples: list[torch.Tensor]
    detection_images: list[torch.Tensor] = field(default_factory=list)


def _plan(predictor: Predictor) -> _Plan:
    spec = predictor.spec
    mean, std = tuple(spec["mean"]), tuple(spec["std"])
    if isinstance(predictor, SegmentationPredictor):
        base = int(spec["base_size"])
        short = max(16, round(base * 0.75))
        # the predictor's two shapes of input: landscape (batch of 2) and portrait, each long side at base_size
        samples = [normalize(torch.stack(sample_images(2, short, base, seed=1)), mean, std),
                   normalize(torch.stack(sample_images(1, base, max(16, round(base * 0.6)), seed=2)), mean, std)]
        axes = {0: "batch", 2: "height", 3: "width"}
        return _Plan(["logits"], {"images": axes, "logits": axes}, samples[0], samples)
    if isinstance(predictor, DetectionPredictor):
        width, height = predictor.model.transform.fixed_size
        images = sample_images(3, height, width, seed=1)
        samples = [predictor.model.transform([i.float() / 255.0 for i in images[:2]])[0].tensors,
                   predictor.model.transform([images[2].float() / 255.0])[0].tensors]
        # boxes are compared on the network-size images and on one of another size and aspect
        others = sample_images(1, round(height * 0.75), round(width * 1.25), seed=3)
        return _Plan(["cls_logits", "bbox_regression"],
                     {"images": {0: "batch"}, "cls_logits": {0: "batch"}, "bbox_regression": {0: "batch"}},
                     samples[0], samples, images + others)
    height, width = int(spec["height"]), int(spec["width"])
    images = sample_images(4, height, width, seed=1)
    samples = [normalize(torch.stack(images[:3]), mean, std), normalize(images[3][None], mean, std)]
    return _Plan(["logits"], {"images": {0: "batch"}, "logits": {0: "batch"}}, samples[0], samples)


def _compare_detections(reference: list[dict[str, torch.Tensor]], exported: list[dict[str, torch.Tensor]]
                        ) -> dict[str, Any]:
    """Compare each image's :data:`COMPARED_DETECTIONS` highest-scoring detections rank by rank."""
    compared = mismatches = 0
    box_diff = score_diff = 0.0
    for ref, out in zip(reference, exported, strict=True):
        count = min(COMPARED_DETECTIONS, len(ref["scores"]))
        compared += count
        if len(out["scores"]) < count:
            mismatches += count - len(out["scores"])
            count = len(out["scores"])
        mismatches += int((ref["labels"][:count] != out["labels"][:count]).sum())
        if count:
            box_diff = max(box_diff, float((ref["boxes"][:count] - out["boxes"][:count]).abs().max()))
            score_diff = max(score_diff, float((ref["scores"][:count] - out["scores"][:count]).abs().max()))
    return {"images": len(reference), "compared": compared, "label_mismatches": mismatches,
            "box_max_abs_diff": box_diff, "score_max_abs_diff": score_diff}


def _parity(predictor: Predictor, network: nn.Module, session: OnnxRuntime, plan: _Plan,
            tolerance: float) -> ParityReport:
    """Run the torch float32 ``network`` and the ONNX ``session`` on the plan's samples; for detection also the
    whole predictor (decoding + NMS) with either runtime."""
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
    if plan.detection_images:
        assert isinstance(predictor, DetectionPredictor)
        reference = predictor.detect(plan.detection_images)
        torch_runtime, predictor.runtime = predictor.runtime, session
        try:
            exported = predictor.detect(plan.detection_images)
        finally:
            predictor.runtime = torch_runtime
        report.detections = _compare_detections(reference, exported)
        if report.detections["label_mismatches"] or report.detections["box_max_abs_diff"] > BOX_TOLERANCE_PIXELS:
            report.problems.append(f"final detections differ: {report.detections['label_mismatches']} of "
                                   f"{report.detections['compared']} top detections with another class or missing, "
                                   f"boxes up to {report.detections['box_max_abs_diff']:.3g} px apart (allowed "
                                   f"{BOX_TOLERANCE_PIXELS} px)")
    return report


def export_onnx(model: str | Path, *, tolerance: float = DEFAULT_TOLERANCE) -> ExportResult:
    """Export the network of the bundle ``model`` (a bundle folder, a job output folder or a ``model.tar.gz``)
    to ``model.onnx`` in the bundle and record it under model.json's ``"onnx"`` key (opset, inputs and outputs
    with their shapes, the parity report, the SHA-256 of the weights it came from).

    Before anything is written, onnxruntime (CPU) and PyTorch (float32) run the network on generated images at the
    bundle's input size (segmentation: a landscape batch of 2 and a portrait image, both long sides at
    ``base_size``; classification and detection: batches of 3/2 and 1). Every output must agree within
    ``tolerance`` × max(1, the output's largest magnitude); SSD bundles also compare the final detections
    (decoding + NMS in torch) on those images and one of another size: the top :data:`COMPARED_DETECTIONS` per
    image must have the same classes and boxes within :data:`BOX_TOLERANCE_PIXELS` px. Otherwise
    :class:`ArtifactError` is raised and the bundle is left untouched.

    A ``model.tar.gz`` is re-packed with ``model.onnx`` and the updated model.json (written to a temporary name
    and renamed). Raises :class:`ConfigError` for a negative tolerance."""
    started = time.perf_counter()
    if not tolerance >= 0:
        raise ConfigError(f"tolerance got {tolerance}; expected a number ≥ 0 (default {DEFAULT_TOLERANCE:g}). Pass "
                          f"e.g. --tolerance {DEFAULT_TOLERANCE:g}.")
    source = Path(model).expanduser()
    bundle = load_bundle(source)
    archive = source if source.is_file() else None
    try:
        report = _export_checked(bundle, source, tolerance)
        entry = _entry(bundle.path, report)
        try:
            (bundle.path / (ONNX + ".tmp")).replace(bundle.path / ONNX)
            update_meta(bundle.path, {"onnx": entry})
            if archive is not None:
                pack(bundle.path, archive.with_name(archive.name + ".tmp")).replace(archive)
        except OSError as e:
            raise ArtifactError(f"{source}: cannot write the export ({e}). Copy the bundle to a writable folder and "
                                "export that copy.") from None
    finally:
        (bundle.path / (ONNX + ".tmp")).unlink(missing_ok=True)
        if archive is not None:
            archive.with_name(archive.name + ".tmp").unlink(missing_ok=True)
            shutil.rmtree(bundle.path, ignore_errors=True)  # the unpacked copy load_bundle made
    return ExportResult(path=archive / ONNX if archive else bundle.path / ONNX, archive=archive, entry=entry,
                        parity=report, seconds=time.perf_counter() - started)


def _export_checked(bundle: ModelBundle, source: Path, tolerance: float) -> ParityReport:
    """Export ``bundle``'s network to a scratch file, check it, and copy it to ``model.onnx.tmp`` in the bundle
    folder when it passes; raise :class:`ArtifactError` (nothing copied) when export or parity fails."""
    predictor = Predictor.from_bundle(bundle, precision="float32")
    network = predictor.network().eval()
    plan = _plan(predictor)
    with tempfile.TemporaryDirectory(prefix="oculi-export-") as scratch:
        scratch_file = Path(scratch) / ONNX
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notices
                torch.onnx.export(_onnx_ready(network), (plan.example,), str(scratch_file), input_names=["images"],
                                  output_names=plan.outputs, dynamic_axes=plan.dynamic_axes, opset_version=OPSET,
                                  do_constant_folding=True, dynamo=False)
        except Exception as e:
            raise ArtifactError(f"{source}: torch.onnx could not export the {bundle.meta.get('task')} network "
                                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Nothing was "
                                "written. Run with --debug for the traceback.") from e
        report = _parity(predictor, network, OnnxRuntime(scratch_file), plan, tolerance)
        if not report.passed:
            raise ArtifactError(f"{source}: {ONNX} was not written — onnxruntime does not reproduce PyTorch on the "
                                f"sample images: " + "; ".join(report.problems) + ". If that difference is "
                                "acceptable, pass a larger --tolerance.")
        try:
            shutil.copyfile(scratch_file, bundle.path / (ONNX + ".tmp"))
        except OSError as e:
            raise ArtifactError(f"{source}: cannot write {ONNX} into {bundle.path} ({e}). Copy the bundle to a "
                                "writable folder and export that copy.") from None
    return report


def _entry(directory: Path, report: ParityReport) -> dict[str, Any]:
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
