"""``oculi export MODEL --format onnx --precision int8|fp16``: smaller, faster ONNX models whose accuracy is checked
on the user's data before anything is written.

- **int8**: ONNX Runtime's static quantization — QDQ format, per-channel int8 weights, uint8 activations
  calibrated (min/max) on images of a channel (default: the training channel recorded in the bundle), preprocessed
  exactly as the predictor does (the calibration inputs are recorded at the predictor's runtime seam, so every
  task's resizing and normalisation are the ones serving uses). Not built on ``torch.ao.quantization``, which is
  deprecated upstream.
- **fp16**: the float32 graph with float16 weights and arithmetic (onnxruntime's converter, inputs and outputs
  kept float32), for GPUs.

The gate: the task's metric (:attr:`oculi.tasks.base.TaskContract.metric` — accuracy, mAP, mIoU) of the exported
model against the float32 ONNX model on ``data`` (default: the validation channel recorded in the bundle). When
the drop exceeds ``max_accuracy_drop``, the nodes whose quantized outputs differ most from float32 (onnxruntime's
QDQ debugging tools: per-tensor signal-to-quantisation-noise on the calibration images) are kept in float, more at
each attempt; when no attempt meets the bound, :class:`QuantizationRefused` is raised with every measurement and the
bundle is left byte-identical. A kept export records precision, calibration fingerprint, the metrics and the drop
in model.json (``onnx_int8`` / ``onnx_fp16``), and the machine kind that measured them (``machine``)."""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oculi.artifacts import ONNX, ModelBundle, dataset_fingerprint, weights_digest
from oculi.errors import ArtifactError, ConfigError, DataError
from oculi.export.onnx import DEFAULT_TOLERANCE, commit, export_checked, onnx_entry, opened
from oculi.inference.predictor import Predictor
from oculi.inference.runtimes import QUANTIZED, OnnxRuntime, available, machine_kind
from oculi.tasks import evaluate, task_of
from oculi.types import IMAGE_EXTENSIONS, SampleSet

DEFAULT_CALIBRATION_SIZE = 300
DEFAULT_MAX_DROP = 0.01
# Shares of the quantized nodes kept in float32 at the successive attempts after the first (all nodes int8).
KEEP_FLOAT = (0.05, 0.15, 0.3, 0.5)


