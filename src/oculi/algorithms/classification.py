"""``image-classification``: SageMaker's built-in image classification (ResNet), plus EfficientNet-Lite0 for
offline transfer learning, freezing, class-imbalance handling and incremental training."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
import torchmetrics
from pydantic import Field, ValidationInfo, field_validator, model_validator
from torch import nn

from oculi.algorithms import backbones
from oculi.algorithms.base import (
    Algorithm,
    LoaderSpec,
    PreparedData,
    TrainingHyperparameters,
    checked_split,
    resolve_common,
    with_resolved,
)
from oculi.algorithms.optim import build_optimizer, build_schedule
from oculi.config import AUTO, Auto, HyperParameters, Range
from oculi.data.transforms import classification_eval, classification_train, normalize
from oculi.errors import ConfigError
from oculi.precision import memory_format
from oculi.types import SampleSet

NUM_LAYERS = (18, 34, 50, 101, 152, 20, 32, 44, 56, 110)


class ImageClassificationHyperparameters(TrainingHyperparameters):
    """Hyperparameters of ``image-classification``: SageMaker's names, string forms and meanings (section b.1),
    plus oculi's additions (architecture, freeze, balanced_sampling, …). ``auto`` values are resolved before
    training and printed."""

    num_classes: int | None = Field(None, ge=1, description="Number of output classes. Inferred from the data "
                                    "when omitted; a value that disagrees with the data is an error.")
    num_training_samples: int | None = Field(None, ge=1, description="Number of training images (SageMaker "
                                             "requires it; oculi counts them and warns on a mismatch).")
    epochs: Range(int, ge=1) | Auto = Field(AUTO, json_schema_extra={"example": "30"}, description="Passes over "
                                            "the training data. auto = 30 (SageMaker's default), or with max_runtime "
                                            "as many as the time budget allows.")
    learning_rate: Range(float, gt=0, le=1) | Auto = Field(
        AUTO, json_schema_extra={"example": "0.01"},
        description="Initial learning rate. auto = 0.1 (sgd/nag) or 0.001 (adam/rmsprop) from "
        "scratch, 10× lower when fine-tuning (use_pretrained_model=1 or --init-model).")
    mini_batch_size: int = Field(32, ge=1, description="Images per training step.")
    optimizer: Literal["sgd", "adam", "rmsprop", "nag"] = Field("sgd", description="Optimiser; nag = SGD with "
                                                                "Nesterov momentum.")
    momentum: float = Field(0.9, ge=0, le=1, description="Momentum for sgd and nag.")
    weight_decay: float = Field(0.0001, ge=0, le=1, description="L2 weight decay.")
    beta_1: float = Field(0.9, ge=0, le=1, description="Adam's first-moment decay.")
    beta_2: float = Field(0.999, ge=0, le=1, description="Adam's second-moment decay.")
    eps: float = Field(1e-8, ge=0, le=1, description="Adam/RMSProp epsilon.")
    gamma: float = Field(0.9, ge=0, le=1, description="RMSProp decay factor.")
    image_shape: tuple[int, int, int] = Field((3, 224, 224), description="Network input \"C,H,W\" (C = 3). "
                                              "Images are resized, then cropped to H×W.")
    resize: Range(int, ge=1) | Auto = Field(AUTO, description="Shorter image side before cropping. auto = "
                                          "H × 256/224 (256 for 224).")
    augmentation_type: Literal["none", "crop", "crop_color", "crop_color_transform"] = Field(
        "crop", description="crop = random crop + flip; crop_color adds hue/saturation/lightness jitter; "
        "crop_color_transform adds rotation, shear and aspect change. (SageMaker's default is no augmentation.)")
    num_layers: int = Field(18, description="ResNet depth: 18, 34, 50, 101, 152 (ImageNet-style), or 20, 32, 44, "
                            "56, 110 for small (CIFAR-size) images. (SageMaker defaults to 152.)",
                            json_schema_extra={"valid": " | ".join(map(str, NUM_LAYERS))})
    architecture: Literal["resnet", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"] = Field(
        "resnet", description="oculi addition. resnet (depth from num_layers) or efficientnet-lite0/1/2, whose "
        "ImageNet weights install with oculi; lite1/2 are larger and slower, trained at 240/260 px (image_shape "
        "follows unless given).")
    use_pretrained_model: bool = Field(False, description="1 = start from ImageNet weights and re-initialise only "
                                       "the head (efficientnet-lite0: shipped weights; resnet: pretrained_weights).")
    pretrained_weights: str | None = Field(None, description="oculi addition. A .safetensors or torchvision .pth "
                                           "state dict for the backbone (needed for resnet with use_pretrained_model).")
    freeze: Literal["none", "backbone"] | int = Field(
        "none", description="oculi addition. Which layers train: none (all), backbone (only the head), or N (the "
        "head and the last N backbone blocks).", json_schema_extra={"valid": "none | backbone | N (integer ≥ 0)"})
    multi_label: bool = Field(False, description="1 = each image may have several classes (sigmoid outputs).")
    use_weighted_loss: bool = Field(False, description="Weight the loss by inverse class frequency (SageMaker: "
                                    "multi-label only; oculi: single-label too).")
    balanced_sampling: bool = Field(False, description="oculi addition. Draw training images with probability "
                                    "inversely proportional to their class size.")
    top_k: int | None = Field(None, ge=2, description="Also report top-k accuracy.")
    checkpoint_frequency: int | None = Field(None, ge=1, description="Keep a checkpoint every N epochs (the best "
                                             "epoch is always kept and is what the model bundle holds).")
    @field_validator("image_shape", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = [p for p in value.replace(" ", "").strip("()[]").split(",") if p]
            if len(parts) == 2:  # "224,224"
                parts = ["3", *parts]
            return tuple(parts)
        return value

    @field_validator("image_shape")
    @classmethod
    def _shape_rules(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        c, h, w = value
        if c != 3:
            raise ValueError("the channel count must be 3 (images are converted to RGB); e.g. \"3,224,224\"")
        if h < 8 or w < 8:
            raise ValueError("height and width must be ≥ 8")
        return value

    @field_validator("num_layers")
    @classmethod
    def _layers(cls, value: int) -> int:
        if value not in NUM_LAYERS:
            raise ValueError(f"expected one of {', '.join(map(str, NUM_LAYERS))}")
        return value

    @field_validator("freeze", mode="before")
    @classmethod
    def _freeze(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        return value

    @model_validator(mode="after")
    def _cross(self, info: ValidationInfo) -> ImageClassificationHyperparameters:
        problems = []
        _, h, w = self.image_shape
        if self.resize != AUTO and self.resize < max(h, w):
            problems.append(f"`resize` ({self.resize}) must be ≥ the image_shape height and width ({h}×{w}); "
                            f"pass -p resize={round(max(h, w) * 256 / 224)} or leave it out.")
        if self.checkpoint_frequency and self.epochs != AUTO and self.checkpoint_frequency > self.epochs:
            problems.append(f"`checkpoint_frequency` ({self.checkpoint_frequency}) must be ≤ `epochs` "
                            f"({self.epochs}).")
        # Resolved sets (saved bundles, re-validation) hold every field; only a user's own choice can conflict.
        user_set = not (info.context or {}).get("resolved")
        if user_set and self.architecture in backbones.LITES and "num_layers" in self.model_fields_set:
            problems.append("`num_layers` applies to architecture=resnet only, but `architecture` is "
                            f"{self.architecture}; drop one of them.")
        if self.use_pretrained_model and self.architecture == "resnet" and self.num_layers not in \
                backbones.IMAGENET_RESNETS:
            problems.append(f"`use_pretrained_model=1` needs an ImageNet depth (18, 34, 50, 101, 152); "
                            f"`num_layers` is {self.num_layers}.")
        if self.pretrained_weights and not self.use_pretrained_model:
            problems.append("`pretrained_weights` is set but `use_pretrained_model` is 0; pass "
                            "-p use_pretrained_model=1 or drop pretrained_weights.")
        if self.multi_label and self.top_k:
            problems.append("`top_k` applies to single-label classification, but `multi_label` is 1.")
        if problems:
            raise ValueError("\n  - ".join(problems))
        return self


class ClassificationModule(L.LightningModule):
    """Loss, metrics and optimiser around a classification network. Batches are ``uint8 [B, 3, H, W]`` images
    (normalised here, on the model's device) and int64 ``[B]`` targets (float multi-hot ``[B, C]`` when
    multi-label)."""

    def __init__(self, model: nn.Module, hp: ImageClassificationHyperparameters, num_classes: int,
                 mean: tuple[float, ...], std: tuple[float, ...], class_weights: torch.Tensor | None,
                 frozen_norms: list[str]) -> None:
        super().__init__()
        self.model = model
        self.hp = hp
        self.mean, self.std = mean, std
        self.frozen_norms = frozen_norms
        if hp.multi_label:
            self.loss_fn: nn.Module = nn.BCEWithLogitsLoss(pos_weight=class_weights)
            self.val_accuracy = torchmetrics.classification.MultilabelAccuracy(num_classes)
            self.train_accuracy = torchmetrics.classification.MultilabelAccuracy(num_classes)
        else:
            self.loss_fn = nn.CrossEntropyLoss(weight=class_weights)
            self.val_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes, average="micro")
            self.train_accuracy = torchmetrics.classification.MulticlassAccuracy(num_classes, average="micro")
        self.val_top_k = (torchmetrics.classification.MulticlassAccuracy(num_classes, top_k=hp.top_k,
                                                                         average="micro")
                          if hp.top_k and hp.top_k <= num_classes else None)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``uint8 [B, 3, H, W]`` → logits ``[B, num_classes]``."""
        return self.model(memory_format(normalize(images, self.mean, self.std), str(self.hp.precision_dtype)))

    def on_train_epoch_start(self) -> None:
        # Frozen layers keep their ImageNet batch-norm statistics.
        modules = dict(self.model.named_modules())
        for name in self.frozen_norms:
            modules[name].eval()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        logits = self(images)
        loss = self.loss_fn(logits.float(), targets)
        self.train_accuracy(logits.detach().float(), targets.int() if self.hp.multi_label else targets)
        # sync_dist: with DDP the epoch value is the mean over every rank (torchmetrics objects sync themselves)
        self.log("train:loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images),
                 sync_dist=True)
        self.log("train:accuracy", self.train_accuracy, on_step=False, on_epoch=True, batch_size=len(images))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, targets = batch
        # Validate in float32, as `oculi evaluate` and the predictor run, so validation:accuracy is the number a
        # user gets back from the saved model (bf16 autocast flips borderline predictions).
        with torch.autocast(self.device.type, enabled=False):
            logits = self(images).float()
        self.log("validation:loss", self.loss_fn(logits, targets), on_epoch=True, batch_size=len(images),
                 sync_dist=True)
        self.val_accuracy(logits, targets.int() if self.hp.multi_label else targets)
        self.log("validation:accuracy", self.val_accuracy, on_epoch=True, prog_bar=True, batch_size=len(images))
        if self.val_top_k is not None:
            self.val_top_k(logits, targets)
            self.log(f"validation:top_{self.hp.top_k}_accuracy", self.val_top_k, on_epoch=True,
                     batch_size=len(images))

    def configure_optimizers(self) -> Any:
        opt = build_optimizer((p for p in self.model.parameters() if p.requires_grad), self.hp)
        schedule = build_schedule(opt, self.hp, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": schedule} if schedule else opt


class ImageClassification(Algorithm):
    """SageMaker's image-classification algorithm on torchvision ResNets / EfficientNet-Lite0."""

    name = "image-classification"
    task = "classification"
    summary = "Image classification (ResNet 18–152, CIFAR ResNets, EfficientNet-Lite0), single- or multi-label."
    hyperparameters = ImageClassificationHyperparameters
    metric = "validation:accuracy"
    tiny_hyperparameters = {"image_shape": "3,32,32", "num_layers": "20", "mini_batch_size": "4", "num_workers": "0",
                            "epochs": "2", "learning_rate": "0.05"}

    # ---- data -------------------------------------------------------------------------------------------------
    def prepare(self, channels: dict[str, Any], hp: HyperParameters, *, init_meta: dict[str, Any] | None,
                image_roots: dict[str, Path] | None, progress: bool) -> PreparedData:
        from oculi.data.channels import resolve_classification_channels

        assert isinstance(hp, ImageClassificationHyperparameters)
        notes: list[str] = []
        sets = resolve_classification_channels(channels, image_roots=image_roots, num_classes=hp.num_classes,
                                               label_attribute=hp.label_attribute)
        train, validation, report = checked_split(sets, hp, progress, notes)
        classes = train.classes
        if train.multi_label and not hp.multi_label:
            raise ConfigError(f"{train.source} has multi-label annotations; pass -p multi_label=1.")
        hp = with_resolved(hp, self._resolve(hp, train, classes, init_meta, notes))
        return PreparedData(train=train, validation=validation, classes=classes, hyperparameters=hp,
                            train_data=self._data(train, hp, classes, train=True),
                            val_data=self._data(validation, hp, classes, train=False), notes=notes, report=report)

    def _resolve(self, hp: ImageClassificationHyperparameters, train: SampleSet, classes: list[str],
                 init_meta: dict[str, Any] | None, notes: list[str]) -> dict[str, Any]:
        up = resolve_common(hp, train, classes, notes)
        if hp.top_k and hp.top_k > len(classes):
            raise ConfigError(f"`top_k` is {hp.top_k} but there are only {len(classes)} classes; pass "
                              f"-p top_k={max(2, len(classes) - 1)} or leave it out.")
        fine_tune = hp.use_pretrained_model or init_meta is not None
        if hp.learning_rate == AUTO:
            base = 0.1 if hp.optimizer in ("sgd", "nag") else 0.001
            up["learning_rate"] = base / 10 if fine_tune else base
            notes.append(f"learning_rate=auto → {up['learning_rate']:g} ({hp.optimizer}, "
                         f"{'fine-tuning' if fine_tune else 'from scratch'})")
        native = backbones.LITE_INPUT_SIZES.get(hp.architecture, 224)
        if native != 224 and "image_shape" not in hp.model_fields_set:
            up["image_shape"] = (3, native, native)
            notes.append(f"image_shape → 3,{native},{native} ({hp.architecture}'s ImageNet input size; "
                         "-p image_shape=3,H,W to choose)")
        shape = up.get("image_shape", hp.image_shape)
        if hp.resize == AUTO:
            up["resize"] = round(max(shape[1:]) * 256 / 224)
            notes.append(f"resize=auto → {up['resize']} (shorter side before the {shape[1]}×{shape[2]} crop)")
        return up

    def _data(self, data: SampleSet, hp: ImageClassificationHyperparameters, classes: list[str],
              train: bool) -> LoaderSpec:
        """A split's dataset; training shuffles, or draws with inverse-class-frequency weights
        (``balanced_sampling``; a multi-label image by its first class)."""
        from oculi.data.dataset import ClassificationDataset

        crop = (hp.image_shape[1], hp.image_shape[2])
        resize = int(hp.resize)
        transform = (classification_train(hp.augmentation_type, resize, crop) if train
                     else classification_eval(resize, crop))
        dataset = ClassificationDataset(data.samples, len(classes), transform, multi_label=hp.multi_label,
                                        min_side=resize)
        weights = None
        if train and hp.balanced_sampling:
            counts = data.class_counts()
            weights = [1.0 / counts[s.target if isinstance(s.target, int) else s.target[0]] for s in data.samples]
        return LoaderSpec(dataset, batch_size=hp.mini_batch_size, shuffle=train, weights=weights)

    # ---- model ------------------------------------------------------------------------------------------------
    def build_model(self, hp: HyperParameters, classes: list[str], *, pretrained: bool) -> nn.Module:
        assert isinstance(hp, ImageClassificationHyperparameters)
        model = backbones.build_network(hp.architecture, hp.num_layers, len(classes))
        if pretrained and hp.use_pretrained_model:
            if hp.pretrained_weights:
                path = Path(hp.pretrained_weights).expanduser()
                backbones.load_backbone(model, backbones.read_state_dict(path), str(path))
            elif hp.architecture in backbones.LITES:
                backbones.load_backbone(model, backbones.efficientnet_lite_imagenet_state(hp.architecture),
                                        f"{hp.architecture} ImageNet weights")
            else:
                raise ConfigError(
                    f"use_pretrained_model=1 with a ResNet-{hp.num_layers} needs its ImageNet weights as a local "
                    f"file (oculi never downloads): pass -p pretrained_weights=PATH (a .safetensors or torchvision "
                    f".pth state dict, e.g. resnet{hp.num_layers}-*.pth), or use -p architecture=efficientnet-lite0, "
                    "whose ImageNet weights install with oculi.")
        return model

    def apply_freeze(self, model: nn.Module, hp: ImageClassificationHyperparameters) -> list[str]:
        """Set ``requires_grad`` per ``freeze``; return the names of batch-norm modules kept in eval mode."""
        if hp.freeze == "none":
            return []
        blocks = backbones.blocks(model)
        keep = 0 if hp.freeze == "backbone" else int(hp.freeze)
        if keep > len(blocks):
            raise ConfigError(f"`freeze` is {keep} but the network has only {len(blocks)} backbone blocks; pass "
                              f"-p freeze={len(blocks)} (or none to train everything).")
        frozen = tuple(p for block in blocks[: len(blocks) - keep] for p in block)
        for name, param in model.named_parameters():
            if name.startswith(frozen):
                param.requires_grad_(False)
        return [name for name, m in model.named_modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and (name + ".").startswith(frozen)]

    def lightning_module(self, model: nn.Module, data: PreparedData) -> L.LightningModule:
        hp = data.hyperparameters
        assert isinstance(hp, ImageClassificationHyperparameters)
        frozen_norms = self.apply_freeze(model, hp)
        weights = None
        if hp.use_weighted_loss:
            counts = data.train.class_counts()
            n, c = len(data.train), len(data.classes)
            freq = torch.tensor([max(counts.get(i, 0), 1) for i in range(c)], dtype=torch.float32)
            weights = (n - freq).clamp(min=1) / freq if hp.multi_label else n / (c * freq)
        spec = self.input_spec(hp)
        return ClassificationModule(model, hp, len(data.classes), tuple(spec["mean"]), tuple(spec["std"]), weights,
                                    frozen_norms=frozen_norms)

    def input_spec(self, hp: HyperParameters) -> dict[str, Any]:
        assert isinstance(hp, ImageClassificationHyperparameters)
        lite = hp.architecture in backbones.LITES
        return {"mode": "resize_center_crop", "resize": hp.resize, "height": hp.image_shape[1],
                "width": hp.image_shape[2],
                "mean": list(backbones.LITE_MEAN if lite else backbones.IMAGENET_MEAN),
                "std": list(backbones.LITE_STD if lite else backbones.IMAGENET_STD),
                "output": "sigmoid" if hp.multi_label else "softmax"}

    def check_init_model(self, hp: HyperParameters, classes: list[str], meta: dict[str, Any]) -> None:
        assert isinstance(hp, ImageClassificationHyperparameters)
        super().check_init_model(hp, classes, meta)
        old = meta["hyperparameters"]
        for key in ("architecture", "num_layers", "multi_label"):
            if old.get(key) != getattr(hp, key):
                raise ConfigError(f"--init-model was trained with {key}={old.get(key)}, this run has {key}="
                                  f"{getattr(hp, key)}; they must match (pass -p {key}={old.get(key)}).")
