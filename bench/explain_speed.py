"""Explanation figures: seconds per explanation (one 224² classification image, one 300² detection image with its
5 top boxes, one 512² segmentation image; Grad-CAM, with and without the faithfulness test), and with ``--model``
the faithfulness (deletion at 20 %) of the four CAM methods on hymenoptera val, to choose the default.

The speed runs use untrained networks of each task's default configuration at those sizes (the cost does not
depend on the weights); ``--train-hymenoptera`` first fine-tunes efficientnet-lite0 from its ImageNet weights for
one epoch (a few minutes on a CPU) when no ``--model`` is given.

Usage: .venv/bin/python bench/explain_speed.py [--repeats 3] [--model BUNDLE | --train-hymenoptera] [--images 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from oculi.algorithms import get_algorithm
from oculi.artifacts import save_bundle
from oculi.explain import METHODS, Explainer
from oculi.tasks import load_predictor

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hymenoptera" / "hymenoptera_data"
RESOLVED = {"lr_scheduler": "cosine", "num_workers": 0, "precision_dtype": "float32", "learning_rate": "0.01",
            "use_pretrained_model": "0"}  # every ``auto`` resolved, as training writes them
CASES = (("image-classification", {"image_shape": "3,224,224", "resize": "256", "num_classes": "2"}, ["a", "b"],
          (224, 224), 0.0),
         ("object-detection", {"image_shape": "300", "num_classes": "2"}, ["a", "b"], (300, 300), 0.0),
         ("semantic-segmentation", {"base_size": "512", "crop_size": "480", "num_classes": "3",
                                    "lr_scheduler": "poly"}, ["a", "b", "c"], (512, 512), 0.0))


def untrained(folder: Path, algorithm: str, params: dict[str, str], classes: list[str]) -> Path:
    """An untrained bundle of ``algorithm``'s default configuration with ``params``."""
    algo = get_algorithm(algorithm)
    hp = algo.hyperparameters.model_validate({**RESOLVED, **params})
    torch.manual_seed(0)
    model = algo.build_model(hp, classes, pretrained=False).eval()
    meta = {"algorithm": algo.name, "task": algo.task, "hyperparameters": hp.model_dump(mode="json"),
            "classes": classes, "input": algo.input_spec(hp), "metrics": {}}
    return save_bundle(folder, meta, model)


def speed(repeats: int) -> None:
    """Print seconds per explanation for each task."""
    root = Path(tempfile.mkdtemp(prefix="oculi-explain-bench-"))
    print(f"{'task':24} {'image':>9} {'targets':>7} {'CAM only s':>11} {'CAM + faithfulness s':>21}  layer")
    for algorithm, params, classes, (h, w), min_score in CASES:
        predictor = load_predictor(untrained(root / algorithm, algorithm, params, classes))
        image = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (3, h, w), dtype=np.uint8))
        row = []
        for measure in (False, True):
            explainer = Explainer(predictor, "gradcam", faithfulness=measure)
            result = explainer.explain(image, min_score=min_score)  # warm-up (and the layer choice)
            start = time.perf_counter()
            for _ in range(repeats):
                explainer.explain(image, min_score=min_score)
            row.append((time.perf_counter() - start) / repeats)
        print(f"{algorithm:24} {f'{w}×{h}':>9} {len(result.explanations):>7} {row[0]:>11.2f} {row[1]:>21.2f}  "
              f"{result.layer}", flush=True)


def hymenoptera_model(data: Path) -> Path:
    """Fine-tune efficientnet-lite0 (ImageNet weights) on hymenoptera for one epoch; returns the bundle."""
    from oculi.engine.training import train

    out = Path(tempfile.mkdtemp(prefix="oculi-explain-hymenoptera-")) / "model"
    start = time.perf_counter()
    result = train("image-classification", {"train": data / "train", "validation": data / "val"},
                   {"architecture": "efficientnet-lite0", "use_pretrained_model": "1", "epochs": "1"}, output=out,
                   progress=False, echo=lambda _line: None)
    print(f"trained efficientnet-lite0 in {time.perf_counter() - start:.0f} s: validation accuracy "
          f"{result.metrics['validation:accuracy']:.3f}", flush=True)
    return out


def faithfulness_by_method(model: Path, data: Path, count: int) -> None:
    """Print each method's mean faithfulness score and mean share of the score left after deleting the 20 % most
    salient pixels (vs 20 % random pixels) over ``count`` hymenoptera val images."""
    predictor = load_predictor(model, precision="float32")
    images = sorted((data / "val").rglob("*.jpg"))
    images = [images[i] for i in np.linspace(0, len(images) - 1, min(count, len(images))).astype(int)]
    print(f"\nfaithfulness on {len(images)} hymenoptera val images (top-1 class; deletion at 10/20/50 %):")
    print(f"{'method':10} {'score':>7} {'left@20% salient':>17} {'left@20% random':>16} {'s/image':>8}")
    for method in METHODS:
        explainer = Explainer(predictor, method)
        scores, salient, random = [], [], []
        start = time.perf_counter()
        for path in images:
            found = explainer.explain(path).explanations[0].faithfulness
            original = max(found["original_score"], 1e-6)
            scores.append(found["score"])
            salient.append(found["salient_removed"][1] / original)
            random.append(found["random_removed"][1] / original)
        seconds = (time.perf_counter() - start) / len(images)
        print(f"{method:10} {np.mean(scores):>7.3f} {np.mean(salient):>17.3f} {np.mean(random):>16.3f} "
              f"{seconds:>8.2f}", flush=True)


def main() -> int:
    """Run the speed figures, then the method comparison when a model is given or trained."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--train-hymenoptera", action="store_true")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    print(f"CPU cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, torch {torch.__version__}\n")
    if not args.skip_speed:
        speed(args.repeats)
    model = args.model or (hymenoptera_model(args.data) if args.train_hymenoptera else None)
    if model is not None:
        faithfulness_by_method(model, args.data, args.images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