class QuantizationRefused(ArtifactError):  # noqa: N818 - an ArtifactError, named for what happened
    """No quantized model met the accuracy bound; nothing was written. ``attempts`` holds what was measured."""

    def __init__(self, message: str, attempts: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass
class QuantizationResult:
    """What :func:`export_quantized` wrote: ``path`` the ONNX file in the bundle, ``entry`` its model.json record,
    ``attempts`` every measured try (kept-in-float node count, metric, drop), ``seconds`` the time taken."""

    path: Path
    entry: dict[str, Any]
    attempts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


class _Recorder:
    """A runtime wrapper that keeps every network input it is given (then runs the wrapped runtime), so a pass of
    the predictor over images yields exactly the tensors serving would feed the network."""

    def __init__(self, runtime: Callable[[torch.Tensor], tuple[torch.Tensor, ...]]) -> None:
        self.runtime = runtime
        self.inputs: list[np.ndarray] = []

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.inputs.append(inputs.detach().to("cpu", torch.float32).contiguous().numpy())
        return self.runtime(inputs)


CALIBRATION_BATCH = 4  # images per calibration batch: a batch's activations are held while its ranges are taken
MAX_HELD_BATCHES = 16  # onnxruntime's CalibMaxIntermediateOutputs: batches held before ranges are folded in
RANKING_IMAGES = 16  # images the per-node error ranking runs on (both models' activations are held in memory)


class _Reader:
    """onnxruntime's CalibrationDataReader over recorded network inputs, in batches of at most
    :data:`CALIBRATION_BATCH` images (re-readable: :meth:`rewind`)."""

    def __init__(self, inputs: list[np.ndarray]) -> None:
        self.inputs = [batch[i:i + CALIBRATION_BATCH] for batch in inputs
                       for i in range(0, len(batch), CALIBRATION_BATCH)]
        self.position = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as ``{"images": array}``; None at the end."""
        if self.position >= len(self.inputs):
            return None
        self.position += 1
        return {"images": self.inputs[self.position - 1]}

    def rewind(self) -> None:
        """Start again from the first batch."""
        self.position = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """Every batch once (what onnxruntime's QDQ debugging tools iterate)."""
        return iter({"images": batch} for batch in self.inputs)


def recorded_channel(bundle: ModelBundle, given: str | Path | None, name: str, option: str) -> Path:
    """``given``, else the bundle's recorded channel ``name`` (model.json ``dataset.channels``) when it still
    exists — the folder holding it and its ``<name>_annotation`` channel when it has one (SageMaker's
    segmentation layout) —; otherwise a :class:`ConfigError` naming the option to pass."""
    if given is not None:
        path = Path(given).expanduser()
        if not path.exists():
            raise DataError(f"{option} {path}: no such file or folder.")
        return path
    channels = (bundle.meta.get("dataset") or {}).get("channels", {})
    recorded = channels.get(name)
    if recorded and Path(recorded).exists():
        annotations = channels.get(f"{name}_annotation")
        if annotations and Path(annotations).parent == Path(recorded).parent:
            return Path(recorded).parent  # SageMaker's layout: images and masks are read through their folder
        return Path(recorded)
    where = f" (the bundle records {recorded}, which is not there)" if recorded else ""
    raise ConfigError(f"{bundle.source or bundle.path}: no {name} data to measure the export on{where}. Pass "
                      f"{option} DATA with images of the model's task.")


def channel_images(bundle: ModelBundle, channel: Path, size: int, seed: int = 0) -> tuple[list[Path], str]:
    """Up to ``size`` image files of ``channel`` (a seeded sample when it has more) and the fingerprint of the
    labelled set they came from. Calibration needs no labels: a folder the task's readers do not take as labelled
    data (e.g. segmentation images without their masks) gives its image files, fingerprinted by name and size."""
    contract = task_of(bundle)
    try:
        splits = contract.data.read_splits(channel)
    except DataError:
        if not channel.is_dir():
            raise
        splits = {}
    if len(splits.get("train", ())):
        splits = {"train": splits["train"]}  # a dataset root: calibrate on its training split
    sets: list[SampleSet] = [s for s in splits.values() if len(s)]
    if sets:
        images = sorted({sample.image for s in sets for sample in s.samples})
        fingerprint = dataset_fingerprint(sets)
    else:
        files = channel.rglob("*") if channel.is_dir() else ()
        images = sorted(p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS)
        fingerprint = hashlib.sha1("".join(f"{p.relative_to(channel)}\t{p.stat().st_size}\n" for p in images)
                                   .encode()).hexdigest()[:16]
    if not images:
        raise DataError(f"{channel}: no images found to calibrate on. Pass --calibration with a folder or manifest of "
                        "the training images.")
    random.Random(seed).shuffle(images)
    return images[:size], fingerprint


def _record_inputs(bundle: ModelBundle, images: list[Path], progress: Callable[[str], None]) -> list[np.ndarray]:
    """The network inputs the predictor makes from ``images`` (one array per predictor batch)."""
    predictor = task_of(bundle).predictor(bundle, "cpu", "torch", "float32")
    recorder = _Recorder(predictor.runtime)
    predictor.runtime = recorder  # type: ignore[assignment]
    progress(f"preprocessing {len(images)} calibration image(s)…")
    batch = predictor.default_batch_size
    for start in range(0, len(images), batch):
        predictor.predict(images[start:start + batch], batch_size=batch)
    return recorder.inputs


def _metric_of(bundle: ModelBundle, onnx_file: Path, data: Path, metric: str, runtime_kind: str) -> float:
    """The task's ``metric`` of ``bundle`` with its network run by onnxruntime from ``onnx_file``."""
    predictor: Predictor = task_of(bundle).predictor(bundle, "cpu", "torch", "float32")
    predictor.runtime = OnnxRuntime(onnx_file, precision=runtime_kind)  # type: ignore[assignment]
    report = evaluate(predictor, data, progress=False)
    return float(report.metrics[metric])


def _sensitive_nodes(float_model: Path, quantized: Path, reader: _Reader, scratch: Path) -> list[str]:
    """Node names of ``float_model`` ordered from the most to the least damaged by quantization: the SQNR (dB) of
    each node output's QDQ pair on the calibration inputs, lowest first."""
    import onnx
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    float_aug, quant_aug = scratch / "float-aug.onnx", scratch / "quant-aug.onnx"
    modify_model_output_intermediate_tensors(str(float_model), str(float_aug))
    modify_model_output_intermediate_tensors(str(quantized), str(quant_aug))
    reader.rewind()
    float_acts = collect_activations(str(float_aug), reader)
    reader.rewind()
    quant_acts = collect_activations(str(quant_aug), reader)
    errors = compute_activation_error(create_activation_matching(quant_acts, float_acts))
    producer = {output: node.name for node in onnx.load(str(float_model)).graph.node for output in node.output}
    scored = [(float(np.mean(values.get("qdq_err", np.inf))), producer[name]) for name, values in errors.items()
              if name in producer]
    return [name for _, name in sorted(scored)]


def _prepared(float_model: Path) -> Path:
    """``float_model`` after onnxruntime's pre-processing for quantization (shape inference, graph optimisation),
    beside it; made once."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = float_model.with_name("prepared.onnx")
    if not prepared.is_file():
        quant_pre_process(str(float_model), str(prepared))
    return prepared


@contextmanager
def _quiet_root_warnings() -> Iterator[None]:
    """Hold back onnxruntime's quantizer warnings, which go to the root logger and name graph internals (e.g.
    "Axis 1 is out-of-range for weight …" where a 1-D weight falls back to per-tensor scales, as intended)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _quantize(float_model: Path, out: Path, reader: _Reader, exclude: list[str]) -> None:
    """Static QDQ int8 quantization of ``float_model`` (pre-processed first) into ``out`` (per-channel weights),
    nodes ``exclude`` kept in float."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    float_model = _prepared(float_model)
    reader.rewind()
    with _quiet_root_warnings():
        quantize_static(str(float_model), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                        calibrate_method=CalibrationMethod.MinMax,
                        extra_options={"CalibMaxIntermediateOutputs": MAX_HELD_BATCHES})


def _to_fp16(float_model: Path, out: Path) -> None:
    """``float_model`` with float16 weights and arithmetic, float32 inputs and outputs."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(float_model)), keep_io_types=True)
    onnx.save(model, str(out))


def _quantizable(model: Path) -> list[str]:
    """Names of the nodes static quantization turns into int8 arithmetic (convolutions, matrix products)."""
    import onnx

    return [node.name for node in onnx.load(str(model)).graph.node if node.op_type in ("Conv", "MatMul", "Gemm")]


def export_quantized(model: str | Path, precision: str = "int8", *, calibration: str | Path | None = None,
                     calibration_size: int = DEFAULT_CALIBRATION_SIZE, data: str | Path | None = None,
                     max_accuracy_drop: float = DEFAULT_MAX_DROP,
                     progress: Callable[[str], None] = lambda _: None) -> QuantizationResult:
    """Write an ``int8`` (static, QDQ) or ``fp16`` ONNX model into the bundle ``model`` when its task metric on
    ``data`` stays within ``max_accuracy_drop`` of float32 ONNX's; otherwise raise :class:`QuantizationRefused`
    and leave the bundle byte-identical. ``calibration``/``data`` default to the training/validation channels the
    bundle recorded; ``calibration_size`` images calibrate int8. ``progress`` receives one line per step."""
    started = time.perf_counter()
    if precision not in QUANTIZED:
        raise ConfigError(f"--precision got {precision!r}; expected one of float32, {', '.join(QUANTIZED)}.")
    if not max_accuracy_drop >= 0:
        raise ConfigError(f"--max-accuracy-drop got {max_accuracy_drop}; expected a number ≥ 0 (e.g. 0.01).")
    if calibration_size < 1:
        raise ConfigError(f"--calibration-size got {calibration_size}; expected an integer ≥ 1 (e.g. 300).")
    source = Path(model).expanduser()
    with opened(source) as bundle, tempfile.TemporaryDirectory(prefix="oculi-quantize-") as folder:
        scratch = Path(folder)
        contract = task_of(bundle)
        data_path = recorded_channel(bundle, data, "validation", "--data")
        float_model = scratch / ONNX
        progress("exporting the float32 network and checking it against PyTorch…")
        parity = export_checked(bundle, source, DEFAULT_TOLERANCE, float_model)
        progress(f"measuring float32 {contract.metric} on {data_path}…")
        reference = _metric_of(bundle, float_model, data_path, contract.metric, "float32")
        kind = machine_kind()  # int8 kernels differ between CPUs (VNNI or not): the gate holds where it was measured
        entry: dict[str, Any] = {"precision": precision, "metric": contract.metric, "data": str(data_path),
                                 "float32_metric": reference}
        attempts: list[dict[str, Any]] = []
        out = scratch / QUANTIZED[precision]
        if precision == "fp16":
            _to_fp16(float_model, out)
            plan: Iterator[list[str]] = iter([[]])
            reader = None
        else:
            cal_path = recorded_channel(bundle, calibration, "train", "--calibration")
            images, fingerprint = channel_images(bundle, cal_path, calibration_size)
            reader = _Reader(_record_inputs(bundle, images, progress))
            entry.update(calibration={"data": str(cal_path), "images": len(images), "fingerprint": fingerprint,
                                      "method": "minmax", "format": "QDQ", "weights": "int8 per-channel",
                                      "activations": "uint8"})
            plan = _exclusions(float_model, out, reader, scratch)
        for exclude in plan:
            if precision == "int8":
                progress(f"quantizing to int8 ({len(exclude)} node(s) kept in float32)…")
                _quantize(float_model, out, reader, exclude)  # type: ignore[arg-type]
            value = _metric_of(bundle, out, data_path, contract.metric, precision)
            attempt = {"kept_float": len(exclude), "metric": value, "drop": reference - value}
            attempts.append(attempt)
            progress(f"{precision}: {contract.metric} {value:.4f} (float32 {reference:.4f}, drop "
                     f"{reference - value:+.4f}, bound {max_accuracy_drop:g})")
            if reference - value <= max_accuracy_drop:
                entry.update(file=QUANTIZED[precision], metric_value=value, drop=reference - value, machine=kind,
                             max_accuracy_drop=max_accuracy_drop, kept_float=exclude, attempts=attempts,
                             weights_sha256=weights_digest(bundle.path),
                             exported=datetime.now(UTC).isoformat(timespec="seconds"))
                files, meta = {QUANTIZED[precision]: out}, {f"onnx_{precision}": entry}
                if not available(bundle, "float32"):  # the float32 model it was measured against comes along
                    files[ONNX] = float_model
                    meta["onnx"] = onnx_entry(bundle.path, parity)
                commit(bundle, source, files, meta)
                path = (source if source.is_file() else bundle.path) / QUANTIZED[precision]
                return QuantizationResult(path, entry, attempts, time.perf_counter() - started)
        shown = "; ".join(f"{a['kept_float']} node(s) in float32: {contract.metric} {a['metric']:.4f}, drop "
                          f"{a['drop']:+.4f}" for a in attempts)
        raise QuantizationRefused(
            f"{source}: no {precision} model kept {contract.metric} within {max_accuracy_drop:g} of float32 "
            f"({reference:.4f} on {data_path}); nothing was written. Measured: {shown}. Pass a larger "
            "--max-accuracy-drop, more --calibration images, or serve the float32 ONNX model.", attempts)


def _exclusions(float_model: Path, out: Path, reader: _Reader, scratch: Path) -> Iterator[list[str]]:
    """The node sets kept in float at each int8 attempt: none first, then growing shares (:data:`KEEP_FLOAT`) of
    the quantizable nodes, most damaged first (ranked once, on the all-int8 model)."""
    yield []
    ranked_source = scratch / "ranked.onnx"
    shutil.copyfile(out, ranked_source)
    prepared = _prepared(float_model)
    quantizable = _quantizable(prepared)
    sample = _Reader(reader.inputs[:max(1, RANKING_IMAGES // CALIBRATION_BATCH)])
    ranked = [name for name in _sensitive_nodes(prepared, ranked_source, sample, scratch) if name in quantizable]
    ranked += [name for name in quantizable if name not in ranked]
    for share in KEEP_FLOAT:
        yield ranked[:max(1, round(share * len(ranked)))]
