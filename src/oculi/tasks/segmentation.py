"""The semantic-segmentation task: a class per pixel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel

from oculi.algorithms.base import ExportPlan
from oculi.data.formats.mask_manifest import write_mask_manifest
from oculi.data.synthetic import sample_images
from oculi.data.tasks import DATA_TASKS
from oculi.data.transforms import normalize
from oculi.errors import ConfigError
from oculi.inference.codecs import TaskCodec, json_bytes
from oculi.inference.segmentation import SegmentationPredictor, SegmentationResult
from oculi.tasks.base import PredictOptions, Proposal, TaskContract, histogram, numbered

if TYPE_CHECKING:
    from rich.console import Console


class SegmentationResponse(BaseModel):
    """Friendly segmentation answer: each class's share of the pixels and the class-index mask as PNG."""

    endpoint: str
    variant: str
    task: Literal["segmentation"]
    width: int
    height: int
    classes: list[str]
    fractions: dict[str, float]
    mask_png_base64: str


CODEC = TaskCodec("segmentation", "image/png", {
    "image/png": lambda r: r.png(),
    "application/json": lambda r: json_bytes(r.to_json()),
})


def friendly(result: SegmentationResult, top_k: int | None, min_score: float) -> dict[str, Any]:
    """The friendly answer's body: size, classes, per-class pixel shares and the mask PNG (base64)."""
    return result.to_json()


def export_plan(model: Any, spec: dict[str, Any]) -> ExportPlan:
    """``images [batch, 3, height, width]`` → ``logits [batch, num_classes, height, width]`` with dynamic batch,
    height and width: a landscape batch of 2 and a portrait image, each long side at ``base_size``."""
    mean, std = tuple(spec["mean"]), tuple(spec["std"])
    base = int(spec["base_size"])
    short = max(16, round(base * 0.75))
    samples = [normalize(torch.stack(sample_images(2, short, base, seed=1)), mean, std),
               normalize(torch.stack(sample_images(1, base, max(16, round(base * 0.6)), seed=2)), mean, std)]
    axes = {0: "batch", 2: "height", 3: "width"}
    return ExportPlan(["logits"], {"images": axes, "logits": axes}, samples[0], samples)


def evaluate(predictor: SegmentationPredictor, data: Any, *, top_k: int | None = None, batch_size: int = 32,
             **options: Any) -> Any:
    """:func:`~oculi.evaluation.segmentation.evaluate_segmentation` (one image at a time; ``top_k`` does not
    apply)."""
    from oculi.evaluation.segmentation import evaluate_segmentation

    if top_k is not None:
        raise ConfigError(f"`top_k` applies to classification models; {predictor.bundle.path} is a "
                          "semantic-segmentation model. Leave out --top-k.")
    return evaluate_segmentation(predictor, data, **options)


def show(predictor: SegmentationPredictor, images: list[Path], options: PredictOptions, console: Console) -> None:
    """``oculi predict``: per-class pixel shares per image (or JSON); the mask PNG with ``png``, the colour
    overlay with ``draw``."""
    from rich.table import Table

    from oculi.inference.segmentation import overlay

    many = len(images) > 1
    for path in images:
        image = predictor.to_tensor(path)
        result = predictor.predict(image)
        if options.png is not None:
            target = numbered(options.png, path, many)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(result.png())
            console.print(f"mask: {target}")
        if options.draw is not None:
            target = numbered(options.draw, path, many)
            target.parent.mkdir(parents=True, exist_ok=True)
            overlay(image, result.mask, result.classes).save(target)
            console.print(f"drawn: {target}")
        if options.as_json:
            console.print_json(json.dumps(result.to_json()), indent=None)
        elif options.png is None and options.draw is None:
            table = Table("image", "class", "share of pixels")
            for n, (name, share) in enumerate(result.fractions().items()):
                table.add_row(str(path) if n == 0 else "", name, f"{share:.4f}")
            console.print(table)


def view_labels(target: Any, classes: list[str]) -> dict[str, Any]:
    """The console's labels of a sample: ``{"mask": <RGBA PNG data URL, class colours, ignored and background
    pixels transparent>, "classes": [names present]}`` at the mask's own size."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    from oculi.data.formats.masks import load_mask, voc_palette

    if target is None:
        return {"mask": None, "classes": []}
    mask = load_mask(target)
    palette = np.asarray(voc_palette(), dtype=np.uint8)
    rgba = np.zeros((*mask.shape, 4), dtype=np.uint8)
    shown = (mask > 0) & (mask < len(palette))
    rgba[shown, :3] = palette[mask[shown]]
    rgba[shown, 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", optimize=False)
    present = sorted({int(v) for v in np.unique(mask) if 0 <= v < len(classes)})
    return {"mask": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
            "classes": [classes[i] for i in present]}


def embedding_tap(network: Any) -> Any:
    """Penultimate features: the segmentation backbone's deepest feature map averaged over space ``[B, D]``."""
    from oculi.analysis.embeddings import backbone_tap

    return backbone_tap(network)


