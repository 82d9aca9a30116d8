"""Multi-model endpoints (``oculi serve --multi-model DIR``): one endpoint serving every bundle under ``DIR`` by
name, as SageMaker's multi-model endpoints do. A request names its model with ``TargetModel`` (boto3's
``invoke_endpoint(TargetModel="ants.tar.gz")`` sends it as ``X-Amzn-SageMaker-Target-Model``); a model is loaded
on its first request, and beyond ``max_loaded`` models the least recently used one is unloaded. ``/metrics``
counts loads, hits and evictions.

Concurrency: a model is loaded once however many first requests arrive together (one lock per model, the load
in a worker thread); the LRU table changes only on the event loop, and a request reserves its place in the
model's batcher on the event loop right after choosing it, so an evicted model's batcher is stopped only once
the requests that chose it have been answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from prometheus_client import Counter, Gauge
from starlette.concurrency import run_in_threadpool

from oculi.errors import ConfigError, OculiError
from oculi.serving.config import Batching, ServingConfig
from oculi.serving.endpoints import Endpoint, Runtime, Variant, load_variant
from oculi.serving.metrics import ServingMetrics

ARCHIVES = (".tar.gz", ".tgz")


class ModelNotFound(OculiError):
    """``TargetModel`` is missing, or names no bundle under the endpoint's model folder."""

    http_status = 404


