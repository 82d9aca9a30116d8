"""Runtimes: what runs a bundle's network inside a predictor. ``torch`` runs the module eagerly under the engine's
precision policy; ``onnx`` runs the bundle's ``model.onnx`` (written by ``oculi export MODEL --format onnx``) — or
its int8 / fp16 variants (``--precision int8|fp16``) — in an onnxruntime session; ``openvino`` runs the same float32
or int8 ONNX files with OpenVINO's CPU plugin (the optional ``openvino`` package). ``auto`` picks, from the
artifacts the bundle has, what the last ``oculi benchmark`` on a machine of this kind measured fastest within the
accuracy bound (without one: bf16 torch on CPUs with native bf16, the int8 or float32 ONNX model on other CPUs,
fp16 ONNX on GPUs). Decoding, preprocessing and postprocessing stay in the predictors, so every runtime shares
every line except the network call: ``runtime(inputs) → outputs``, ``float32`` tensors in and out."""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oculi.artifacts import ONNX, ModelBundle, weights_digest
from oculi.errors import ArtifactError, ConfigError
from oculi.precision import cpu_supports_bf16, inference_precision, memory_format, uses_channels_last

RUNTIMES = ("auto", "torch", "onnx", "openvino")
PRECISIONS = ("auto", "float32", "bfloat16", "int8", "fp16")
QUANTIZED = {"int8": "model.int8.onnx", "fp16": "model.fp16.onnx"}
"""The reduced-precision ONNX files ``oculi export --precision`` writes, by precision (model.json ``onnx_<p>``)."""
OPENVINO_PRECISIONS = ("float32", "int8")