def audit(sets: dict[str, Any], context: Any) -> Any:
    """Images with likely wrong masks, with cleanlab's segmentation module; see
    :func:`oculi.analysis.labels.segmentation_label_issues`."""
    from oculi.analysis.labels import segmentation_label_issues

    return segmentation_label_issues(sets, context)


def edge(predictor: SegmentationPredictor) -> tuple[dict[str, Any], dict[str, Any]]:
    """The edge package's settings: the input spec, and the mask PNG's pixel value per class (the label
    encoding) and palette."""
    import numpy as np

    from oculi.data.formats.masks import encode_classes, voc_palette

    values = encode_classes(np.arange(len(predictor.classes)), predictor.spec.get("label_encoding"))
    return {"input": predictor.spec, "output": {"mask_values": [int(v) for v in values],
                                                "palette": [v for rgb in voc_palette() for v in rgb]}}, {}


def propose(predictor: SegmentationPredictor, images: list[Path], threshold: float = 0.5) -> list[Proposal]:
    """Pre-labels for labeling: the predicted class-index mask (``uint8 [H, W]`` at the image's size).
    Uncertainty: the mean pixel entropy of the class probabilities, divided by log(classes) (in [0, 1]);
    confidence = 1 − uncertainty. ``threshold`` does not apply."""
    import math

    out = []
    for path in images:
        image = predictor.to_tensor(path)
        probs = predictor.logits(image).float().softmax(0)
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(0).mean().item() / math.log(max(2, probs.shape[0]))
        mask = probs.argmax(0).to(torch.uint8).numpy()
        out.append(Proposal({"width": int(image.shape[-1]), "height": int(image.shape[-2])}, 1.0 - entropy,
                            entropy, mask))
    return out
MASK_AREA_EDGES = [0, 1, 2, 5, 10, 20, 50]  # per cent of the image's pixels
MASKS_READ = 200  # masks read per split for the area histogram (evenly spread); the rest are not opened


def label_statistics(sample_set: Any) -> list[dict[str, Any]]:
    """The dataset page's histogram of mask areas: for each image and each class it shows (background and ignored
    pixels aside), that class's share of the image's pixels in per cent. Reads at most :data:`MASKS_READ` masks."""
    import numpy as np

    from oculi.data.formats.masks import load_mask
    from oculi.types import IGNORE_INDEX

    labelled = [s for s in sample_set.samples if s.target is not None]
    step = max(1, -(-len(labelled) // MASKS_READ))
    read = labelled[::step]
    shares = []
    for sample in read:
        mask = load_mask(sample.target)
        counts = np.bincount(mask[mask != IGNORE_INDEX].ravel(), minlength=1)
        shares.extend(100.0 * counts[1:][counts[1:] > 0] / mask.size)
    note = f"{len(read)} of {len(labelled)} masks read" if len(read) < len(labelled) else ""
    return [histogram("mask-area", "Mask areas (per class and image)", "% of the image's pixels", shares,
                      MASK_AREA_EDGES, note)]
def explanation_target(predictor: Any) -> Any:
    """The CAM adapter of this task (:class:`~oculi.explain.targets.SegmentationTarget`)."""
    from oculi.explain.targets import SegmentationTarget

    return SegmentationTarget(predictor)


def monitoring_statistics(predictor: Any, images: list[Path]) -> list[dict[str, Any]]:
    """What a monitor tracks of each prediction: each class's share of the image's pixels (``area:<class>``) and
    the mean pixel confidence (highest class probability)."""
    out = []
    for path in images:
        probs = predictor.logits(predictor.to_tensor(path)).float().softmax(0)
        counts = torch.bincount(probs.argmax(0).flatten(), minlength=probs.shape[0]).float() / probs[0].numel()
        row: dict[str, Any] = {f"area:{name}": float(counts[k]) for k, name in enumerate(predictor.classes)}
        row["pixel_confidence"] = float(probs.max(0).values.mean())
        out.append(row)
    return out


CONTRACT = TaskContract(
    name="segmentation", title="semantic segmentation", predictor=SegmentationPredictor, codec=CODEC,
    evaluate=evaluate, export_plan=export_plan, friendly=friendly, friendly_schema=SegmentationResponse, show=show,
    transform_batch_size=4, data=DATA_TASKS.get("segmentation"), metric="mIOU",
    annotation_kind="mask",
    view="segmentation", view_labels=view_labels, edge=edge,
    embedding_tap=embedding_tap,
    write_manifest=write_mask_manifest, audit=audit,
    propose=propose, monitoring_statistics=monitoring_statistics,
    label_statistics=label_statistics, explanation_target=explanation_target,
)