def release_memory() -> None:
    """Ask glibc to return freed heap pages to the system (a no-op elsewhere): without it the memory of an unloaded
    model stays in the process, ready for reuse but counted as resident."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def model_names(directory: Path) -> list[str]:
    """The names a request may use as ``TargetModel``: each bundle folder (holding model.json, directly or in
    ``model/``) and each ``.tar.gz`` archive under ``directory``, relative to it."""
    names = []
    for path in sorted(directory.rglob("*")):
        if path.is_file() and path.name.endswith(ARCHIVES):
            names.append(path.relative_to(directory).as_posix())
        elif path.is_file() and path.name == "model.json":
            folder = path.parent.parent if path.parent.name == "model" else path.parent
            if folder != directory:
                names.append(folder.relative_to(directory).as_posix())
    return sorted(set(names))


class MultiModelEndpoint(Endpoint):
    """An endpoint whose variants are the models of ``directory``, loaded on demand, at most ``max_loaded`` at
    once (least recently used unloaded first)."""

    def __init__(self, name: str, directory: Path, metrics: ServingMetrics, batching: Batching,
                 max_loaded: int, runtime: Runtime = "auto") -> None:
        directory = Path(directory).expanduser().resolve()
        if not directory.is_dir():
            raise ConfigError(f"--multi-model {directory}: not a folder. Pass the folder holding the model bundles "
                              "(folders or model.tar.gz files), one per model.")
        if max_loaded < 1:
            raise ConfigError(f"--max-loaded-models must be at least 1, got {max_loaded}.")
        self.name = name
        self.directory = directory
        self.max_loaded = max_loaded
        self._metrics = metrics
        self._batching = batching
        self._runtime = runtime
        self._loaded: OrderedDict[str, Variant] = OrderedDict()
        self._loading: dict[str, asyncio.Lock] = {}
        self._guard = threading.Lock()
        labels = ("endpoint",)
        self.loads = Counter("oculi_model_loads", "Models loaded by a multi-model endpoint.", labels,
                             registry=metrics.registry).labels(name)
        self.hits = Counter("oculi_model_cache_hits", "Requests of a multi-model endpoint whose model was already "
                            "loaded.", labels, registry=metrics.registry).labels(name)
        self.evictions = Counter("oculi_model_evictions", "Models a multi-model endpoint unloaded (least recently "
                                 "used beyond --max-loaded-models).", labels, registry=metrics.registry).labels(name)
        Gauge("oculi_loaded_models", "Models a multi-model endpoint holds in memory.", labels,
              registry=metrics.registry).labels(name).set_function(lambda: len(self._loaded))

    @property
    def variants(self) -> dict[str, Variant]:  # type: ignore[override]
        """The models loaded now, least recently used first."""
        with self._guard:
            return dict(self._loaded)

    @property
    def weights(self) -> dict[str, float]:
        """Every loaded model gets the requests that name it: weight 1 each."""
        return {n: 1.0 for n in self.variants}

    def set_weights(self, weights: dict[str, float]) -> None:
        """Refused: requests name their model."""
        raise ConfigError(f"endpoint {self.name} is a multi-model endpoint: requests choose the model with "
                          "TargetModel, there are no weights to set.")

    def choose(self, target: str | None = None) -> Variant:
        """Refused without a model name (see :meth:`route`)."""
        raise ModelNotFound(f"endpoint {self.name} is a multi-model endpoint: name the model with the "
                            "X-Amzn-SageMaker-Target-Model header (boto3: invoke_endpoint(TargetModel='ants.tar.gz'"
                            f")); models: {', '.join(model_names(self.directory)) or '(none)'}.")

    def _path(self, target: str) -> Path:
        """The bundle ``target`` names, inside the model folder (never outside it)."""
        path = (self.directory / target).resolve()
        if not path.is_relative_to(self.directory) or path == self.directory or not path.exists():
            raise ModelNotFound(f"TargetModel {target!r} is not a model of endpoint {self.name} (folder "
                                f"{self.directory}); models: {', '.join(model_names(self.directory)) or '(none)'}.")
        return path

    async def route(self, target_variant: str | None, target_model: str | None = None) -> Variant:
        """The loaded model ``target_model`` names, loading it first (and unloading the least recently used
        beyond ``max_loaded``)."""
        if not target_model:
            return self.choose()
        key = target_model.strip("/")
        variant = self._loaded.get(key)
        if variant is not None:
            with self._guard:
                self._loaded.move_to_end(key)
            self.hits.inc()
            return variant
        path = self._path(key)
        lock = self._loading.setdefault(key, asyncio.Lock())
        async with lock:  # a second first request waits for the first one's load
            variant = self._loaded.get(key)
            if variant is None:
                variant = await run_in_threadpool(load_variant, self.name, key, path, self._batching,
                                                  self._metrics, self._runtime)
                variant.batcher.start()
                self.loads.inc()
                with self._guard:
                    self._loaded[key] = variant
                    evicted = [self._loaded.popitem(last=False)[1]
                               for _ in range(len(self._loaded) - self.max_loaded)]
                for old in evicted:
                    self._evict(old)
            else:
                self.hits.inc()
        with self._guard:
            if key in self._loaded:
                self._loaded.move_to_end(key)
        return variant

    def _evict(self, old: Variant) -> None:
        self.evictions.inc()
        # the thread gets the model in a list it empties, so that no reference outlives the unload
        threading.Thread(target=self._retire, args=([old],), name=f"oculi-unload-{old.name}", daemon=True).start()

    def _retire(self, holder: list[Variant]) -> None:
        """Stop an evicted model's batcher once the requests that chose it are answered, drop the last reference
        to it (its queue-depth gauge) and give its memory back to the system."""
        variant = holder.pop()
        while variant.batcher.depth:
            time.sleep(0.01)
        variant.batcher.stop()
        with contextlib.suppress(KeyError):
            self._metrics.queue_depth.remove(self.name, variant.name)
        del variant
        gc.collect()
        release_memory()

    def describe(self) -> dict[str, Any]:
        """DescribeEndpoint with the models available and the ones loaded (with their statistics)."""
        loaded = [{"TargetModel": name, "ModelDataUrl": str(v.model), "Task": v.task, **v.stats.summary()}
                  for name, v in self.variants.items()]
        return {"EndpointName": self.name, "EndpointStatus": "InService", "MultiModel": True,
                "ModelDataUrlPrefix": str(self.directory), "MaxLoadedModels": self.max_loaded,
                "AvailableModels": model_names(self.directory), "LoadedModels": loaded, "ProductionVariants": []}


def multi_model_endpoint(directory: Path, name: str, metrics: ServingMetrics, defaults: Batching,
                         max_loaded: int, runtime: Runtime = "auto") -> MultiModelEndpoint:
    """The multi-model endpoint of ``directory``, batching settings resolved as for a one-model endpoint."""
    config = ServingConfig.model_validate({"endpoints": [{"name": name, "variants": [
        {"name": "AllTraffic", "model": str(directory)}]}]})
    batching = config.resolved(defaults)[name]["AllTraffic"]
    return MultiModelEndpoint(name, directory, metrics, batching, max_loaded, runtime)
