"""``semantic-segmentation``: SageMaker's Semantic Segmentation algorithm (FCN, PSP, DeepLab-v3) on ResNet-50/101
or EfficientNet-Lite0 backbones, with SageMaker's mask layout and label maps, on-the-fly mask-aligned augmentation
and ``validation:mIOU`` / ``validation:pixel_accuracy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import lightning as L
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn
from torch.nn import functional as F  # noqa: N812 - torch's convention

from oculi.algorithms.base import (
    Algorithm,
    LoaderSpec,
    PreparedData,
    TrainingHyperparameters,
    check_channels,
    checked_split,
    resolve_common,
    with_resolved,
)
from oculi.algorithms.optim import build_optimizer, build_schedule
from oculi.algorithms.segmentation_models import build_segmentation, segmentation_input_spec
from oculi.config import AUTO, Auto, HyperParameters, Range
from oculi.data.transforms import normalize
from oculi.errors import ConfigError
from oculi.precision import memory_format
from oculi.types import IGNORE_INDEX, SampleSet

CHANNELS = ("train", "validation", "train_annotation", "validation_annotation", "label_map")


class SemanticSegmentationHyperparameters(TrainingHyperparameters):
    """Hyperparameters of ``semantic-segmentation``: SageMaker's names, string forms and defaults (section b.4),
    plus oculi's additions. ``auto`` values are resolved before training and printed."""

    backbone: Literal["resnet-50", "resnet-101", "efficientnet-lite0",
                      "efficientnet-lite1", "efficientnet-lite2"] = Field(
        "efficientnet-lite0", description="Encoder. resnet-50/101 take ImageNet weights from pretrained_weights; "
        "efficientnet-lite0/1/2's install with oculi (lite1/2: larger, slower, better ImageNet features). "
        "(SageMaker defaults to resnet-50.)")
    use_pretrained_model: bool = Field(True, description="Start the backbone from ImageNet weights (the decoder "
                                       "is never pretrained).")
    pretrained_weights: str | None = Field(None, description="oculi addition. A .safetensors or torchvision .pth "
                                           "state dict for a resnet-50/101 backbone.")
    algorithm: Literal["fcn", "psp", "deeplab"] = Field("fcn", description="Decoder head: fcn (FCN), psp "
                                                        "(pyramid pooling, PSPNet) or deeplab (ASPP, DeepLab-v3).")
    decoder: Literal["skip", "none"] = Field(
        "skip", description="oculi addition. skip: the head's features are fused with the backbone's stride-4 "
        "features by a small DeepLab-v3+-style decoder before the classifier, so masks can follow edges and "
        "structures a few pixels wide; none: the head's stride-8/16 logits are upsampled directly (SageMaker's "
        "networks; they blur anything thinner than the stride).")
    num_classes: int | None = Field(None, ge=2, le=254, description="Number of classes (background included). "
                                    "Inferred from the masks / label map when omitted; values ≥ num_classes "
                                    "(other than 255 = ignore) are errors.")
    num_training_samples: int | None = Field(None, ge=1, description="Number of training images (SageMaker "
                                             "requires it; oculi counts them and warns on a mismatch).")
    base_size: int = Field(520, gt=16, description="Long side the images are rescaled to (× U(0.5, 2.0) in "
                           "training; exactly at validation and inference), aspect kept.")
    crop_size: int = Field(240, gt=16, description="Side of the random square training crop; rounded up to a "
                           "multiple of 8.")
    default_epochs: ClassVar[int] = 10

    epochs: Range(int, ge=1) | Auto = Field(AUTO, json_schema_extra={"example": "10"}, description="Passes over "
                                            "the training data. auto = 10 (SageMaker's default), or with max_runtime "
                                            "as many as the time budget allows.")
    learning_rate: Range(float, gt=0, le=1) | Auto = Field(
        AUTO, json_schema_extra={"example": "0.001"},
        description="Initial learning rate (of the head and decoder with optimizer=auto). auto = 0.001 (SageMaker's "
        "default). Why optimizer=auto changes what it applies to: see optimizer.")
    lr_scheduler: Literal["auto", "poly", "step", "cosine", "warmup_cosine"] = Field(  # type: ignore[assignment]
        AUTO, description="poly: × (1 - step/total)^0.9; step: × lr_scheduler_factor at the epochs in "
        "lr_scheduler_step; cosine: cosine decay to 0; warmup_cosine: linear warm-up, then cosine decay to 0 over "
        "the run (with max_runtime: over the steps the time budget allows). auto = warmup_cosine with max_runtime, "
        "else step when lr_scheduler_step is set, else poly (SageMaker's default).")
    mini_batch_size: int = Field(8, ge=1, description="Images per training step. (SageMaker defaults to 16.) Why 8: "
                                 "on a CPU an image costs the same in any batch, so smaller batches give twice the "
                                 "updates per CPU minute; on isbi2012-em (24 training slices, max_runtime=300 only) "
                                 "mIoU fcn / psp / deeplab 0.763 / 0.753 / 0.756 at 8 against 0.750 / 0.746 / 0.743 "
                                 "at 16 (bench/segmentation_defaults.py).")
    validation_mini_batch_size: int = Field(16, ge=1, description="Images per validation step; 1 = score whole, "
                                            "uncropped images (long side base_size), >1 = centre crop_size crops.")
    optimizer: Literal["auto", "sgd", "adam", "adamw", "adagrad", "nag", "rmsprop"] = Field(
        AUTO, description="Optimiser; nag = SGD with Nesterov momentum. auto = adamw when fine-tuning a pretrained "
        "backbone, else sgd (SageMaker's default). Why: on isbi2012-em (deeplab, lite0, 20 epochs) SageMaker's sgd "
        "at 0.001 ends below predicting the majority class everywhere (mIoU 0.36 / pixel accuracy 0.57 against "
        "0.38 / 0.77); adamw at 0.001 reaches 0.57 / 0.77 (bench/segmentation_defaults.py).")
    backbone_lr_factor: Range(float, gt=0, le=1) | Auto = Field(
        AUTO, json_schema_extra={"example": "0.1"},
        description="oculi addition. The backbone learns at learning_rate × this. auto = 1 (every layer at "
        "learning_rate, as SageMaker). Why not lower: with adamw on isbi2012-em a backbone at 0.1 × ended at mIoU "
        "0.52 against 0.57 at 1 (bench/segmentation_defaults.py).")
    momentum: float = Field(0.9, gt=0, le=1, description="Momentum for sgd and nag.")
    weight_decay: float = Field(0.0001, ge=0, lt=1, description="L2 weight decay.")
    gamma1: float = Field(0.9, ge=0, le=1, description="RMSProp squared-gradient decay.")
    gamma2: float = Field(0.9, ge=0, le=1, description="RMSProp momentum.")
    early_stopping_min_epochs: int = Field(5, ge=0, description="Epochs before early stopping may stop.")
    early_stopping_patience: int = Field(4, ge=1, description="Epochs without improvement before stopping.")
    syncbn: bool = Field(False, description="Synchronise BatchNorm statistics across GPUs (accepted; it only "
                         "matters with several GPUs).")
    label_encoding: dict[str, Any] | None = Field(None, description="oculi addition, normally set from the "
                                                  "label_map channel: {\"scale\": 3} or {\"map\": {\"0\": 5}}; "
                                                  "predicted masks are written in this encoding.")

    @field_validator("label_encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> Any:
        from oculi.data.formats.masks import encoding_json, parse_label_map
        from oculi.errors import DataError

        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError("expected JSON such as {\"scale\": 3} or {\"map\": {\"0\": 5}}") from None
        try:
            return encoding_json(parse_label_map(value, "label_encoding"))
        except DataError as e:
            raise ValueError(str(e).removeprefix("label_encoding: ")) from None

    @model_validator(mode="after")
    def _cross(self) -> SemanticSegmentationHyperparameters:
        if self.pretrained_weights and not self.use_pretrained_model:
            raise ValueError("`pretrained_weights` is set but `use_pretrained_model` is 0; pass "
                             "-p use_pretrained_model=1 or drop pretrained_weights.")
        if self.mini_batch_size == 1 and self.algorithm == "deeplab":
            raise ValueError("`algorithm=deeplab` needs `mini_batch_size` ≥ 2 (torchvision's ASPP image-pooling "
                             "branch has BatchNorm over one value per image); pass -p mini_batch_size=2.")
        return self


def confusion_scores(confusion: torch.Tensor) -> tuple[float, float, list[float | None]]:
    """``(mIOU, pixel_accuracy, per-class IoU)`` of a ``[C, C]`` confusion matrix (rows truth, columns prediction,
    ignored pixels not counted). A class's IoU is TP / (TP + FP + FN); it is None for a class neither in the truth
    nor predicted, and mIOU averages the others. Pixel accuracy is correct pixels / all counted pixels."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    per_class: list[float | None] = [float(t / u) if u > 0 else None for t, u in zip(tp, union, strict=True)]
    valid = [v for v in per_class if v is not None]
    total = float(confusion.sum())
    return (sum(valid) / len(valid) if valid else 0.0), (float(tp.sum()) / total if total else 0.0), per_class


def majority_baseline(confusion: torch.Tensor) -> tuple[float, float, int]:
    """``(mIOU, pixel_accuracy, class)`` of predicting the most frequent true class of a ``[C, C]`` confusion
    matrix (rows truth) everywhere, scored as :func:`confusion_scores` scores a model."""
    truth = confusion.double().sum(1)
    majority = int(truth.argmax())
    everywhere = torch.zeros_like(confusion, dtype=torch.float64)
    everywhere[:, majority] = truth
    miou, pixel_accuracy, _ = confusion_scores(everywhere)
    return miou, pixel_accuracy, majority


def baseline_warning(baseline: tuple[float, float, int], miou: float, pixel_accuracy: float,
                     classes: list[str]) -> str | None:
    """A warning when a model's ``miou`` or ``pixel_accuracy`` is no better than the majority-class ``baseline``
    (:func:`majority_baseline`), else None."""
    base_miou, base_accuracy, majority = baseline
    worse = [f"{name} {mine:.4f} ≤ {theirs:.4f}" for name, mine, theirs in
             (("mIOU", miou, base_miou), ("pixel accuracy", pixel_accuracy, base_accuracy)) if mine <= theirs]
    if not worse:
        return None
    return (f"warning: the model is no better than predicting `{classes[majority]}` everywhere ({', '.join(worse)}): "
            "it has not learned the task. Train longer (e.g. -p max_runtime=300) or leave optimizer / "
            "learning_rate at auto (adamw at 0.001).")


class SegmentationModule(L.LightningModule):
    """Pixel-wise cross-entropy (ignore index 255) and the confusion matrix behind ``validation:mIOU`` and
    ``validation:pixel_accuracy``. Batches are ``uint8 [B, 3, h, w]`` images and ``int64 [B, H, W]`` masks (in
    whole-image validation the mask keeps the original size and the logits are interpolated to it)."""

    def __init__(self, model: nn.Module, hp: SemanticSegmentationHyperparameters, num_classes: int,
                 mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        from torchmetrics.classification import MulticlassConfusionMatrix

        self.model = model
        self.hp = hp
        self.mean, self.std = mean, std
        self.confusion = MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX)
        self.baseline: tuple[float, float, int] | None = None  # majority class everywhere, on the validation data

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, 3, h, w]`` → logits ``[B, C, h, w]``."""
        return self.model(memory_format(normalize(images, self.mean, self.std), str(self.hp.precision_dtype)))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, masks = batch
        loss = F.cross_entropy(self(images).float(), masks, ignore_index=IGNORE_INDEX)
        # sync_dist: with DDP the epoch value is the mean over every rank, as in the other algorithms
        self.log("train:loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images),
                 sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        with torch.autocast(self.device.type, enabled=False):  # validate as `oculi evaluate` will
            logits = self(images).float()
        if logits.shape[-2:] != masks.shape[-2:]:
            logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
        self.confusion.update(logits.argmax(1), masks)

    def on_validation_epoch_end(self) -> None:
        confusion = self.confusion.compute()
        miou, pixel_accuracy, _ = confusion_scores(confusion)
        self.baseline = majority_baseline(confusion)
        self.log("validation:mIOU", miou, prog_bar=True)
        self.log("validation:pixel_accuracy", pixel_accuracy, prog_bar=True)
        self.confusion.reset()

    def configure_optimizers(self) -> Any:
        """The optimiser over two parameter groups — the backbone at ``backbone_lr_factor`` × ``learning_rate``,
        the head and decoder at ``learning_rate`` — and the schedule."""
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        backbone = [p for n, p in trainable if n.startswith("backbone.")]
        rest = [p for n, p in trainable if not n.startswith("backbone.")]
        rate = float(self.hp.learning_rate)
        groups = [g for g in ({"params": backbone, "lr": rate * float(self.hp.backbone_lr_factor)},
                              {"params": rest, "lr": rate}) if g["params"]]
        opt = build_optimizer(groups, self.hp)
        schedule = build_schedule(opt, self.hp, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": schedule} if schedule else opt


def _stack(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


class SemanticSegmentation(Algorithm):
    """SageMaker's semantic-segmentation algorithm (FCN, PSP, DeepLab-v3)."""

    name = "semantic-segmentation"
    task = "segmentation"
    summary = "Semantic segmentation: FCN, PSP or DeepLab-v3 on ResNet-50/101 or EfficientNet-Lite0."
    hyperparameters = SemanticSegmentationHyperparameters
    metric = "validation:mIOU"
    tiny_hyperparameters = {"backbone": "efficientnet-lite0", "base_size": "64", "crop_size": "48",
                            "mini_batch_size": "4", "validation_mini_batch_size": "4", "num_workers": "0",
                            "epochs": "2", "learning_rate": "0.01"}

    def prepare(self, channels: dict[str, Any], hp: HyperParameters, *, init_meta: dict[str, Any] | None,
                image_roots: dict[str, Path] | None, progress: bool) -> PreparedData:
        from oculi.data.segmentation import describe_channels, layout_channels, read_segmentation

        assert isinstance(hp, SemanticSegmentationHyperparameters)
        check_channels(self.name, channels, CHANNELS, "`--train DIR --channel train_annotation=MASKS` (SageMaker's "
                       "layout), or `--train` with a dataset root, a `-ref` manifest, a VOC folder or COCO")
        label_map = _path(channels.get("label_map"))
        init_encoding = (init_meta or {}).get("input", {}).get("label_encoding")
        num_classes = hp.num_classes or (len(init_meta["classes"]) if init_meta else None)
        sets = {"train": read_segmentation(Path(channels["train"]), annotations=_path(channels.get("train_annotation")),
                                           label_map=label_map, image_roots=image_roots, num_classes=num_classes,
                                           encoding=hp.label_encoding or init_encoding,
                                           label_attribute=hp.label_attribute)}
        if "validation" in channels:
            sets["validation"] = read_segmentation(
                Path(channels["validation"]), annotations=_path(channels.get("validation_annotation")),
                label_map=label_map, image_roots=image_roots, classes=sets["train"].classes, split="validation",
                encoding=sets["train"].label_encoding, label_attribute=hp.label_attribute)
        notes: list[str] = []
        # A dataset root in SageMaker's layout: use every channel it has (as `oculi data check ROOT` does).
        layout = layout_channels(Path(channels["train"])) if "train_annotation" not in channels else {}
        if layout:
            notes.append(describe_channels(Path(channels["train"]), layout))
            if "validation" not in channels and "validation" in layout:
                sets["validation"] = read_segmentation(
                    Path(channels["train"]), label_map=label_map, classes=sets["train"].classes, split="validation",
                    encoding=sets["train"].label_encoding)
        train, validation, report = checked_split(sets, hp, progress, notes)
        classes = train.classes
        up = resolve_common(hp, train, classes, notes, default_schedule="poly")
        fine_tune = hp.use_pretrained_model or init_meta is not None
        if hp.optimizer == AUTO:
            up["optimizer"] = "adamw" if fine_tune else "sgd"
            notes.append("optimizer=auto → adamw (fine-tuning a pretrained backbone)" if fine_tune
                         else "optimizer=auto → sgd (no pretrained backbone)")
        if hp.learning_rate == AUTO:
            up["learning_rate"] = 0.001
            notes.append("learning_rate=auto → 0.001 (SageMaker's default)")
        if hp.backbone_lr_factor == AUTO:
            up["backbone_lr_factor"] = 1.0
            notes.append("backbone_lr_factor=auto → 1 (every layer at learning_rate)")
        crop = -(-hp.crop_size // 8) * 8
        if crop != hp.crop_size:
            up["crop_size"] = crop
            notes.append(f"crop_size={hp.crop_size} → {crop} (rounded up to a multiple of 8, as SageMaker does)")
        encoding = sets["train"].label_encoding
        from oculi.data.formats.masks import encoding_json

        if encoding is not None:
            up["label_encoding"] = encoding_json(encoding)
        if hp.validation_mini_batch_size == 1:
            notes.append("validation_mini_batch_size=1: validation scores whole, uncropped images")
        hp = with_resolved(hp, up)
        return PreparedData(train=train, validation=validation, classes=classes, hyperparameters=hp,
                            train_data=self._data(train, hp, train=True),
                            val_data=self._data(validation, hp, train=False), notes=notes, report=report)

    def _data(self, data: SampleSet, hp: SemanticSegmentationHyperparameters, train: bool) -> LoaderSpec:
        """A split's dataset: random scale + crop in training; validation crops, or whole images when
        ``validation_mini_batch_size`` is 1."""
        from oculi.data.dataset import SegmentationDataset
        from oculi.data.transforms import segmentation_eval, segmentation_train

        if train:
            transform = segmentation_train(hp.base_size, hp.crop_size, IGNORE_INDEX)
            batch = hp.mini_batch_size
        else:
            whole = hp.validation_mini_batch_size == 1
            transform = segmentation_eval(hp.base_size, None if whole else hp.crop_size, IGNORE_INDEX)
            batch = hp.validation_mini_batch_size
        return LoaderSpec(SegmentationDataset(data.samples, transform), batch_size=batch, collate_fn=_stack,
                          shuffle=train)

    def build_model(self, hp: HyperParameters, classes: list[str], *, pretrained: bool) -> nn.Module:
        assert isinstance(hp, SemanticSegmentationHyperparameters)
        weights = Path(hp.pretrained_weights).expanduser() if hp.pretrained_weights and pretrained else None
        return build_segmentation(hp.algorithm, hp.backbone, len(classes),
                                  pretrained=pretrained and hp.use_pretrained_model, pretrained_weights=weights,
                                  skip=hp.decoder == "skip")

    def model_from_meta(self, meta: dict[str, Any]) -> nn.Module:
        """As :meth:`Algorithm.model_from_meta`; bundles written before the ``decoder`` hyperparameter existed
        have no decoder."""
        return super().model_from_meta(_with_decoder(meta))

    def lightning_module(self, model: nn.Module, data: PreparedData) -> L.LightningModule:
        hp = data.hyperparameters
        assert isinstance(hp, SemanticSegmentationHyperparameters)
        spec = self.input_spec(hp)
        return SegmentationModule(model, hp, len(data.classes), tuple(spec["mean"]), tuple(spec["std"]))

    def after_training(self, module: L.LightningModule, metrics: dict[str, float], classes: list[str]) -> list[str]:
        """A warning when the best epoch is no better than predicting the majority class everywhere."""
        baseline = getattr(module, "baseline", None)
        if baseline is None or "validation:mIOU" not in metrics:
            return []
        warning = baseline_warning(baseline, metrics["validation:mIOU"], metrics["validation:pixel_accuracy"],
                                   classes)
        return [warning] if warning else []

    def input_spec(self, hp: HyperParameters) -> dict[str, Any]:
        assert isinstance(hp, SemanticSegmentationHyperparameters)
        return segmentation_input_spec(hp.backbone, hp.base_size, hp.crop_size, hp.label_encoding)

    def check_init_model(self, hp: HyperParameters, classes: list[str], meta: dict[str, Any]) -> None:
        """SageMaker's rule: incremental training needs the same backbone, algorithm, crop_size and classes (and
        decoder, an oculi addition)."""
        assert isinstance(hp, SemanticSegmentationHyperparameters)
        super().check_init_model(hp, classes, meta)
        meta = _with_decoder(meta)
        for key in ("backbone", "algorithm", "crop_size", "decoder"):
            if meta["hyperparameters"].get(key) != getattr(hp, key):
                raise ConfigError(f"--init-model was trained with {key}={meta['hyperparameters'].get(key)}, this "
                                  f"run has {key}={getattr(hp, key)}; they must match (pass -p {key}="
                                  f"{meta['hyperparameters'].get(key)}).")


def _with_decoder(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with ``decoder=none`` where its hyperparameters predate the decoder."""
    if "decoder" in meta.get("hyperparameters", {}):
        return meta
    return {**meta, "hyperparameters": {**meta["hyperparameters"], "decoder": "none"}}


def _path(value: Any) -> Path | None:
    return Path(value) if value is not None else None
