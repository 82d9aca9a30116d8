"""oculi: the SageMaker computer-vision workflow on your own machine.

``import oculi`` does no I/O and imports no heavy library; the functions below load what they need on call::

    import oculi
    result = oculi.train("image-classification", {"train": "data/train"}, {"epochs": "5"})
    model = oculi.load_model(result.model_dir)
    model.predict("cat.jpg")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "train", "evaluate", "load_model", "Estimator", "Model", "EndpointPredictor", "LabelingJob",
           "ModelPackage", "Explainer"]

if TYPE_CHECKING:
    from oculi.inference import Predictor
    from oculi.labeling import LabelingJob
    from oculi.model_registry import ModelPackage
    from oculi.serving.estimator import Estimator
    from oculi.serving.sdk import EndpointPredictor, Model


def __getattr__(name: str) -> Any:
    if name == "Estimator":  # the SageMaker-style SDK, loaded on first use
        from oculi.serving.estimator import Estimator

        return Estimator
    if name == "LabelingJob":  # labeling jobs (Ground Truth's shapes)
        from oculi.labeling import LabelingJob

        return LabelingJob
    if name in ("Model", "EndpointPredictor"):  # deploy a bundle as a local endpoint / call an endpoint
        from oculi.serving import sdk

        return getattr(sdk, name)
    if name == "ModelPackage":  # a version in the model registry (oculi.model_registry)
        from oculi.model_registry import ModelPackage

        return ModelPackage
    if name == "Explainer":  # class activation maps of a loaded model (oculi.explain)
        from oculi.explain import Explainer

        return Explainer
    raise AttributeError(f"module 'oculi' has no attribute {name!r}")


def load_model(path: Any, runtime: str = "torch", precision: str = "auto") -> Predictor:
    """Load a model bundle (folder, job output folder or model.tar.gz) as a :class:`~oculi.inference.Predictor`;
    ``runtime`` (``torch`` | ``onnx``) and ``precision`` (``auto`` | ``float32`` | ``bfloat16``) as in
    :func:`oculi.tasks.load_predictor`; the predictor is the one of the bundle's task."""
    from oculi.tasks import load_predictor

    return load_predictor(path, runtime=runtime, precision=precision)


def train(algorithm: str, channels: dict[str, Any], hyperparameters: dict[str, Any] | None = None,
          **options: Any) -> Any:
    """Train a registered algorithm on named channels; see :func:`oculi.engine.training.train`."""
    from oculi.engine.training import train as _train

    return _train(algorithm, channels, hyperparameters, **options)


def evaluate(model: Any, data: Any, **options: Any) -> Any:
    """Evaluate a model bundle on labelled data with its task's evaluator; see :func:`oculi.tasks.evaluate`."""
    from oculi.tasks import evaluate as _evaluate

    return _evaluate(model, data, **options)
