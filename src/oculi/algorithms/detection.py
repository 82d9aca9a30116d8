"""``object-detection``: SageMaker's Object Detection algorithm (SSD) on torchvision's SSD building blocks, with
VGG-16, ResNet-50 or EfficientNet-Lite base networks — or torchvision's anchor-free FCOS on a feature pyramid, the
``network=auto`` choice where the base network has one (:mod:`oculi.algorithms.detection_networks`) — on-the-fly
box-consistent augmentation and VOC-style ``validation:mAP`` at ``overlap_threshold``."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from pydantic import Field, ValidationInfo, field_validator, model_validator
from torch import nn

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
from oculi.algorithms.detection_export import detection_export_plan
from oculi.algorithms.detection_models import (
    freeze_by_pattern,
    from_model_labels,
    ssd_input_spec,
    to_model_targets,
)
from oculi.algorithms.detection_networks import NETWORKS
from oculi.algorithms.optim import build_optimizer, build_schedule
from oculi.config import AUTO, Auto, HyperParameters, Range, parse_int_list
from oculi.errors import ConfigError, DataError
from oculi.types import SampleSet

# learning_rate=auto per optimizer (adam and rmsprop: 0.002)
AUTO_LEARNING_RATES = {"adamw": 0.001, "sgd": 0.01, "adadelta": 1.0}


class ObjectDetectionHyperparameters(TrainingHyperparameters):
    """Hyperparameters of ``object-detection``: SageMaker's names, string forms and meanings (section b.3), plus
    oculi's additions. ``auto`` values are resolved before training and printed."""

    num_classes: int | None = Field(None, ge=1, description="Number of object classes (background excluded). "
                                    "Inferred from the data when omitted; a disagreeing value is an error.")
    num_training_samples: int | None = Field(None, ge=1, description="Number of training images (accepted; "
                                             "oculi counts them and warns on a mismatch).")
    network: Literal[tuple(("auto", *NETWORKS.names()))] = Field(  # type: ignore[valid-type]
        AUTO, description="oculi addition. The detector: ssd (SageMaker's SSD) or fcos (anchor-free, feature "
        "pyramid from stride 8 — small objects; efficientnet-lite* or resnet-50 base network). auto = fcos on "
        "efficientnet-lite* / resnet-50, ssd on vgg-16 or when an SSD-only option (default_boxes, "
        "default_box_scales/ratios, feature_norm) is given. Why: on bees (seeded 320/80 split, 5 minutes of a 2-core "
        "CPU, mini_batch_size 8, image_shape 256) FCOS reached validation mAP@0.5 0.45 and SSD 0.23 "
        "(bench/detection_quality.py). Bundles from before this option are SSDs.")
    base_network: Literal["vgg-16", "resnet-50", "efficientnet-lite0",
                          "efficientnet-lite1", "efficientnet-lite2"] = Field(
        "efficientnet-lite0", description="Base network. vgg-16 and resnet-50 take ImageNet weights from "
        "pretrained_weights; efficientnet-lite0/1/2's install with oculi (lite1/2: larger and slower, ImageNet "
        "top-1 about 76.7 / 77.6 % against lite0's 75.1 %; on bees lite2 did not pay: 15 minutes mAP@0.5 0.545 "
        "against lite0's 0.535, 60 minutes at image_shape 320 0.566 against 0.573; coco128 person in 15 minutes 0.251 "
        "against 0.284). (SageMaker defaults to vgg-16.)")
    use_pretrained_model: bool = Field(True, description="Start the base network from ImageNet weights; its "
                                       "batch-norm layers then keep their ImageNet statistics (frozen).")
    pretrained_weights: str | None = Field(None, description="oculi addition. A .safetensors or torchvision .pth "
                                           "state dict for a vgg-16/resnet-50 base network.")
    image_shape: int = Field(256, ge=64, description="Square input side in pixels (SageMaker: 300 or 512; "
                             "smaller sizes train faster). Not a \"C,H,W\" string. (SageMaker defaults to 300.) Why "
                             "256: on bees FCOS reached validation mAP@0.5 0.45 in 5 minutes of a 2-core CPU at 256, "
                             "0.43 at 224 and 0.31 at 300; coco128 person in 15 minutes 0.284 at 256, 0.267 at "
                             "224, 0.256 at 320; bees in 60 minutes 0.629 at 448 against 0.573 at 320 and 0.600 at "
                             "512 (bench/detection_quality.py): with a longer budget, small objects gain from more "
                             "pixels, up to about 448.")
    epochs: Range(int, ge=1) | Auto = Field(AUTO, json_schema_extra={"example": "30"}, description="Passes over "
                                            "the training data. auto = 30 (SageMaker's default), or with max_runtime "
                                            "as many as the time budget allows.")
    learning_rate: Range(float, gt=0, le=1) | Auto = Field(
        AUTO, json_schema_extra={"example": "0.001"},
        description="Initial learning rate of the extra layers and heads; the base network learns at "
        "backbone_lr_factor × it. It warms up linearly over the first steps (at most 50). auto = 0.001 for adamw "
        "(the fine-tuning recipe: AdamW 1e-3, base network at a tenth), 0.002 for adam/rmsprop, 0.01 for sgd, 1.0 "
        "for adadelta. An explicit value is used as given, as SageMaker does. Measured (adamw, coco128 person, 15 "
        "minutes of a 2-core CPU): validation mAP@0.5 0.284 at 0.001 and at 0.0005, while 0.002 was unstable (0.13 "
        "after 43 of 71 epochs) (bench/detection_quality.py).")
    mini_batch_size: int = Field(8, ge=1, description="Images per training step. (SageMaker defaults to 32.) Why "
                                 "8: on a CPU an image costs the same in any batch, so smaller batches give four "
                                 "times the updates per CPU minute; on bees FCOS at image_shape 300 reached mAP@0.5 "
                                 "0.31 in 5 minutes at 8 against 0.08 at 32; smaller still did not pay: coco128 person "
                                 "in 15 minutes 0.233 at 4 against 0.284 at 8 (bench/detection_quality.py).")
    optimizer: Literal["auto", "sgd", "adam", "adamw", "rmsprop", "adadelta"] = Field(
        AUTO, description="Optimiser; adamw = Adam with decoupled weight decay. auto = adamw when fine-tuning a "
        "pretrained base network (or --init-model), else adam. (SageMaker defaults to sgd, which oculi uses when "
        "given explicitly.) Why: AdamW at 0.001 with the base network at a tenth is the recipe that reached mAP@0.5 "
        "0.27 on coco128 person with the same SSD parts (issue 17); 3-epoch bees runs (30 steps) do not separate it "
        "from adam at 0.002 (mAP@0.5 0.016 against 0.016 at the last epoch, bench/detection_quality.py).")
    backbone_lr_factor: Range(float, gt=0, le=1) | Auto = Field(
        AUTO, json_schema_extra={"example": "0.1"},
        description="oculi addition. The base network learns at learning_rate × this (the extra layers and heads "
        "at learning_rate). auto = 0.1 when fine-tuning a pretrained base network (ImageNet features change "
        "slowly while the fresh heads catch up), else 1. Measured: coco128 person in 15 minutes mAP@0.5 0.284 at 0.1, "
        "0.268 at 0.3, 0.292 at 0.03 (mAP@[.5:.95] 0.107 against 0.084, still rising at the last epoch where 0.1 "
        "fell back from 0.28 to 0.23), but bees in 15 minutes 0.506 at 0.03 against 0.536 at 0.1; on an "
        "AVX2-only CPU 0.03 lost on both (person 0.292 against 0.305, bees 0.513 against 0.517) "
        "(bench/detection_quality.py, oculi evaluate).")
    momentum: float = Field(0.9, gt=0, le=1, description="Momentum for sgd.")
    weight_decay: float = Field(
        0.0005, ge=0, lt=1, description="L2 weight decay (with adamw, AdamW's decoupled decay: learning_rate × "
        "this per step). Measured: coco128 person in 15 minutes, 0.05 gave oculi evaluate mAP@0.5 0.273 against "
        "0.282 at 0.0005 — its last epochs stood higher (0.26 against 0.23: less over-fitting), its best no "
        "better (bench/detection_quality.py -p weight_decay=0.05).")
    overlap_threshold: float = Field(0.5, gt=0, le=1, description="IoU at which a detection matches a true box "
                                     "in validation:mAP.")
    nms_threshold: float = Field(
        0.45, gt=0, le=1, description="IoU above which non-maximum suppression drops the lower-scoring box. "
        "Measured on crowded people (coco128 person, one bundle re-evaluated): mAP@0.5 0.282 at 0.45, 0.276 at "
        "0.5, 0.247 at 0.6.")
    nms_topk: int = Field(400, ge=1, description="Candidates per class kept before non-maximum suppression.")
    freeze_layer_pattern: str | None = Field(None, description="Regular expression over parameter names whose "
                                             "weights stay fixed, e.g. ^backbone\\.body\\.blocks\\.[0-2]\\.")
    label_width: int = Field(350, ge=5, description="Accepted for SageMaker compatibility (RecordIO label "
                             "padding); not used.")
    default_boxes: Literal["auto", "fitted", "sagemaker"] = Field(
        AUTO, description="oculi addition (network=ssd). fitted: a stride-8 feature map is added and the default "
        "boxes' scales and aspect ratios are fitted to the training boxes at prepare time (stored in the bundle); "
        "sagemaker: SageMaker's fixed boxes (scales 0.07, 0.15…0.87; maps from stride 16 on resnet-50 / "
        "efficientnet). auto = fitted. Why: on bees at image_shape 300, 84 % of the training boxes get a default "
        "box at IoU ≥ 0.5 against 55 % with SageMaker's (bench/ssd_diagnosis.py); a box without one is learned "
        "from a single poor match.")
    default_box_scales: list[float] | None = Field(
        None, json_schema_extra={"example": "0.04,0.115,0.26,0.42,0.58,0.74,0.9,1.05"},
        description="oculi addition. The fitted layout's default-box scales, fractions of image_shape, one per "
        "feature map plus one (set by default_boxes=auto; give them to skip the fit).")
    default_box_ratios: list[float] | None = Field(
        None, json_schema_extra={"example": "2,3"}, description="oculi addition. The fitted layout's aspect "
        "ratios on every map (each r gives w/h = r and 1/r, besides two square boxes); set by default_boxes=auto.")
    min_negatives: int = Field(
        32, ge=0, description="oculi addition (network=ssd). Hard-negative mining keeps 3 negatives per positive "
        "default box (SageMaker's SSD) and at least this many per image, so images without objects still teach "
        "background; 0 = no minimum (torchvision's rule).")

    feature_norm: Literal["auto", "on", "off"] = Field(
        AUTO, description="oculi addition (network=ssd, resnet-50 / efficientnet base networks). on: a batch norm on "
        "each base-network feature map before the SSD head. auto = on for new models (bundles written before it "
        "existed keep off). Why: those maps' activations have an RMS of 2–8, so the fresh head's first Adam steps "
        "shift its outputs by several units and the first epochs are spent recovering (bench/detection_quality.py).")

    mosaic: float = Field(
        0.0, ge=0, le=1, description="oculi addition. The share of training images replaced by a 2×2 mosaic of four "
        "augmented images meeting at a random point (YOLO's mosaic: more objects and contexts per step, objects at "
        "their own scale). 0 = off. Why off: in 15 minutes of a 2-core CPU, mosaic=0.5 reached validation mAP@0.5 "
        "0.505 on bees (0.535 without) and 0.205 on coco128 person (0.281 without): each mosaic decodes four images, "
        "so fewer steps fit (bench/detection_quality.py -p mosaic=0.5).")
    multi_scale: float = Field(
        0.0, ge=0, lt=1, description="oculi addition (network=fcos). Multi-scale training: each training step's "
        "batch is resized to a side drawn (seeded) from the multiples of 32 within ±multi_scale of image_shape, "
        "e.g. 0.25 at 256 → 192…320; validation, evaluation and serving stay at image_shape. The SSD's default "
        "boxes are laid out for one input size, so it needs network=fcos. 0 = off. Why off: in 15 minutes of a "
        "2-core CPU, multi_scale=0.25 reached validation mAP@0.5 0.523 on bees (0.535 without; 21 epochs against "
        "26) (bench/detection_quality.py -p multi_scale=0.25).")

    @field_validator("default_box_scales", "default_box_ratios", mode="before")
    @classmethod
    def _floats(cls, value: Any) -> Any:
        return None if value is None or value == "" else parse_int_list(value)

    @field_validator("default_box_scales")
    @classmethod
    def _scales(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (any(not 0 < v <= 1.5 for v in value)
                                  or any(b <= a for a, b in zip(value, value[1:], strict=False))):
            raise ValueError("expected increasing fractions of the image side in (0, 1.5], e.g. "
                             "0.04,0.115,0.26,0.42,0.58,0.74,0.9,1.05")
        return value

    @field_validator("default_box_ratios")
    @classmethod
    def _ratios(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(v < 1 for v in value)):
            raise ValueError("expected aspect ratios ≥ 1 (each also gives its inverse), e.g. 2,3")
        return value

    @field_validator("image_shape", mode="before")
    @classmethod
    def _shape(cls, value: Any) -> Any:
        if isinstance(value, str) and "," in value:
            raise ValueError("object detection takes one number, the square side (e.g. 300), not \"C,H,W\"")
        return value

    @model_validator(mode="after")
    def _cross(self, info: ValidationInfo) -> ObjectDetectionHyperparameters:
        problems = []
        if self.pretrained_weights and not self.use_pretrained_model:
            problems.append("`pretrained_weights` is set but `use_pretrained_model` is 0; pass "
                            "-p use_pretrained_model=1 or drop pretrained_weights.")
        if self.network not in ("ssd", AUTO) and (self.default_boxes == "fitted" or self.default_box_scales is not None
                                                  or self.default_box_ratios is not None):
            problems.append(f"`default_boxes` / `default_box_scales` / `default_box_ratios` shape SSD's default "
                            f"boxes; network={self.network} has none. Drop them, or pass -p network=ssd.")
        if self.network not in ("ssd", AUTO) and self.feature_norm != AUTO:
            problems.append(f"`feature_norm` is an SSD option; network={self.network} normalises its own feature "
                            "pyramid. Drop it, or pass -p network=ssd.")
        if self.default_boxes == "sagemaker" and (self.default_box_scales is not None
                                                  or self.default_box_ratios is not None):
            problems.append("`default_boxes=sagemaker` keeps SageMaker's fixed boxes, but default_box_scales / "
                            "default_box_ratios are set; drop them, or pass -p default_boxes=fitted.")
        if self.network == "fcos" and self.base_network == "vgg-16":
            problems.append("`network=fcos` builds its feature pyramid on efficientnet-lite0 or resnet-50, not "
                            "vgg-16; pass -p base_network=efficientnet-lite0, or -p network=ssd.")
        if self.multi_scale and self.network == "ssd":
            problems.append(f"`multi_scale={self.multi_scale:g}` resizes training batches, but network=ssd lays out "
                            "its default boxes for one input size; pass -p network=fcos, or drop multi_scale.")
        if problems:
            raise ValueError("\n  - ".join(problems))
        return self


WARMUP_STEPS = 50  # linear learning-rate warm-up, at most this many steps (and at most a tenth of the run)


def step_size(side: int, multi_scale: float, seed: int, step: int) -> int:
    """The training side for global step ``step`` under ``multi_scale``: a multiple of 32 in
    ``[side·(1 − m), side·(1 + m)]`` drawn from a generator seeded by ``(seed, step)`` — so a resumed run draws the
    same sides —, or ``side`` itself when ``m`` is 0 or no multiple of 32 lies in the range."""
    low, high = math.ceil(side * (1 - multi_scale) / 32), math.floor(side * (1 + multi_scale) / 32)
    if not multi_scale or high < max(low, 1):
        return side
    return 32 * random.Random(seed * 1_000_003 + step).randint(max(low, 1), high)


def rescaled(images: torch.Tensor, targets: list[dict], size: int) -> tuple[torch.Tensor, list[dict]]:
    """``images`` (``[B, 3, S, S]``, any dtype) resized to ``size × size`` with an antialiased bilinear resize,
    and ``targets``' xyxy pixel boxes scaled with them; unchanged when ``size`` is already ``S``."""
    side = images.shape[-1]
    if size == side:
        return images, targets
    out = nn.functional.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                                    align_corners=False)
    scale = size / side
    return out, [{**t, "boxes": t["boxes"] * scale} for t in targets]