class TorchRuntime:
    """Runs ``network`` with PyTorch on ``device``. ``precision`` (resolved, ``float32`` or ``bfloat16``):
    ``bfloat16`` runs under bf16 autocast; the network and its inputs are in the memory format of
    :func:`oculi.precision.uses_channels_last` (channels_last on a CPU, as in training); outputs are always
    returned as ``float32``."""

    name = "torch"
    reason = ""

    def __init__(self, network: nn.Module, device: torch.device, precision: str) -> None:
        self.device = device
        self.precision = precision
        self.channels_last = uses_channels_last(precision, device.type)
        self.network = memory_format(network.to(device=device), precision, device.type).eval()

    @torch.inference_mode()
    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``float32 [B, 3, H, W]`` network inputs → the network's outputs as a tuple of ``float32`` tensors on
        ``device``."""
        inputs = inputs.to(self.device)
        inputs = memory_format(inputs, self.precision, self.device.type)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            outputs = self.network(inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        return tuple(output.float() for output in outputs)


class OnnxRuntime:
    """Runs an ONNX file in an onnxruntime ``InferenceSession`` — the CPU execution provider, or CUDA's first
    when ``precision`` is ``fp16`` and onnxruntime has it — with as many intra-op threads as torch uses (the
    physical cores unless ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` say otherwise), so the runtimes compete
    equally; operators run one at a time (onnxruntime's sequential execution, one inter-op thread). Idle threads
    sleep instead of spinning (onnxruntime spins by default): on 2 cores, a Lite0 int8 classifier's in-process batch-1
    predict took p50 / p95 11.5 / 40 ms with spinning and 6.0 / 8.7 ms without; through ``oculi serve``, where
    requests come with gaps, spinning gained 1.5 ms of p50 and lost 7 % of throughput. ``precision`` names the
    file's arithmetic (``float32``, ``int8``, ``fp16``); inputs and outputs are float32 for all."""

    name = "onnx"
    reason = ""

    def __init__(self, path: Path, precision: str = "float32") -> None:
        import onnxruntime

        self.precision = precision
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        # threads spinning after a run take the cores from the torch pre- and postprocessing around it (see below)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if precision == "fp16" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/… types
            raise ArtifactError(f"{path} cannot be loaded by onnxruntime ({e}). Run `oculi export` again to "
                                "rewrite it.") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``float32 [B, 3, H, W]`` network inputs → the model's outputs as a tuple of ``float32`` CPU tensors."""
        array = inputs.detach().to("cpu", torch.float32).contiguous().numpy()
        return tuple(torch.from_numpy(output) for output in self.session.run(None, {self.input_name: array}))


def openvino_installed() -> bool:
    """True when the optional ``openvino`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


@contextmanager
def _signal_stack_kept() -> Iterator[None]:
    """Restore this thread's alternate signal stack afterwards (Linux). OpenVINO's CPU plugin installs one of its
    own on the thread that compiles a model and frees it later; the next signal Python handles on that thread
    (SIGCHLD when a subprocess ends: Python's handlers run on the alternate stack) then killed the process with
    SIGSEGV."""
    if not sys.platform.startswith("linux"):
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    before = _SignalStack()
    libc.sigaltstack(None, ctypes.byref(before))
    try:
        yield
    finally:
        libc.sigaltstack(ctypes.byref(before), None)


class _SignalStack(ctypes.Structure):
    """``stack_t`` of sigaltstack(2)."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


class OpenVinoRuntime:
    """Runs an ONNX file (float32 or int8) with OpenVINO's CPU plugin, compiled for latency with as many threads as
    torch uses and, for float32, float32 arithmetic (OpenVINO would otherwise compute in bf16 on CPUs with native
    bf16). Needs the optional ``openvino`` package (Apache-2.0): ``pip install 'oculi[openvino]'``. One inference
    runs at a time (a lock: a compiled model's request is not shared between threads)."""

    name = "openvino"
    reason = ""

    def __init__(self, path: Path, precision: str = "float32") -> None:
        import threading

        if not openvino_installed():
            raise ConfigError("runtime=openvino needs the openvino package: pip install 'oculi[openvino]' (or "
                              "choose runtime onnx).")
        import openvino

        self.precision = precision
        core = openvino.Core()
        config = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
                  "INFERENCE_PRECISION_HINT": "f32"}
        try:
            with _signal_stack_kept():
                self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        except RuntimeError as e:
            raise ArtifactError(f"{path} cannot be compiled by OpenVINO ({e}). Run `oculi export` again to rewrite "
                                "it, or use runtime=onnx.") from None
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()

    def __call__(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``float32 [B, 3, H, W]`` network inputs → the model's outputs as a tuple of ``float32`` CPU tensors."""
        array = inputs.detach().to("cpu", torch.float32).contiguous().numpy()
        with self.lock:
            result = self.request.infer({0: array})
            # the request reuses its output buffers: copy before the next inference
            return tuple(torch.from_numpy(result[output].copy()) for output in self.compiled.outputs)


def load_runtime(bundle: ModelBundle, network: nn.Module, runtime: str, device: torch.device,
                 precision: str) -> TorchRuntime | OnnxRuntime | OpenVinoRuntime:
    """The runtime ``runtime`` (``auto`` | ``torch`` | ``onnx`` | ``openvino``) for ``bundle``. ``network`` is the
    torch module the torch runtime runs (and that the bundle's ONNX files were exported from). ``precision``:
    ``auto`` (torch: the engine's policy for this device, see :func:`~oculi.precision.inference_precision`; onnx and
    openvino: float32), ``float32``, ``bfloat16`` (torch only), ``int8`` (onnx, openvino: ``model.int8.onnx``) or
    ``fp16`` (onnx only: ``model.fp16.onnx``; both from ``oculi export --precision``). ``runtime=auto`` takes the
    choice of :func:`choose_runtime`; with an explicit precision it is the runtime that runs that precision. The
    returned runtime's ``reason`` says why it was chosen (what servers print at start-up).

    Raises :class:`ConfigError` for an unknown runtime or precision, or a combination a runtime does not run;
    :class:`ArtifactError` when the ONNX file is missing or was exported from other weights than the bundle's
    (both name the command that fixes it)."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"runtime got {runtime!r}; expected one of {', '.join(RUNTIMES)}.")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision got {precision!r}; expected one of {', '.join(PRECISIONS)}.")
    reason = f"runtime={runtime} precision={precision} as asked"
    if runtime == "auto" and precision != "auto":  # an explicit precision names its runtime
        runtime = "onnx" if precision in QUANTIZED else "torch"
    elif runtime == "auto":
        runtime, precision, reason = choose_runtime(bundle, device)
    chosen = _load(bundle, network, runtime, device, precision)
    chosen.reason = reason
    return chosen


def _load(bundle: ModelBundle, network: nn.Module, runtime: str, device: torch.device,
          precision: str) -> TorchRuntime | OnnxRuntime | OpenVinoRuntime:
    """The runtime itself, once ``auto`` is resolved (see :func:`load_runtime`)."""
    if runtime == "torch":
        if precision in QUANTIZED:
            raise ConfigError(f"precision={precision} runs the exported ONNX model; pass runtime='onnx' (after `oculi "
                              f"export MODEL --format onnx --precision {precision}`).")
        return TorchRuntime(network, device, inference_precision(device) if precision == "auto" else precision)
    if precision == "bfloat16":
        raise ConfigError("precision=bfloat16 applies to runtime=torch; ONNX models run in float32, int8 or fp16. "
                          "Pass precision='auto', 'float32', 'int8' or 'fp16' with runtime='onnx'.")
    precision = "float32" if precision == "auto" else precision
    if runtime == "openvino":
        if precision not in OPENVINO_PRECISIONS or device.type != "cpu":
            raise ConfigError(f"runtime=openvino runs float32 and int8 ONNX models on the CPU; got precision "
                              f"{precision} on {device}. Use runtime='onnx' for fp16 on a GPU.")
        check_onnx(bundle, precision)
        return OpenVinoRuntime(bundle.path / (QUANTIZED.get(precision, ONNX)), precision)
    if device.type != "cpu" and precision != "fp16":
        raise ConfigError(f"runtime=onnx runs {precision} models on the CPU (onnxruntime's CPU provider); device got "
                          f"{device}. Pass device='cpu', precision='fp16' (after exporting it), or runtime='torch' "
                          "for the GPU.")
    check_onnx(bundle, precision)
    return OnnxRuntime(bundle.path / (QUANTIZED.get(precision, ONNX)), precision)


def machine_kind(device: torch.device | None = None) -> str:
    """What kind of machine runs here, as benchmarks are filed: ``cuda:<GPU name>`` for a GPU device, else
    ``cpu:<ATen's vector capability>`` plus ``+bf16`` on CPUs with native bf16 (e.g. ``cpu:avx2``,
    ``cpu:avx512+bf16``)."""
    if device is not None and device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    capability = torch.backends.cpu.get_cpu_capability().lower()
    return f"cpu:{capability}" + ("+bf16" if cpu_supports_bf16() else "")


def available(bundle: ModelBundle, precision: str) -> bool:
    """True when the bundle holds the ONNX file of ``precision`` (``float32``, ``int8``, ``fp16``), recorded and
    exported from its current weights."""
    try:
        check_onnx(bundle, precision)
    except ArtifactError:
        return False
    return True


def choose_runtime(bundle: ModelBundle, device: torch.device) -> tuple[str, str, str]:
    """``runtime=auto``: ``(runtime, precision, why)``. The fastest row of the bundle's last benchmark on this kind
    of machine (model.json ``benchmarks``) that kept the accuracy bound and whose artifact is still current; without
    one, bf16 torch on CPUs with native bf16; on other CPUs the int8 ONNX model when its accuracy gate ran on this
    kind of CPU, else the float32 one; fp16 ONNX on GPUs (when exported); else torch."""
    kind = machine_kind(device)
    rows = (bundle.meta.get("benchmarks") or {}).get(kind, {}).get("rows", [])
    usable = [row for row in rows
              if row.get("ok") and (row["runtime"] == "torch" or available(bundle, row["precision"]))
              and (row["runtime"] != "openvino" or openvino_installed())]
    if usable:
        best = min(usable, key=lambda row: row["p50_ms"])
        return (best["runtime"], best["precision"],
                f"fastest within the accuracy bound in the last `oculi benchmark` on this machine kind ({kind}): "
                f"{best['p50_ms']:.1f} ms per image at batch 1")
    if device.type == "cuda":
        if available(bundle, "fp16"):
            return "onnx", "fp16", "GPU with an fp16 ONNX export (no benchmark on this machine kind yet)"
        return "torch", "auto", "GPU (no fp16 ONNX export, no benchmark on this machine kind yet)"
    if cpu_supports_bf16():
        return "torch", "bfloat16", f"this CPU has native bf16 ({kind}; no benchmark on it yet)"
    no_bf16 = f"this CPU has no native bf16 ({kind})"
    measured = (bundle.meta.get("onnx_int8") or {}).get("machine")
    has_int8 = available(bundle, "int8")
    if has_int8 and measured == kind:
        return "onnx", "int8", f"{no_bf16} and the int8 export's accuracy was measured on this kind of CPU"
    # int8 kernels differ between CPUs (without VNNI, onnxruntime's u8s8 products can saturate): an accuracy gate
    # passed on another kind of CPU does not carry over until `oculi benchmark` measures it here
    elsewhere = f" (its int8 export was measured on {measured or 'another machine'})" if has_int8 else ""
    if available(bundle, "float32"):
        return "onnx", "float32", f"{no_bf16} and the bundle has a float32 ONNX export{elsewhere}"
    return ("torch", "float32", f"{no_bf16} and the bundle has no ONNX export (`oculi export MODEL --format onnx` "
            "makes one)")


def check_onnx(bundle: ModelBundle, precision: str = "float32") -> None:
    """Raise :class:`ArtifactError` unless the bundle holds the ONNX file of ``precision`` exported from its current
    weights."""
    source = bundle.source or bundle.path
    name = QUANTIZED.get(precision, ONNX)
    key = "onnx" if precision == "float32" else f"onnx_{precision}"
    flag = "" if precision == "float32" else f" --precision {precision}"
    export = f"`oculi export {source} --format onnx{flag}`"
    if not (bundle.path / name).is_file():
        raise ArtifactError(f"{source} has no {name}: run {export} first (or use runtime=torch).")
    entry: dict[str, Any] | None = bundle.meta.get(key)
    if not entry:
        raise ArtifactError(f"{source}: {name} is not recorded in model.json (the bundle was saved again after the "
                            f"export). Run {export} again.")
    if entry.get("weights_sha256") != weights_digest(bundle.path):
        raise ArtifactError(f"{source}: {name} was exported from other weights than weights.safetensors. Run "
                            f"{export} again.")


def describe(runtime: TorchRuntime | OnnxRuntime) -> str:
    """``"onnx int8 (why it was chosen)"``: one line for start-up messages."""
    return f"{runtime.name} {runtime.precision}" + (f" ({runtime.reason})" if runtime.reason else "")
