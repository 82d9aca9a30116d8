"""``oculi export MODEL --edge OUT``: a folder that runs the model without torch or oculi — the ONNX model, its
settings (``oculi_edge.json``: preprocessing, classes, thresholds, output format, detection's decoder), the
priors a detector decodes against, and ``predict.py``, one short script using only onnxruntime, numpy and Pillow
that prints SageMaker-shaped predictions (the script is :mod:`oculi.export.edge_predict`, copied)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from oculi import __version__
from oculi.errors import ArtifactError, ConfigError
from oculi.export.onnx import DEFAULT_TOLERANCE, export_checked, opened
from oculi.inference.runtimes import QUANTIZED, available
from oculi.tasks import task_of

SCRIPT = Path(__file__).with_name("edge_predict.py")
REQUIREMENTS = "onnxruntime\nnumpy\nPillow\n"
EDGE_PRECISIONS = ("float32", "int8", "fp16")


@dataclass
class EdgePackage:
    """What :func:`export_edge` wrote: the folder, its files, and the ONNX precision inside."""

    folder: Path
    files: list[str]
    precision: str


def export_edge(model: str | Path, out: str | Path, *, precision: str = "float32",
                overwrite: bool = False) -> EdgePackage:
    """Write the edge package of the bundle ``model`` to the folder ``out`` (refused when it holds files, unless
    ``overwrite``). ``precision``: which ONNX model goes in — ``float32`` (exported and parity-checked now if the
    bundle has none) or an ``int8``/``fp16`` model already exported with ``oculi export --precision``. The folder is
    assembled beside ``out`` and renamed into place, so a failure leaves no half package."""
    if precision not in EDGE_PRECISIONS:
        raise ConfigError(f"--precision got {precision!r}; expected one of {', '.join(EDGE_PRECISIONS)}.")
    source, out = Path(model).expanduser(), Path(out).expanduser()
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise ConfigError(f"{out} already holds files; pass another folder for --edge, or --overwrite.")
    out.parent.mkdir(parents=True, exist_ok=True)
    with opened(source) as bundle, tempfile.TemporaryDirectory(prefix=".oculi-edge-", dir=out.parent) as folder:
        staging = Path(folder) / "package"
        staging.mkdir()
        model_file = staging / "model.onnx"
        if available(bundle, precision):
            shutil.copyfile(bundle.path / QUANTIZED.get(precision, "model.onnx"), model_file)
        elif precision == "float32":
            export_checked(bundle, source, DEFAULT_TOLERANCE, model_file)
        else:
            raise ArtifactError(f"{source} has no current {precision} ONNX model: run `oculi export {source} --format "
                                f"onnx --precision {precision}` first, or pass --precision float32.")
        contract = task_of(bundle)
        predictor = contract.predictor(bundle, "cpu", "torch", "float32")
        settings, arrays = contract.edge(predictor)
        config = {"format": "oculi-edge/1", "oculi": __version__, "task": contract.name, "model": "model.onnx",
                  "precision": precision, "classes": bundle.classes, "thresholds": bundle.meta.get("thresholds"),
                  "algorithm": bundle.meta.get("algorithm"), **settings}
        (staging / "oculi_edge.json").write_text(json.dumps(config, indent=2) + "\n")
        for name, array in arrays.items():
            np.save(staging / name, np.asarray(array, dtype=np.float32))
        shutil.copyfile(SCRIPT, staging / "predict.py")
        (staging / "requirements.txt").write_text(REQUIREMENTS)
        (staging / "README.md").write_text(_readme(contract.title, precision, bundle.classes))
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    return EdgePackage(out, sorted(p.name for p in out.iterdir()), precision)


def _readme(title: str, precision: str, classes: list[str]) -> str:
    """The package's README: what it is and how to run it."""
    return (f"# oculi edge package — {title} ({precision} ONNX)\n\n"
            f"Classes: {', '.join(classes)}\n\n"
            "Runs without torch or oculi:\n\n"
            "```\npip install -r requirements.txt\npython predict.py photo.jpg [--min-score 0.3] [--mask-dir masks]\n"
            "```\n\nOne JSON line per image, in SageMaker's response shapes. `oculi_edge.json` holds the "
            "preprocessing, class names, thresholds and output format.\n")
