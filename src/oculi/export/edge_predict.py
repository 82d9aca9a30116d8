"""Run an oculi edge package: ``python predict.py IMAGE… [--min-score 0.2] [--mask-dir DIR]`` prints one JSON line
per image in SageMaker's response shapes (classification ``{"prediction": [p…]}``, detection ``{"prediction":
[[class, score, xmin, ymin, xmax, ymax], …]}`` with normalised corners, segmentation the class fractions and the
mask PNG written to ``--mask-dir``). Needs only onnxruntime, numpy and Pillow (``pip install -r
requirements.txt``); oculi and torch are not used. Written by ``oculi export MODEL --edge OUT`` next to
``model.onnx`` and ``oculi_edge.json`` (preprocessing, classes, thresholds, output format)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent


def load_rgb(path: Path) -> Image.Image:
    """The image at ``path``, EXIF orientation applied, as RGB."""
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def bilinear(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[C, h, w]`` float32 → ``[C, height, width]``, bilinear with half-pixel centres and no antialiasing (what
    ``torch.nn.functional.interpolate(..., mode="bilinear", align_corners=False)`` computes)."""
    _, h, w = array.shape

    def axis(out: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        source = np.maximum((np.arange(out, dtype=np.float32) + 0.5) * (size / out) - 0.5, 0.0)
        low = np.minimum(np.floor(source).astype(np.int64), size - 1)
        high = np.minimum(low + 1, size - 1)
        return low, high, (source - low).astype(np.float32)

    y0, y1, fy = axis(height, h)
    x0, x1, fx = axis(width, w)
    top = array[:, y0][:, :, x0] * (1 - fx) + array[:, y0][:, :, x1] * fx
    bottom = array[:, y1][:, :, x0] * (1 - fx) + array[:, y1][:, :, x1] * fx
    return (top * (1 - fy)[:, None] + bottom * fy[:, None]).astype(np.float32)


def _aa_weights(out: int, size: int) -> np.ndarray:
    """``[out, size]`` weights of an antialiased bilinear resize along one axis: a triangle filter widened by the
    downscale factor, normalised per output pixel (Pillow's algorithm, which torch's ``antialias=True`` follows)."""
    scale = size / out
    stretch = max(scale, 1.0)
    weights = np.zeros((out, size), dtype=np.float64)
    for i in range(out):
        centre = (i + 0.5) * scale
        low = max(int(centre - stretch + 0.5), 0)
        high = min(int(centre + stretch + 0.5), size)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(low, high) - centre + 0.5) / stretch))
        weights[i, low:high] = taps / taps.sum()
    return weights.astype(np.float32)


def antialiased(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[C, h, w]`` float32 → ``[C, height, width]``, bilinear with antialiasing (what
    ``torch.nn.functional.interpolate(..., mode="bilinear", antialias=True)`` computes)."""
    _, h, w = array.shape
    rows, cols = _aa_weights(height, h), _aa_weights(width, w)
    return np.einsum("yh,chw,xw->cyx", rows, array, cols, optimize=True).astype(np.float32)


def normalised(pixels: np.ndarray, spec: dict) -> np.ndarray:
    """``[3, H, W]`` floats in [0, 1] → ``[1, 3, H, W]`` normalised with the package's mean/std."""
    mean = np.asarray(spec["mean"], dtype=np.float32)[:, None, None]
    std = np.asarray(spec["std"], dtype=np.float32)[:, None, None]
    return ((pixels - mean) / std)[None].astype(np.float32)


def chw(image: Image.Image) -> np.ndarray:
    """A PIL RGB image → ``float32 [3, H, W]`` in [0, 1]."""
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0


def classify(session: onnxruntime.InferenceSession, image: Image.Image, config: dict) -> dict:
    """Shorter side to ``resize`` (antialiased bilinear), centre crop, network, softmax (or sigmoid)."""
    spec = config["input"]
    width, height = image.size
    short = spec["resize"]
    size = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)
    image = image.resize(size, Image.Resampling.BILINEAR)
    crop_h, crop_w = spec["height"], spec["width"]
    top, left = int(round((size[1] - crop_h) / 2.0)), int(round((size[0] - crop_w) / 2.0))
    image = image.crop((left, top, left + crop_w, top + crop_h))
    logits = session.run(None, {"images": normalised(chw(image), spec)})[0][0].astype(np.float64)
    if spec.get("output") == "sigmoid":
        probabilities = 1 / (1 + np.exp(-logits))
    else:
        exp = np.exp(logits - logits.max())
        probabilities = exp / exp.sum()
    return {"prediction": [round(float(p), 6) for p in probabilities]}


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (IoU > ``threshold`` suppressed), highest score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(best)
        x0 = np.maximum(boxes[best, 0], boxes[order, 0])
        y0 = np.maximum(boxes[best, 1], boxes[order, 1])
        x1 = np.minimum(boxes[best, 2], boxes[order, 2])
        y1 = np.minimum(boxes[best, 3], boxes[order, 3])
        inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[best] + areas[order] - inter)
        order = order[~(iou > threshold)]  # as torchvision: a degenerate (0/0) overlap suppresses nothing
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """NMS within each label (boxes of different labels never suppress each other), highest score first."""
    if not len(boxes):
        return np.zeros(0, dtype=np.int64)
    offsets = labels.astype(np.float32)[:, None] * (boxes.max() + 1)
    return nms(boxes + offsets, scores, threshold)


