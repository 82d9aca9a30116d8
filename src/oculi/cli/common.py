"""Helpers shared by the CLI commands: the console, option parsing and the error boundary."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from oculi.config import parse_assignments
from oculi.errors import ConfigError

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# --runtime / --precision of the commands that run a model (predict, serve, transform)
RUNTIME_HELP = ("auto (the fastest runtime the last `oculi benchmark` measured on this kind of machine within the "
                "accuracy bound; without one: bf16 torch on CPUs with native bf16, else the bundle's int8/float32 "
                "ONNX export, else torch), torch, onnx (the bundle's model.onnx; make it with `oculi export MODEL "
                "--format onnx`), or openvino (the same ONNX files with OpenVINO; pip install 'oculi[openvino]').")
PRECISION_HELP = ("auto, float32 or bfloat16 (torch), int8 (onnx, openvino) or fp16 (onnx; the ONNX models `oculi "
                  "export --precision` writes). torch's auto: bf16 autocast + channels_last on CPUs with native "
                  "bf16, else float32.")


def parse_channels(train: Path | None, validation: Path | None, channel: list[str] | None) -> dict[str, Path]:
    """Merge ``--train``, ``--validation`` and ``--channel NAME=PATH`` into a channel dict."""
    channels: dict[str, Path] = {}
    for name, value in parse_assignments(channel or []).items():
        channels[name] = Path(value).expanduser()
    for name, value in (("train", train), ("validation", validation)):
        if value is not None:
            if name in channels:
                raise ConfigError(f"The {name} channel is given twice (--{name} and --channel {name}=…); pass one.")
            channels[name] = value
    return channels


def parse_image_roots(image_root: list[str] | None) -> dict[str, Path] | None:
    """``--image-root s3://bucket/prefix=DIR`` options → ``{prefix: DIR}`` (None when none given)."""
    if not image_root:
        return None
    roots = {}
    for item in image_root:
        prefix, sep, folder = item.rpartition("=")
        if not sep or not prefix:
            raise ConfigError(f"--image-root expects S3PREFIX=DIR, got {item!r}. Example: "
                              "--image-root s3://my-bucket/images=./images")
        roots[prefix] = Path(folder).expanduser()
    return roots


@contextlib.contextmanager
def working(message: str, enabled: bool = True) -> Iterator[None]:
    """A spinner with ``message`` on stderr while the block runs, for work without countable steps (an ONNX
    export, a conversion); only on a terminal and when ``enabled`` (off for ``--no-progress`` / ``--json``), so
    logs and pipes get nothing extra."""
    if not enabled or not err_console.is_terminal:
        yield
        return
    with err_console.status(message):
        yield
