"""The predictor contract: :class:`Predictor` turns a model bundle into predictions (decode → preprocess → network →
postprocess). Each task has its own subclass in its own module (:mod:`oculi.inference.classification`,
``detection``, ``segmentation``); :func:`oculi.tasks.load_predictor` picks the one a bundle's task names."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Self

import torch
from PIL import Image

from oculi.artifacts import ModelBundle, load_bundle
from oculi.data.image import decode_image, decode_image_bytes, pil_to_tensor
from oculi.errors import ArtifactError, ConfigError, DataError
from oculi.inference.calibration import Applied, Calibration, Override, parse_threshold, resolve
from oculi.inference.runtimes import load_runtime

ImageInput = str | Path | bytes | Image.Image | torch.Tensor


class Predictor(ABC):
    """Runs a bundle's model on images: decode → preprocess → :meth:`network` (in the chosen runtime) →
    postprocess. Load one with :func:`oculi.load_model` (any task) or ``<TaskPredictor>.from_artifact``; call
    :meth:`predict`.

    ``runtime`` picks what runs the network — ``torch`` (eager PyTorch) or ``onnx`` (the bundle's ``model.onnx``
    in onnxruntime, CPU) — and ``precision`` the torch runtime's arithmetic: ``auto`` (bf16 autocast +
    channels_last on a CPU with native bf16, float32 otherwise), ``float32`` or ``bfloat16``. Decoding,
    preprocessing and postprocessing are the same for every runtime.

    A subclass sets :attr:`task` and :attr:`default_batch_size` and implements :meth:`network` and
    :meth:`predict_batch`; it may narrow decoding with :meth:`decode_min_side`."""

    task: ClassVar[str]
    default_batch_size: ClassVar[int] = 8

    def __init__(self, bundle: ModelBundle, device: str | torch.device = "cpu", runtime: str = "torch",
                 precision: str = "auto") -> None:
        task = bundle.meta.get("task") or "classification"
        if task != self.task:
            raise ArtifactError(f"{bundle.path} is a {task} model, not {self.task}; load it with "
                                "oculi.load_model(PATH), which picks the predictor of the bundle's task.")
        self.bundle = bundle
        self.device = torch.device(device)
        self.model = bundle.model.to(self.device).eval()
        self.spec = bundle.meta["input"]
        self.min_side: int | None = self.decode_min_side()
        self.runtime = load_runtime(bundle, self.network(), runtime, self.device, precision)
        self.calibration = Calibration.from_meta(bundle.meta)

    def decode_min_side(self) -> int | None:
        """The smallest side an image may decode at (large JPEGs decode at reduced scale); None = full size."""
        return None

    @abstractmethod
    def network(self) -> torch.nn.Module:
        """The part of the model a runtime runs (and ``oculi export`` writes to ONNX): normalised
        ``float32 [B, 3, H, W]`` in, the network's raw outputs out."""

    @abstractmethod
    def predict_batch(self, images: list[torch.Tensor], **options: Any) -> list[Any]:
        """``uint8 [3, H, W]`` images (any sizes) → one task result per image, in order."""

    @classmethod
    def from_artifact(cls, path: str | Path, device: str | torch.device = "cpu", runtime: str = "torch",
                      precision: str = "auto") -> Self:
        """Load a bundle folder, a job output folder or a ``model.tar.gz`` of this predictor's task (another
        task's bundle is an :class:`~oculi.errors.ArtifactError`; :func:`oculi.load_model` takes any).

        ``runtime``: ``torch`` (default) or ``onnx`` (needs ``model.onnx`` from ``oculi export MODEL --format
        onnx``; CPU only). ``precision`` (torch runtime): ``auto`` (default; bf16 autocast + channels_last where
        the CPU has native bf16), ``float32`` or ``bfloat16``. Raises :class:`~oculi.errors.ConfigError` for
        unknown or conflicting values and :class:`~oculi.errors.ArtifactError` for a missing or stale
        ``model.onnx``."""
        return cls(load_bundle(Path(path)), device, runtime, precision)

    def predict(self, images: ImageInput | Iterable[ImageInput], batch_size: int | None = None,
                calibrate: bool = True, threshold: Override = None, **options: Any) -> Any:
        """Predict one image (returns its result) or a list of images (returns a list), ``batch_size`` images
        (default :attr:`default_batch_size`) at a time; ``options`` are the task's (e.g. ``min_score``).

        With ``calibrate`` (default) the bundle's temperature and thresholds are applied (:meth:`calibrate`);
        ``threshold`` overrides the thresholds (see :func:`~oculi.inference.calibration.parse_threshold`)."""
        single = isinstance(images, (str, Path, bytes, torch.Tensor)) or hasattr(images, "getpixel")
        items = [images] if single else list(images)  # type: ignore[list-item]
        size = batch_size or self.default_batch_size
        out: list[Any] = []
        for start in range(0, len(items), size):
            out += self.predict_batch([self.to_tensor(item) for item in items[start:start + size]], **options)
        if calibrate:
            out = [self.calibrate(result, threshold) for result in out]
        return out[0] if single else out

    def thresholds_per_class(self) -> bool | None:
        """True when the task thresholds each class's score (multi-label, detection), False when it thresholds
        the top probability (single-label's "unsure"), None when it takes no thresholds (the default)."""
        return None

    def applied(self, threshold: Override = None) -> Applied | None:
        """What :meth:`calibrate` applies for the override ``threshold`` (a string is parsed): None when the
        bundle has no calibration and nothing is overridden, or the task takes no thresholds."""
        per_class = self.thresholds_per_class()
        if per_class is None:
            if threshold is not None:
                raise ConfigError(f"{self.bundle.path} is a {self.task} model, which takes no score thresholds; "
                                  "leave out the threshold (it applies to classification and detection).")
            return None
        return resolve(self.calibration, self.classes, self.parse_threshold(threshold), per_class)

    def calibrate(self, result: Any, threshold: Override = None) -> Any:
        """``result`` (from :meth:`predict_batch`) with the bundle's calibration applied, or the override
        ``threshold``; the base task has none and returns ``result`` unchanged (a threshold for it is a
        :class:`ConfigError`, see :meth:`applied`)."""
        self.applied(threshold)
        return result

    def parse_threshold(self, threshold: Override) -> Override:
        """A threshold override (string, number, ``{class: value}`` or None) checked against the classes."""
        return parse_threshold(threshold, self.classes)

    @property
    def classes(self) -> list[str]:
        """Class names of the model."""
        return self.bundle.classes

    def to_tensor(self, image: ImageInput) -> torch.Tensor:
        """Decode any supported input to ``uint8 [3, H, W]``: a path, encoded bytes, a PIL image or a tensor."""
        if isinstance(image, torch.Tensor):
            if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
                raise DataError(f"expected a uint8 [3, H, W] tensor, got {image.dtype} {tuple(image.shape)}")
            return image
        if isinstance(image, Image.Image):
            return pil_to_tensor(image)
        if isinstance(image, bytes):
            return decode_image_bytes(image, min_side=self.min_side)
        return decode_image(Path(image), min_side=self.min_side)
