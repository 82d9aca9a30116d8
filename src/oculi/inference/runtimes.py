"""Runtimes: what runs a bundle's network inside a predictor. ``torch`` runs the module eagerly under the engine's
precision policy; ``onnx`` runs the bundle's ``model.onnx`` (written by ``oculi export MODEL --format onnx``) in an
onnxruntime session on the CPU. Decoding, preprocessing and postprocessing stay in the predictors, so both runtimes
share every line except the network call: ``runtime(inputs) → outputs``, ``float32`` tensors in and out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from oculi.artifacts import ONNX, ModelBundle, weights_digest
from oculi.errors import ArtifactError, ConfigError
from oculi.precision import inference_precision, memory_format, uses_channels_last

RUNTIMES = ("torch", "onnx")
PRECISIONS = ("auto", "float32", "bfloat16")


class TorchRuntime:
    """Runs ``network`` with PyTorch on ``device``. ``precision`` (resolved, ``float32`` or ``bfloat16``):
    ``bfloat16`` runs under bf16 autocast with the network and its inputs in the memory format of
    :func:`oculi.precision.uses_channels_last` (channels_last, as in training); outputs are always returned as
    ``float32``."""

    name = "torch"

    def __init__(self, network: nn.Module, device: torch.device, precision: str) -> None:
        self.device = device
        self.precision = precision
        self.channels_last = uses_channels_last(precision)
        self.network = memory_format(network.to(device=device), precision).eval()

    @torch.inference_mode()
    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``float32 [B, 3, H, W]`` network inputs → the network's outputs as a tuple of ``float32`` tensors on
        ``device``."""
        inputs = inputs.to(self.device)
        inputs = memory_format(inputs, self.precision)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            outputs = self.network(inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return tuple(output.float() for output in outputs)


class OnnxRuntime:
    """Runs an ONNX file in an onnxruntime ``InferenceSession`` with the CPU execution provider, in float32, with
    as many intra-op threads as torch uses (the physical cores unless ``OMP_NUM_THREADS`` or
    ``torch.set_num_threads`` say otherwise), so both runtimes compete equally; operators run one at a time
    (onnxruntime's sequential execution, one inter-op thread)."""

    name = "onnx"
    precision = "float32"

    def __init__(self, path: Path) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/… types
            raise ArtifactError(f"{path} cannot be loaded by onnxruntime ({e}). Run `oculi export` again to "
                                "rewrite it.") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``float32 [B, 3, H, W]`` network inputs → the model's outputs as a tuple of ``float32`` CPU tensors."""
        array = inputs.detach().to("cpu", torch.float32).contiguous().numpy()
        return tuple(torch.from_numpy(output) for output in self.session.run(None, {self.input_name: array}))


def load_runtime(bundle: ModelBundle, network: nn.Module, runtime: str, device: torch.device,
                 precision: str) -> TorchRuntime | OnnxRuntime:
    """The runtime ``runtime`` (``torch`` | ``onnx``) for ``bundle``. ``network`` is the torch module the torch
    runtime runs (and that the bundle's ``model.onnx`` was exported from). ``precision``: ``auto`` (the engine's
    policy for this device, see :func:`~oculi.precision.inference_precision`), ``float32`` or
    ``bfloat16`` (torch only).

    Raises :class:`ConfigError` for an unknown runtime or precision, ``onnx`` with a non-CPU device or with
    ``bfloat16``; :class:`ArtifactError` when ``model.onnx`` is missing or was exported from other weights than
    the bundle's (both name the command that fixes it)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime got {runtime!r}; expected one of {', '.join(RUNTIMES)}.")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision got {precision!r}; expected one of {', '.join(PRECISIONS)}.")
    if runtime == "torch":
        return TorchRuntime(network, device, inference_precision(device) if precision == "auto" else precision)
    if device.type != "cpu":
        raise ConfigError(f"runtime=onnx runs on the CPU (onnxruntime's CPU provider); device got {device}. Pass "
                          "device='cpu', or runtime='torch' for the GPU.")
    if precision == "bfloat16":
        raise ConfigError("precision=bfloat16 applies to runtime=torch; the ONNX export runs in float32. Pass "
                          "precision='auto' or 'float32' with runtime='onnx'.")
    _check_onnx(bundle)
    return OnnxRuntime(bundle.path / ONNX)


def _check_onnx(bundle: ModelBundle) -> None:
    """Raise :class:`ArtifactError` unless the bundle holds a ``model.onnx`` exported from its current weights."""
    source = bundle.source or bundle.path
    export = f"`oculi export {source} --format onnx`"
    if not (bundle.path / ONNX).is_file():
        raise ArtifactError(f"{source} has no {ONNX}: run {export} first (or use runtime=torch).")
    entry: dict[str, Any] | None = bundle.meta.get("onnx")
    if not entry:
        raise ArtifactError(f"{source}: {ONNX} is not recorded in model.json (the bundle was saved again after the "
                            f"export). Run {export} again.")
    if entry.get("weights_sha256") != weights_digest(bundle.path):
        raise ArtifactError(f"{source}: {ONNX} was exported from other weights than weights.safetensors. Run "
                            f"{export} again.")
