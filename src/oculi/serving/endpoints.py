"""Endpoints and production variants at run time: every variant's model loaded once at start-up with its codec
and batcher; traffic split by weight (changeable while serving), ``TargetVariant`` overriding the split."""

from __future__ import annotations

import functools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from oculi.errors import ConfigError, OculiError
from oculi.inference.codecs import TaskCodec
from oculi.inference.runtimes import describe
from oculi.serving.batching import Batcher
from oculi.serving.config import Batching, ServingConfig
from oculi.serving.metrics import ServingMetrics, VariantStats
from oculi.tasks import task_of

Runtime = Literal["auto", "torch", "onnx", "openvino"]


class EndpointNotFound(OculiError):
    """No endpoint has the requested name."""

    http_status = 404


class VariantNotFound(OculiError):
    """``TargetVariant`` (or a weight update) names a variant the endpoint does not have."""

    http_status = 400


@dataclass
class Variant:
    """One production variant: its loaded ``predictor``, the ``codec`` of its task, its ``batcher`` and
    statistics."""

    endpoint: str
    name: str
    model: Path
    predictor: Any
    task: str
    codec: TaskCodec
    batcher: Batcher
    stats: VariantStats
    batching: Batching
    package_arn: str | None = None  # the model registry version served (``group:NAME``), if any

    @property
    def min_side(self) -> int | None:
        """Shortest side the model needs; large JPEGs may be decoded at a reduced scale down to it."""
        return getattr(self.predictor, "min_side", None)


class Endpoint:
    """An endpoint's variants and their weights. :meth:`choose` picks the variant of one request."""

    def __init__(self, name: str, variants: list[Variant], weights: dict[str, float],
                 on_weights: Callable[[Endpoint], None] | None = None) -> None:
        self.name = name
        self.variants = {v.name: v for v in variants}
        self._random = random.Random()
        self._lock = threading.Lock()
        self._on_weights = on_weights
        self._weights: tuple[float, ...] = ()
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, float]:
        """Current relative weight of each variant."""
        return dict(zip(self.variants, self._weights, strict=True))

    def set_weights(self, weights: dict[str, float]) -> None:
        """Change some variants' weights (the others keep theirs). Requests in flight are unaffected; the next
        request is routed with the new weights. Raises when a name is unknown, a weight is negative or all would
        be 0."""
        unknown = sorted(set(weights) - set(self.variants))
        if unknown:
            raise VariantNotFound(f"endpoint {self.name} has no variant {unknown[0]!r}; its variants: "
                                  f"{', '.join(self.variants)}.")
        negative = {k: w for k, w in weights.items() if not w >= 0}
        if negative:
            name, value = next(iter(negative.items()))
            raise ConfigError(f"the weight of variant {name} must be ≥ 0, got {value}.")
        with self._lock:
            current = dict(zip(self.variants, self._weights, strict=False))
            new = tuple(float(weights.get(n, current.get(n, 0.0))) for n in self.variants)
            if not any(w > 0 for w in new):
                raise ConfigError(f"these weights would leave endpoint {self.name} with every variant at 0; give "
                                  "at least one variant a weight > 0.")
            self._weights = new  # one tuple swap: a concurrent choose() sees the old or the new weights
        if self._on_weights is not None:
            self._on_weights(self)

    def choose(self, target: str | None = None) -> Variant:
        """The variant ``target`` names, or one drawn at random by weight."""
        if target:
            variant = self.variants.get(target)
            if variant is None:
                raise VariantNotFound(f"TargetVariant {target!r} is not a variant of endpoint {self.name}; its "
                                      f"variants: {', '.join(self.variants)}.")
            return variant
        (name,) = self._random.choices(list(self.variants), weights=self._weights)
        return self.variants[name]

    async def route(self, target_variant: str | None, target_model: str | None = None) -> Variant:
        """The variant of one request (``TargetModel`` only means something to a multi-model endpoint)."""
        return self.choose(target_variant)

    def describe(self) -> dict[str, Any]:
        """The endpoint in the shape of SageMaker's DescribeEndpoint, with each variant's model, batching
        settings, request counts and latencies."""
        variants = []
        for (name, variant), weight in zip(self.variants.items(), self._weights, strict=True):
            variants.append({"VariantName": name, "CurrentWeight": weight, "DesiredWeight": weight,
                             "ModelDataUrl": str(variant.model), "ModelPackageArn": variant.package_arn,
                             "Task": variant.task,
                             "Batching": variant.batching.model_dump(), "QueueDepth": variant.batcher.depth,
                             **variant.stats.summary()})
        return {"EndpointName": self.name, "EndpointStatus": "InService", "ProductionVariants": variants}


def load_predictor(model: Path, runtime: Runtime) -> Any:
    """Load a bundle as a predictor for ``runtime`` (``onnx`` needs the bundle's exported ``model.onnx``; ``auto``
    picks the measured fastest, see :func:`oculi.inference.runtimes.choose_runtime`)."""
    from oculi.tasks import load_predictor as load

    return load(model, runtime=runtime)


def load_variant(endpoint: str, name: str, model: Path, batching: Batching, metrics: ServingMetrics,
                 runtime: Runtime = "auto", package_arn: str | None = None) -> Variant:
    """Load one variant's model and build its batcher (not yet started), its metrics wired in."""
    predictor = load_predictor(model, runtime)
    contract = task_of(predictor)
    stats = VariantStats()
    # requests may override the thresholds, so calibration is applied per request, after the batch
    batcher = Batcher(functools.partial(predictor.predict, calibrate=False), f"{endpoint}/{name}",
                      batching.max_batch_size, batching.max_latency_ms, batching.max_queue_size,
                      metrics.observe_batch(endpoint, name, stats))
    metrics.queue_depth.labels(endpoint, name).set_function(lambda b=batcher: b.depth)
    return Variant(endpoint, name, model, predictor, contract.name, contract.codec, batcher, stats, batching,
                   package_arn)


def load_endpoints(config: ServingConfig, metrics: ServingMetrics, defaults: Batching | None = None,
                   runtime: Runtime = "auto", echo: Callable[[str], None] = print,
                   on_weights: Callable[[Endpoint], None] | None = None) -> list[Endpoint]:
    """Load every variant's model (once, now) and build the endpoints with their batchers (not yet started).
    ``echo`` prints what each variant resolved to; ``on_weights`` is called after each weight change."""
    settings = config.resolved(defaults)
    endpoints = []
    for endpoint_config in config.endpoints:
        variants = []
        for variant_config in endpoint_config.variants:
            batching = settings[endpoint_config.name][variant_config.name]
            variant = load_variant(endpoint_config.name, variant_config.name, variant_config.model, batching,
                                   metrics, runtime, variant_config._package_arn)
            variants.append(variant)
            source = f" ({variant.package_arn})" if variant.package_arn else ""
            echo(f"endpoint {endpoint_config.name}, variant {variant_config.name}: {variant.task} model "
                 f"{variant_config.model}{source} (runtime {describe(variant.predictor.runtime)}), weight "
                 f"{variant_config.weight:g}, max_batch_size {batching.max_batch_size}, max_latency_ms "
                 f"{batching.max_latency_ms:g}, max_queue_size {batching.max_queue_size}")

        def publish(endpoint: Endpoint) -> None:
            for name, weight in endpoint.weights.items():
                metrics.weight.labels(endpoint.name, name).set(weight)
            if on_weights is not None:
                on_weights(endpoint)

        endpoints.append(Endpoint(endpoint_config.name, variants,
                                  {v.name: v.weight for v in endpoint_config.variants}, on_weights=publish))
    return endpoints