def ssd_boxes(outputs: list[np.ndarray], decoder: dict, priors: np.ndarray) -> tuple[np.ndarray, ...]:
    """SSD: softmax, box decoding against the default boxes, per-class threshold and top-k (torchvision's)."""
    logits, regression = outputs[0][0].astype(np.float32), outputs[1][0].astype(np.float32)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    scores = exp / exp.sum(axis=1, keepdims=True)
    wx, wy, ww, wh = decoder["box_weights"]
    widths, heights = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    cx, cy = priors[:, 0] + 0.5 * widths, priors[:, 1] + 0.5 * heights
    dw = np.minimum(regression[:, 2] / ww, decoder["bbox_xform_clip"])
    dh = np.minimum(regression[:, 3] / wh, decoder["bbox_xform_clip"])
    px, py = regression[:, 0] / wx * widths + cx, regression[:, 1] / wy * heights + cy
    pw, ph = np.exp(dw) * widths, np.exp(dh) * heights
    boxes = np.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw, py + 0.5 * ph], axis=1)
    all_boxes, all_scores, all_labels = [], [], []
    for label in range(1, scores.shape[1]):
        score = scores[:, label]
        keep = np.nonzero(score > decoder["score_thresh"])[0]
        keep = keep[np.argsort(-score[keep], kind="stable")[:decoder["topk_candidates"]]]
        all_boxes.append(boxes[keep])
        all_scores.append(score[keep])
        all_labels.append(np.full(len(keep), label, dtype=np.int64))
    return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_labels)


def fcos_boxes(outputs: list[np.ndarray], decoder: dict, anchors: np.ndarray) -> tuple[np.ndarray, ...]:
    """FCOS: per pyramid level, sqrt(sigmoid(class) × sigmoid(centreness)) thresholded and top-k, boxes decoded
    from the anchors' centres by distances scaled with the anchor size (torchvision's)."""
    logits, regression, centreness = (o[0].astype(np.float32) for o in outputs)
    all_boxes, all_scores, all_labels = [], [], []
    start = 0
    for count in decoder["per_level"]:
        level = slice(start, start + count)
        start += count
        num_classes = logits.shape[1]
        scores = np.sqrt(1 / (1 + np.exp(-logits[level])) * (1 / (1 + np.exp(-centreness[level])))).reshape(-1)
        candidates = np.nonzero(scores > decoder["score_thresh"])[0]
        candidates = candidates[np.argsort(-scores[candidates], kind="stable")[:decoder["topk_candidates"]]]
        anchor_index, labels = candidates // num_classes, candidates % num_classes
        level_anchors, codes = anchors[level][anchor_index], regression[level][anchor_index]
        cx = 0.5 * (level_anchors[:, 0] + level_anchors[:, 2])
        cy = 0.5 * (level_anchors[:, 1] + level_anchors[:, 3])
        if decoder.get("normalize_by_size", True):
            w = level_anchors[:, 2] - level_anchors[:, 0]
            h = level_anchors[:, 3] - level_anchors[:, 1]
            codes = codes * np.stack([w, h, w, h], axis=1)
        all_boxes.append(np.stack([cx - codes[:, 0], cy - codes[:, 1], cx + codes[:, 2], cy + codes[:, 3]], axis=1))
        all_scores.append(scores[candidates])
        all_labels.append(labels)
    return np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_labels)


