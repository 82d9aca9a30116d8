"""``oculi demo`` / ``make demo``: the whole workflow on real data that ships with a dependency — scikit-learn's
1,797 handwritten digits (8×8, upscaled to 32×32 PNGs) — with no network and no other data: write the images as
class folders, check them, split them into train/validation manifests, train a small ResNet, evaluate it on the
held-out images, predict a few, and say where everything went."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits(folder: Path) -> Path:
    """Write scikit-learn's digits as ``folder/<digit>/<n>.png`` (32×32 grayscale); returns ``folder``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    for n, (pixels, label) in enumerate(zip(digits.images, digits.target, strict=True)):
        target = folder / str(int(label))
        target.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray((pixels * (255.0 / 16.0)).astype(np.uint8), "L").resize((32, 32), Image.BILINEAR)
        img.save(target / f"{n:04d}.png")
    return folder


def run_demo(output: Path, *, epochs: int = 8, echo: Callable[[str], None] = print) -> dict[str, Path]:
    """Run the demo into ``output`` and return the paths of what it wrote."""
    from oculi.data.channels import read_channel
    from oculi.data.checks import check_path
    from oculi.data.formats.manifest import write_manifest
    from oculi.data.split import stratified_split
    from oculi.engine.training import train
    from oculi.tasks import evaluate, load_predictor

    started = time.perf_counter()
    output = Path(output)
    data = output / "digits"
    if not data.exists():
        echo(f"writing scikit-learn's handwritten digits to {data}")
        write_digits(data)
    report = check_path(data)
    echo(f"data check: {sum(report.num_images.values())} images, {len(report.classes)} classes, "
         f"{'trainable' if report.ok else 'NOT trainable'}")
    train_set, validation_set = stratified_split(read_channel(data), 0.2, seed=0)
    channels = {"train": write_manifest(train_set, output / "train.manifest"),
                "validation": write_manifest(validation_set, output / "validation.manifest")}
    echo(f"split: {len(train_set)} training and {len(validation_set)} validation images → {output}/*.manifest")
    model_dir = output / "model"
    result = train(
        "image-classification", channels,
        {"num_layers": "20", "image_shape": "3,32,32", "resize": "32", "epochs": str(epochs),
         "mini_batch_size": "64", "augmentation_type": "none", "learning_rate": "0.1"},
        output=model_dir, overwrite=True, echo=echo,
    )
    evaluation = evaluate(model_dir, channels["validation"], output=output / "report", top_k=2, progress=False)
    predictor = load_predictor(model_dir)
    samples = [s.image for s in validation_set.samples[::120]][:3]
    for sample in samples:
        pred = predictor.predict(sample)
        echo(f"predict {sample}: {pred.predicted_label} (p={max(pred.probabilities):.3f}), "
             f"true {sample.parent.name}")
    paths = {
        "data": data, "train manifest": channels["train"], "validation manifest": channels["validation"],
        "model": model_dir, "metrics": output / "report" / "metrics.json",
        "confusion matrix": output / "report" / "confusion_matrix.png",
        "misclassified": output / "report" / "misclassified.png", "training curve": model_dir / "metrics.csv",
    }
    echo(f"\nvalidation accuracy {evaluation.metrics['accuracy']:.4f}, top-2 "
         f"{evaluation.metrics['top_k_accuracy']:.4f} on {len(validation_set)} held-out digits (best epoch "
         f"{result.best_epoch}); demo took {time.perf_counter() - started:.0f} s. Outputs:")
    for name, path in paths.items():
        echo(f"  {name:18s} {path}")
    echo(f"next: oculi predict {model_dir} {samples[0] if samples else 'IMAGE'}")
    return paths
