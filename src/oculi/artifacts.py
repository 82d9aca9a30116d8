"""The model bundle: a folder with ``model.json`` (algorithm, task, resolved hyperparameters, class names, input
spec, metrics, versions, dataset fingerprint) and ``weights.safetensors``, plus ``model.onnx`` once ``oculi export``
has run (recorded under model.json's ``"onnx"`` key); ``model.tar.gz`` packs it the way SageMaker ships model
artifacts. Bundles are self-describing: whoever loads one needs no other flag."""

from __future__ import annotations

import hashlib
import json
import platform
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import nn

from oculi.errors import ArtifactError
from oculi.types import BoxTarget, MaskTarget, SampleSet

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "weights.safetensors"
ONNX = "model.onnx"


@dataclass
class ModelBundle:
    """A loaded bundle: ``meta`` is model.json's content, ``model`` the network in eval mode on CPU. ``path`` is
    the folder holding the files (a temporary one for a ``model.tar.gz``); ``source`` is what the caller passed
    (the archive itself, a job folder or the bundle folder), for messages."""

    path: Path
    meta: dict[str, Any]
    model: nn.Module
    source: Path | None = None

    @property
    def classes(self) -> list[str]:
        """Class names, index ``i`` ↔ output ``i``."""
        return list(self.meta["classes"])

    @property
    def algorithm(self) -> str:
        """The registered algorithm name that produced this bundle."""
        return str(self.meta["algorithm"])


def versions() -> dict[str, str]:
    """Versions of the software that wrote a bundle."""
    import torchvision

    from oculi import __version__

    return {"oculi": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


def dataset_fingerprint(sets: Sequence[SampleSet]) -> str:
    """16 hex digits identifying the labelled data of ``sets`` (a run's training and validation samples), for
    ``model.json``'s ``dataset.fingerprint``: the class names and, per image in path order, its file name and
    target — a class index (tuple) for classification, the ``xyxy`` pixel boxes, labels and difficult flags for
    detection, the mask file's name and size in bytes, value lookup, colours and polygons for segmentation. The
    same data in another folder gives the same fingerprint; a changed label gives another. Reads no image."""
    digest = hashlib.sha1()
    for sample_set in sets:
        digest.update(("\t".join(sample_set.classes) + "\n").encode())
        for sample in sorted(sample_set.samples, key=lambda x: str(x.image)):
            digest.update(f"{sample.image.name}\t{_target_text(sample.target)}\n".encode())
    return digest.hexdigest()[:16]


def _target_text(target: Any) -> str:
    """A stable text form of one sample's target (see :func:`dataset_fingerprint`)."""
    if isinstance(target, BoxTarget):
        return f"{target.boxes}|{target.labels}|{target.difficult}"
    if isinstance(target, MaskTarget):
        size = target.mask.stat().st_size if target.mask is not None and target.mask.is_file() else None
        name = target.mask.name if target.mask is not None else None
        return f"{name}|{size}|{target.lookup}|{target.colors}|{target.polygons}"
    return str(target)


def save_bundle(directory: Path, meta: dict[str, Any], model: nn.Module) -> Path:
    """Write ``model.json`` and ``weights.safetensors`` into ``directory`` (created) and return it.

    Files are written to temporary names and renamed, so an interrupted save never leaves a half bundle."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, **meta, "versions": versions(),
            "created": datetime.now(UTC).isoformat(timespec="seconds")}
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp_weights = directory / (WEIGHTS + ".tmp")
    save_file(state, str(tmp_weights), metadata={"format": "pt"})
    tmp_json = directory / (MODEL_JSON + ".tmp")
    tmp_json.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    tmp_weights.replace(directory / WEIGHTS)
    tmp_json.replace(directory / MODEL_JSON)
    return directory


def update_meta(directory: Path, changes: dict[str, Any]) -> dict[str, Any]:
    """Merge ``changes`` into the ``model.json`` of the bundle folder ``directory`` (top-level keys replaced) and
    return the new content. Written to a temporary name and renamed, so a reader never sees half a file."""
    directory = Path(directory)
    meta = {**read_meta(directory), **changes}
    tmp_json = directory / (MODEL_JSON + ".tmp")
    tmp_json.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    tmp_json.replace(directory / MODEL_JSON)
    return meta


def weights_digest(directory: Path) -> str:
    """SHA-256 (hex) of a bundle folder's ``weights.safetensors``: ties derived files such as ``model.onnx`` to
    the weights they were made from."""
    digest = hashlib.sha256()
    with open(Path(directory) / WEIGHTS, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_meta(path: Path) -> dict[str, Any]:
    """Read ``model.json`` of a bundle folder (or of a ``model.tar.gz`` already unpacked)."""
    path = Path(path)
    file = path / MODEL_JSON
    if not file.is_file():
        raise ArtifactError(f"{path} is not an oculi model bundle: {MODEL_JSON} is missing. Pass the folder "
                            "that `oculi train` printed as the model (it holds model.json and weights.safetensors).")
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{file}:{e.lineno}: invalid JSON ({e.msg}).") from None
    for key in ("algorithm", "hyperparameters", "classes"):
        if key not in meta:
            raise ArtifactError(f"{file}: missing the key {key!r}; the bundle is incomplete.")
    return meta


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read ``weights.safetensors`` of a bundle; truncated or corrupt files give a clear error."""
    from safetensors.torch import load_file

    file = Path(path) / WEIGHTS
    if not file.is_file():
        raise ArtifactError(f"{file} is missing; the bundle is incomplete.")
    try:
        return load_file(str(file))
    except Exception as e:
        raise ArtifactError(f"{file} is truncated or corrupt ({e}). Copy the bundle again or retrain.") from None


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model`` strictly; missing, unexpected or mis-shaped tensors name ``source``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} ≠ {tuple(own[k].shape)}" for k in own
             if k in state and state[k].shape != own[k].shape]
    if missing or extra or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if extra:
            parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
        if wrong:
            parts.append(f"{len(wrong)} with other shapes (e.g. {wrong[0]})")
        raise ArtifactError(f"{source} does not match the network described in model.json: "
                            + ", ".join(parts) + ".")
    model.load_state_dict(state, strict=True)