DECODERS = {"ssd": ssd_boxes, "fcos": fcos_boxes}


def detect(session: onnxruntime.InferenceSession, image: Image.Image, config: dict, min_score: float) -> dict:
    """Stretch to the network's square input (antialiased), network, decode, clip, NMS, boxes back to the
    image's pixels; SageMaker's rows ``[class, score, xmin, ymin, xmax, ymax]`` with corners normalised to the
    image size."""
    spec, decoder = config["input"], config["decoder"]
    width, height = image.size
    size_h, size_w = spec["height"], spec["width"]
    pixels = antialiased(chw(image), size_h, size_w)
    outputs = session.run(None, {"images": normalised(pixels, spec)})
    priors = np.load(HERE / decoder["priors"])
    boxes, scores, labels = DECODERS[decoder["kind"]](outputs, decoder, priors)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, size_w)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, size_h)
    keep = batched_nms(boxes, scores, labels, decoder["nms_thresh"])[:decoder["detections_per_img"]]
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep] - 1  # the background shift
    boxes = boxes * np.asarray([width / size_w, height / size_h] * 2, dtype=np.float32)
    thresholds = config.get("thresholds") or {}
    rows = []
    for (x0, y0, x1, y1), score, label in zip(boxes, scores, labels, strict=True):
        floor = max(min_score, float(thresholds.get(config["classes"][label], 0.0)))
        if score >= floor:
            rows.append([float(label), round(float(score), 6),
                         *(round(min(max(float(v), 0.0), 1.0), 6) for v in (x0 / width, y0 / height, x1 / width,
                                                                             y1 / height))])
    return {"prediction": rows}


def segment(session: onnxruntime.InferenceSession, image: Image.Image, config: dict, name: str,
            mask_dir: Path | None) -> dict:
    """Long side to ``base_size`` (antialiased bilinear), network, logits bilinear back to the image size,
    argmax; class fractions, and the mask PNG (pixel values in the label encoding) in ``mask_dir``."""
    spec = config["input"]
    width, height = image.size
    scale = spec["base_size"] / max(width, height)
    scaled = image.resize((max(1, round(width * scale)), max(1, round(height * scale))), Image.Resampling.BILINEAR)
    logits = session.run(None, {"images": normalised(chw(scaled), spec)})[0][0]
    mask = bilinear(logits.astype(np.float32), height, width).argmax(0)
    classes = config["classes"]
    counts = np.bincount(mask.reshape(-1), minlength=len(classes)).astype(np.float64)
    answer = {"width": width, "height": height, "classes": classes,
              "fractions": {c: round(float(n / counts.sum()), 6) for c, n in zip(classes, counts, strict=False)}}
    if mask_dir is not None:
        mask_dir.mkdir(parents=True, exist_ok=True)
        lookup = np.asarray(config["output"]["mask_values"], dtype=np.uint8)
        out = Image.fromarray(lookup[mask], "P")
        out.putpalette(config["output"]["palette"])
        answer["mask"] = str(mask_dir / f"{name}.png")
        out.save(answer["mask"])
    return answer


def main(argv: list[str] | None = None) -> int:
    """Predict every image named on the command line; one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="+", type=Path, help="image files (JPEG, PNG, …)")
    parser.add_argument("--min-score", type=float, default=0.0, help="detection: drop boxes scoring below this")
    parser.add_argument("--mask-dir", type=Path, default=None, help="segmentation: write each mask PNG here")
    args = parser.parse_args(argv)
    config = json.loads((HERE / "oculi_edge.json").read_text())
    options = onnxruntime.SessionOptions()
    session = onnxruntime.InferenceSession(str(HERE / config["model"]), options, providers=["CPUExecutionProvider"])
    status = 0
    for path in args.images:
        try:
            image = load_rgb(path)
        except (OSError, ValueError) as e:
            print(f"{path}: cannot read the image ({e})", file=sys.stderr)
            status = 1
            continue
        if config["task"] == "classification":
            answer = classify(session, image, config)
        elif config["task"] == "detection":
            answer = detect(session, image, config, args.min_score)
        else:
            answer = segment(session, image, config, path.stem, args.mask_dir)
        print(json.dumps({"image": str(path), **answer}))
    return status


if __name__ == "__main__":
    sys.exit(main())
