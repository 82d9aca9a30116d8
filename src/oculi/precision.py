"""The precision policy, below every layer that runs a network (algorithms, engine, inference, export): bf16
autocast on CPUs with bf16 support, fp16 mixed precision on GPUs, float32 otherwise; and the one rule that decides
channels_last (:func:`uses_channels_last`): on every CPU, and under mixed precision on a GPU."""

from __future__ import annotations

import functools
from typing import TypeVar

import torch

from oculi.errors import ConfigError

T = TypeVar("T", torch.Tensor, torch.nn.Module)


@functools.cache
def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 instructions (AVX512-BF16 or AMX), where bf16 autocast is fast."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - depends on the build
        return False


def auto_precision() -> str:
    """Resolve ``precision_dtype=auto`` for this machine: ``float16`` on CUDA, ``bfloat16`` on a bf16 CPU,
    ``float32`` otherwise."""
    if torch.cuda.is_available():
        return "float16"
    return "bfloat16" if cpu_supports_bf16() else "float32"


def lightning_precision(precision_dtype: str) -> str:
    """Map a resolved ``precision_dtype`` to Lightning's precision string; float16 without a GPU is an error."""
    if precision_dtype == "float16":
        if not torch.cuda.is_available():
            raise ConfigError("`precision_dtype=float16` needs a GPU; on CPU pass -p precision_dtype=bfloat16 "
                              "(or auto, or float32).")
        return "16-mixed"
    if precision_dtype == "bfloat16":
        return "bf16-mixed"
    return "32-true"


def inference_precision(device: torch.device) -> str:
    """Resolve ``precision="auto"`` of a torch-runtime predictor on ``device``: ``bfloat16`` (autocast +
    channels_last) on a CPU with native bf16, ``float32`` otherwise — on CUDA too, where inference precision is
    not tuned yet."""
    return "bfloat16" if device.type == "cpu" and cpu_supports_bf16() else "float32"


def uses_channels_last(precision_dtype: str, device_type: str | None = None) -> bool:
    """The one channels_last rule, for training and inference alike: a network and its ``[B, C, H, W]`` inputs use
    the channels_last memory format under mixed precision (``bfloat16`` autocast, ``float16`` on a GPU), where
    oneDNN / cuDNN kernels are fastest in it, and in ``float32`` on a CPU, where oneDNN's NHWC convolutions beat
    the contiguous ones too on most networks — on CPUs without bf16 as well (bench/fp32_paths.py, fp32 training
    on an AVX2-only AMD EPYC: FCOS on EfficientNet-Lite0 1.61×, FCN on Lite0 1.12×, ResNet-18 0.96×; AVX-512:
    1.42× / 1.41× / 1.15×). float32 on a GPU stays contiguous. ``device_type``: where the network runs (default:
    the GPU when there is one, as training's accelerator picks)."""
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    return precision_dtype in ("bfloat16", "float16") or device_type == "cpu"


def memory_format(value: T, precision_dtype: str, device_type: str | None = None) -> T:
    """``value`` (a module, or a 4-d image batch) in the memory format :func:`uses_channels_last` picks for
    ``precision_dtype`` on ``device_type``; tensors of another rank are returned unchanged."""
    fmt = torch.channels_last if uses_channels_last(precision_dtype, device_type) else torch.contiguous_format
    if isinstance(value, torch.nn.Module):
        return value.to(memory_format=fmt)
    if value.dim() != 4:
        return value
    return value.contiguous(memory_format=fmt)