def resolve_bundle_path(path: Path) -> Path:
    """Accept a bundle folder, a folder containing ``model/`` (a job's output), or a ``model.tar.gz``
    (unpacked into a temporary folder)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ArtifactError(f"{path} does not exist. Pass a model bundle folder or model.tar.gz.")
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        out = Path(tempfile.mkdtemp(prefix="oculi-model-"))
        try:
            with tarfile.open(path) as tar:
                tar.extractall(out, filter="data")
        except (tarfile.TarError, OSError) as e:
            raise ArtifactError(f"{path}: cannot unpack ({e}).") from None
        return out
    if path.is_dir() and not (path / MODEL_JSON).exists() and (path / "model" / MODEL_JSON).exists():
        return path / "model"
    return path


def load_bundle(path: Path) -> ModelBundle:
    """Load a bundle: rebuild the network the registered algorithm describes and load its weights strictly. An
    algorithm this oculi does not have is an :class:`ArtifactError` naming the bundle's ``model.json``."""
    from oculi.algorithms import get_algorithm
    from oculi.errors import RegistryError

    source = Path(path).expanduser()
    path = resolve_bundle_path(path)
    meta = read_meta(path)
    try:
        if not isinstance(meta["algorithm"], str):
            raise RegistryError("An algorithm is named by a string, e.g. \"image-classification\".")
        algorithm = get_algorithm(meta["algorithm"])
    except RegistryError as e:
        raise ArtifactError(f"{path / MODEL_JSON}: names the algorithm {meta['algorithm']!r}, which this oculi "
                            f"does not have. {e} Use a bundle written by `oculi train` (or the oculi version that "
                            "wrote it).") from None
    model = algorithm.model_from_meta(meta)
    load_state(model, read_weights(path), str(path / WEIGHTS))
    model.eval()
    return ModelBundle(path=path, meta=meta, model=model, source=source)


def pack(directory: Path, archive: Path | None = None) -> Path:
    """Pack a bundle folder into ``model.tar.gz`` (SageMaker's artifact form) beside it, or at ``archive``."""
    directory = Path(directory)
    archive = Path(archive) if archive else directory.parent / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for file in sorted(directory.iterdir()):
            if file.is_file() and file != archive and not file.name.endswith((".tmp", ".tar.gz")):
                tar.add(file, arcname=file.name)
    return archive
