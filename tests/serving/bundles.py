"""Model bundles for the serving tests, built through the algorithm contract (hyperparameters → ``build_model``
→ ``input_spec`` → ``save_bundle``) with untrained weights: serving reads the bundle exactly as it reads a trained
one, and building takes a second instead of a training run."""

from __future__ import annotations

from pathlib import Path

import torch

from oculi.algorithms import get_algorithm
from oculi.artifacts import save_bundle

# Every ``auto`` resolved, as training would write it; small networks and inputs so a forward takes milliseconds.
RESOLVED = {"lr_scheduler": "cosine", "num_workers": 0, "precision_dtype": "float32"}
TINY_BUNDLES = {
    "image-classification": ({"image_shape": "3,32,32", "num_layers": "20", "resize": "36", "learning_rate": "0.1"},
                             ["circle", "square", "stripes"]),
    "object-detection": ({"image_shape": "128", "learning_rate": "0.001", "use_pretrained_model": "0"},
                         ["box", "disc"]),
    "semantic-segmentation": ({"base_size": "64", "crop_size": "48", "use_pretrained_model": "False",
                               "lr_scheduler": "poly"}, ["background", "box", "disc"]),
}


def build_bundle(directory: Path, algorithm: str, hyperparameters: dict[str, str], classes: list[str],
                 seed: int = 0) -> Path:
    """Write an untrained bundle of ``algorithm`` (seeded weights) into ``directory``; returns it."""
    algo = get_algorithm(algorithm)
    hp = algo.hyperparameters.model_validate({**RESOLVED, **hyperparameters, "num_classes": str(len(classes))})
    torch.manual_seed(seed)
    model = algo.build_model(hp, classes, pretrained=False).eval()
    meta = {"algorithm": algo.name, "task": algo.task, "hyperparameters": hp.model_dump(mode="json"),
            "classes": classes, "input": algo.input_spec(hp), "metrics": {}}
    return save_bundle(directory, meta, model)


def tiny_bundle(directory: Path, algorithm: str, seed: int = 0) -> Path:
    """The tiny bundle of ``algorithm`` (see :data:`TINY_BUNDLES`)."""
    hyperparameters, classes = TINY_BUNDLES[algorithm]
    return build_bundle(directory, algorithm, hyperparameters, classes, seed)
