"""The algorithm registry. Every built-in is registered here, explicitly."""

from __future__ import annotations

from oculi.algorithms.base import Algorithm, LoaderSpec, PreparedData
from oculi.registry import Registry

ALGORITHMS: Registry[Algorithm] = Registry("algorithm", list_command="oculi algorithms list")


def _register_builtins() -> None:
    from oculi.algorithms.classification import ImageClassification
    from oculi.algorithms.detection import ObjectDetection
    from oculi.algorithms.segmentation import SemanticSegmentation

    for algorithm in (ImageClassification(), ObjectDetection(), SemanticSegmentation()):
        ALGORITHMS.register(algorithm.name, algorithm)


_register_builtins()


def get_algorithm(name: str) -> Algorithm:
    """The registered algorithm ``name``; an unknown name lists the closest ones."""
    return ALGORITHMS.get(name)


__all__ = ["ALGORITHMS", "Algorithm", "LoaderSpec", "PreparedData", "get_algorithm"]