class DetectionModule(L.LightningModule):
    """SSD loss and VOC-style mAP around a torchvision SSD. Batches are ``uint8 [B, 3, S, S]`` images and a list
    of ``{"boxes": float32 [N, 4] xyxy pixels, "labels": int64 [N] 0-based}`` targets."""

    def __init__(self, model: nn.Module, hp: ObjectDetectionHyperparameters) -> None:
        super().__init__()
        from torchmetrics.detection import MeanAveragePrecision

        self.model = model
        self.hp = hp
        self.val_map = MeanAveragePrecision(iou_thresholds=[hp.overlap_threshold])
        self.val_map.warn_on_many_detections = False
        self.warmup_steps = 1

    def forward(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """``uint8 [B, 3, S, S]`` → SSD detections (labels 0-based), boxes in the input's pixels."""
        out = self.model(list(images.float() / 255.0))
        return [{**o, "labels": from_model_labels(o["labels"])} for o in out]

    def training_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> torch.Tensor:
        images, targets = batch
        size = step_size(images.shape[-1], self.hp.multi_scale, self.hp.seed, self.global_step)
        images, targets = rescaled(images, targets, size)
        with input_side(self.model, size):
            losses = self.model(list(images.float() / 255.0), to_model_targets(targets))
        loss = sum(losses.values())
        # sync_dist: with DDP the epoch value is the mean over every rank
        self.log("train:loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images),
                 sync_dist=True)
        for name, value in losses.items():
            self.log(f"train:{name}_loss", value, on_step=False, on_epoch=True, batch_size=len(images), sync_dist=True)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, list[dict]], batch_idx: int) -> None:
        images, targets = batch
        with torch.autocast(self.device.type, enabled=False):  # validate as `oculi evaluate` will
            detections = self(images)
        self.val_map.update([{k: v.float() if k != "labels" else v for k, v in d.items()} for d in detections],
                            targets)

    def on_validation_epoch_end(self) -> None:
        result = self.val_map.compute()
        self.log("validation:mAP", float(result["map"]), prog_bar=True)  # compute() already gathered every rank
        self.val_map.reset()

    def configure_optimizers(self) -> Any:
        """The optimiser over two parameter groups — the base network at ``backbone_lr_factor`` ×
        ``learning_rate``, everything else (extra layers, heads) at ``learning_rate`` — and the schedule."""
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        factor = float(self.hp.backbone_lr_factor)
        base = [p for n, p in trainable if n.startswith("backbone.body.")]
        rest = [p for n, p in trainable if not n.startswith("backbone.body.")]
        groups = [g for g in ({"params": base, "lr": float(self.hp.learning_rate) * factor}, {"params": rest})
                  if g["params"]]
        opt = build_optimizer(groups, self.hp)
        total = int(self.trainer.estimated_stepping_batches)
        # warmup_cosine warms up itself
        self.warmup_steps = 0 if self.hp.lr_scheduler == "warmup_cosine" else min(WARMUP_STEPS, max(1, total // 10))
        schedule = build_schedule(opt, self.hp, total)
        return {"optimizer": opt, "lr_scheduler": schedule} if schedule else opt

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        """Step with the learning rates scaled by ``(step + 1) / warmup_steps`` during the warm-up (fresh heads
        on pretrained features diverge without it, SGD especially); the schedule's own rates are restored after
        the step, so any schedule composes with it."""
        step = self.trainer.global_step
        if step >= self.warmup_steps:
            optimizer.step(closure=optimizer_closure)
            return
        rates = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] *= (step + 1) / self.warmup_steps
        optimizer.step(closure=optimizer_closure)
        for group, rate in zip(optimizer.param_groups, rates, strict=True):
            group["lr"] = rate


@contextmanager
def input_side(model: nn.Module, size: int) -> Iterator[None]:
    """Within the block, a torchvision detector whose transform has a ``fixed_size`` takes ``size × size``
    inputs (FCOS's locations follow its feature maps); other models are left alone."""
    transform = getattr(model, "transform", None)
    fixed = getattr(transform, "fixed_size", None)
    if fixed is None or fixed == (size, size):
        yield
        return
    transform.fixed_size = (size, size)
    try:
        yield
    finally:
        transform.fixed_size = fixed


def _detection_collate(batch: list) -> Any:
    from oculi.data.dataset import detection_collate

    return detection_collate(batch)


class ObjectDetection(Algorithm):
    """SageMaker's object-detection algorithm (SSD)."""

    name = "object-detection"
    task = "detection"
    summary = ("Object detection: FCOS on a feature pyramid (default on EfficientNet-Lite / ResNet-50) or "
               "SageMaker's SSD (-p network=ssd; VGG-16, ResNet-50 or EfficientNet-Lite).")
    hyperparameters = ObjectDetectionHyperparameters
    metric = "validation:mAP"
    export_plan = staticmethod(detection_export_plan)
    tiny_hyperparameters = {"image_shape": "128", "mini_batch_size": "4", "num_workers": "0", "epochs": "2"}
    tiny_variants = {"ssd": {"network": "ssd"}}

    def prepare(self, channels: dict[str, Any], hp: HyperParameters, *, init_meta: dict[str, Any] | None,
                image_roots: dict[str, Path] | None, progress: bool) -> PreparedData:
        from oculi.data.detection import read_detection
        from oculi.data.formats.yolo import yolo_splits

        assert isinstance(hp, ObjectDetectionHyperparameters)
        check_channels(self.name, channels, ("train", "validation", "train_annotation", "validation_annotation"),
                       "`--train PATH` (a manifest, COCO JSON, VOC or YOLO folder, or SageMaker images with "
                       "`--channel train_annotation=DIR`)")
        notes: list[str] = []
        train_path = Path(channels["train"])
        splits = yolo_splits(train_path) if "train_annotation" not in channels else {}
        if splits and "train" not in splits:
            raise DataError(f"{train_path}: the data YAML names {' and '.join(f'`{s}:`' for s in splits)} folders but "
                            "no existing `train:` folder, so its held-out images would be trained on. Set `train:` "
                            "to the training images folder (relative to the YAML, e.g. `train: train/images`).")
        sets = {"train": read_detection(train_path, annotations=_path(channels.get("train_annotation")),
                                        image_roots=image_roots, split="train" if "train" in splits else None,
                                        num_classes=hp.num_classes, label_attribute=hp.label_attribute)}
        if "validation" in channels:
            sets["validation"] = read_detection(Path(channels["validation"]),
                                                annotations=_path(channels.get("validation_annotation")),
                                                image_roots=image_roots, classes=sets["train"].classes,
                                                label_attribute=hp.label_attribute)
        elif "train_annotation" not in channels and all(
                (train_path / name).is_dir() for name in ("train_annotation", "validation", "validation_annotation")):
            # SageMaker's layout given as its root: use its validation channel too, as for segmentation.
            sets["validation"] = read_detection(train_path / "validation",
                                                annotations=train_path / "validation_annotation",
                                                classes=sets["train"].classes)
            notes.append(f"{train_path}: SageMaker's layout — channels found: train (train/), train_annotation "
                         "(train_annotation/), validation (validation/), validation_annotation "
                         "(validation_annotation/)")
        elif "val" in splits:
            sets["validation"] = read_detection(train_path, image_roots=image_roots, classes=sets["train"].classes,
                                                split="val")
            notes.append(f"{train_path}: YOLO data YAML splits — training on {splits['train']}, validating on "
                         f"{splits['val']}")
        if "test" in splits:
            notes.append(f"{train_path}: the data YAML's test split ({splits['test']}) is left out of training and "
                         "validation; score the model on it with `oculi evaluate`")
        train, validation, report = checked_split(sets, hp, progress, notes)
        classes = train.classes
        hp = with_resolved(hp, self._resolve(hp, train, classes, notes, fine_tune=hp.use_pretrained_model
                                             or init_meta is not None, init_meta=init_meta))
        prepare = NETWORKS.get(hp.network).prepare
        if prepare is not None:
            hp = with_resolved(hp, prepare(hp, train, notes, init_meta))
        return PreparedData(train=train, validation=validation, classes=classes, hyperparameters=hp,
                            train_data=self._data(train, hp, train=True),
                            val_data=self._data(validation, hp, train=False), notes=notes, report=report)

    def _resolve(self, hp: ObjectDetectionHyperparameters, train: SampleSet, classes: list[str],
                 notes: list[str], fine_tune: bool, init_meta: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``auto`` values: the shared ones, the network (:func:`auto_network`; an ``--init-model``'s own),
        then optimizer / learning_rate / backbone_lr_factor for fine-tuning (``fine_tune``: a pretrained base
        network or an ``--init-model``) or training from scratch."""
        up = resolve_common(hp, train, classes, notes)
        if hp.network == AUTO:
            if init_meta is not None:
                up["network"] = init_meta["hyperparameters"].get("network", "ssd")
                why = "the --init-model's"
            else:
                up["network"], why = auto_network(hp)
            notes.append(f"network=auto → {up['network']} ({why})")
        if hp.multi_scale and up.get("network", hp.network) == "ssd":
            raise ConfigError(f"multi_scale={hp.multi_scale:g} needs network=fcos (this run resolved network=ssd: the "
                              "SSD's default boxes are laid out for one input size); pass -p network=fcos with an "
                              "efficientnet-lite* or resnet-50 base network, or drop multi_scale.")
        optimizer = hp.optimizer
        if optimizer == AUTO:
            optimizer = up["optimizer"] = "adamw" if fine_tune else "adam"
            notes.append("optimizer=auto → adamw (fine-tuning a pretrained base network)" if fine_tune
                         else "optimizer=auto → adam (no pretrained base network)")
        if hp.learning_rate == AUTO:
            up["learning_rate"] = AUTO_LEARNING_RATES.get(optimizer, 0.002)
            notes.append(f"learning_rate=auto → {up['learning_rate']:g} ({optimizer})")
        if hp.backbone_lr_factor == AUTO:
            up["backbone_lr_factor"] = 0.1 if fine_tune else 1.0
            notes.append("backbone_lr_factor=auto → 0.1 (the pretrained base network learns at a tenth of the "
                         "rate)" if fine_tune else "backbone_lr_factor=auto → 1 (no pretrained base network)")
        return up

    def _data(self, data: SampleSet, hp: ObjectDetectionHyperparameters, train: bool) -> LoaderSpec:
        """A split's dataset (box-consistent augmentation in training), batched by :func:`_detection_collate`."""
        from oculi.data.dataset import DetectionDataset
        from oculi.data.transforms import detection_eval, detection_train

        size = hp.image_shape
        mean = ssd_input_spec(hp.base_network, size)["mean"]
        transform = (detection_train(size, tuple(round(m * 255) for m in mean)) if train
                     else detection_eval(size))
        dataset = DetectionDataset(data.samples, transform, min_side=size, mosaic=hp.mosaic if train else 0.0)
        return LoaderSpec(dataset, batch_size=hp.mini_batch_size, collate_fn=_detection_collate, shuffle=train)

    def build_model(self, hp: HyperParameters, classes: list[str], *, pretrained: bool) -> nn.Module:
        assert isinstance(hp, ObjectDetectionHyperparameters)
        weights = Path(hp.pretrained_weights).expanduser() if hp.pretrained_weights and pretrained else None
        # network=auto is resolved at prepare; a bundle that has none predates FCOS, so it is an SSD
        network = NETWORKS.get("ssd" if hp.network == AUTO else hp.network)
        return network.build(hp.base_network, len(classes), hp.image_shape,
                             pretrained=pretrained and hp.use_pretrained_model, pretrained_weights=weights,
                             frozen_batch_norm=hp.use_pretrained_model, nms_threshold=hp.nms_threshold,
                             nms_topk=hp.nms_topk, **{name: getattr(hp, name) for name in network.options})

    def lightning_module(self, model: nn.Module, data: PreparedData) -> L.LightningModule:
        hp = data.hyperparameters
        assert isinstance(hp, ObjectDetectionHyperparameters)
        if hp.freeze_layer_pattern:
            if not freeze_by_pattern(model, hp.freeze_layer_pattern):
                raise ConfigError(f"freeze_layer_pattern {hp.freeze_layer_pattern!r} matches no parameter; oculi's "
                                  "names look like backbone.body.blocks.0.0.conv_dw.weight (SageMaker's MXNet "
                                  "names such as conv1_ do not apply).")
        return DetectionModule(model, hp)

    def input_spec(self, hp: HyperParameters) -> dict[str, Any]:
        assert isinstance(hp, ObjectDetectionHyperparameters)
        return ssd_input_spec(hp.base_network, hp.image_shape)

    def check_init_model(self, hp: HyperParameters, classes: list[str], meta: dict[str, Any]) -> None:
        assert isinstance(hp, ObjectDetectionHyperparameters)
        super().check_init_model(hp, classes, meta)
        saved = meta["hyperparameters"].get("network", "ssd")
        if saved != hp.network:
            raise ConfigError(f"--init-model is a network={saved} detector, this run has network={hp.network}; they "
                              f"must match (pass -p network={saved}).")
        for key in ("base_network", "image_shape", "default_box_scales", "default_box_ratios"):
            if meta["hyperparameters"].get(key) != getattr(hp, key):
                raise ConfigError(f"--init-model was trained with {key}={meta['hyperparameters'].get(key)}, this "
                                  f"run has {key}={getattr(hp, key)}; they must match.")


def auto_network(hp: ObjectDetectionHyperparameters) -> tuple[str, str]:
    """``network=auto`` for a new model: ``(network, why)`` — fcos on the base networks it has a pyramid for,
    ssd on vgg-16 or when an SSD-only option was given."""
    from oculi.algorithms.detection_fcos import BASE_NETWORKS as FCOS_BASES

    ssd_only = [name for name in ("default_boxes", "feature_norm") if getattr(hp, name) != AUTO]
    ssd_only += [name for name in ("default_box_scales", "default_box_ratios") if getattr(hp, name) is not None]
    if ssd_only:
        return "ssd", f"{', '.join(ssd_only)} given"
    if hp.base_network not in FCOS_BASES:
        return "ssd", f"FCOS has no feature pyramid for {hp.base_network}"
    return "fcos", ("a feature pyramid from stride 8: on bees it reached twice SSD's mAP@0.5 in the same CPU "
                    "minutes; -p network=ssd for SageMaker's SSD")


def _path(value: Any) -> Path | None:
    return Path(value) if value is not None else None

