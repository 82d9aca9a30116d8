"""Prometheus metrics of the data plane (``GET /metrics``) and per-variant statistics for ``GET
/api/endpoints/{name}``. Each server has its own registry, so several servers can run in one process."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
RECENT = 2000  # latencies kept per variant for the percentiles in the endpoint description


class VariantStats:
    """Counts by HTTP status and the latencies of the last :data:`RECENT` requests of one variant."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_status: dict[int, int] = {}
        self.latencies: deque[float] = deque(maxlen=RECENT)
        self.batches = 0
        self.batched_images = 0

    def record(self, status: int, seconds: float) -> None:
        """Count one request answered with ``status`` after ``seconds``."""
        with self._lock:
            self.by_status[status] = self.by_status.get(status, 0) + 1
            if status < 400:
                self.latencies.append(seconds)

    def record_batch(self, size: int) -> None:
        """Count one model forward over ``size`` images."""
        with self._lock:
            self.batches += 1
            self.batched_images += size

    def summary(self) -> dict[str, Any]:
        """``{"Invocations", "Errors", "ByStatus", "LatencyMs": {"p50", "p99", "mean"}, "MeanBatchSize"}``
        (latencies of successful requests; ``None`` before the first)."""
        with self._lock:
            ordered = sorted(self.latencies)
            by_status = dict(self.by_status)
            batches, images = self.batches, self.batched_images

        def pct(q: float) -> float | None:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3) if ordered else None

        return {"Invocations": sum(by_status.values()),
                "Errors": sum(n for s, n in by_status.items() if s >= 400),
                "ByStatus": {str(s): n for s, n in sorted(by_status.items())},
                "LatencyMs": {"p50": pct(0.5), "p99": pct(0.99),
                              "mean": round(sum(ordered) / len(ordered) * 1000, 3) if ordered else None},
                "MeanBatchSize": round(images / batches, 3) if batches else None}


class DriftCollector:
    """The latest drift scores of every monitoring schedule of an endpoint (``oculi monitor schedule --endpoint``),
    read at scrape time: ``oculi_monitoring_drift_effect`` and ``oculi_monitoring_drift_p_value`` (Holm-adjusted)
    per feature, ``oculi_monitoring_violations`` per schedule."""

    def collect(self) -> Any:
        """Yield the gauge families (empty when no schedule has run)."""
        import json

        from prometheus_client.core import GaugeMetricFamily

        from oculi.settings import oculi_home

        labels = ["endpoint", "schedule", "feature"]
        effect = GaugeMetricFamily("oculi_monitoring_drift_effect", "Effect size of the latest drift test (KS "
                                   "distance, Cramér's V, MMD²).", labels=labels)
        p_value = GaugeMetricFamily("oculi_monitoring_drift_p_value", "Holm-adjusted p-value of the latest drift "
                                    "test.", labels=labels)
        violations = GaugeMetricFamily("oculi_monitoring_violations", "Violations in the latest monitoring "
                                       "execution.", labels=["endpoint", "schedule"])
        for path in sorted((oculi_home() / "monitoring").glob("*/*.json")):
            try:
                latest = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # being rewritten, or not ours
            endpoint, schedule = path.parent.name, path.stem
            violations.add_metric([endpoint, schedule], float(latest.get("violations", 0)))
            for feature, score in latest.get("scores", {}).items():
                effect.add_metric([endpoint, schedule, feature], float(score["effect"]))
                p_value.add_metric([endpoint, schedule, feature], float(score["p_adjusted"]))
        yield from (effect, p_value, violations)


class ServingMetrics:
    """The server's Prometheus metrics (``oculi_*``), labelled by endpoint and variant."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("endpoint", "variant")
        self.requests = Counter("oculi_requests", "Data-plane requests by endpoint, variant and HTTP status.",
                                (*labels, "status"), registry=self.registry)
        self.latency = Histogram("oculi_request_latency_seconds", "Request latency from the first byte read to "
                                 "the response (successful requests).", labels, buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.model_latency = Histogram("oculi_model_latency_seconds", "Time of one model forward over a batch.",
                                       labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_wait = Histogram("oculi_queue_wait_seconds", "Time a decoded request waited for its batch.",
                                    labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("oculi_batch_size", "Images per model forward (dynamic batching).", labels,
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("oculi_queue_depth", "Requests decoding or queued for the model.", labels,
                                 registry=self.registry)
        self.in_flight = Gauge("oculi_in_flight_requests", "Data-plane requests being served.",
                               registry=self.registry)
        self.weight = Gauge("oculi_variant_weight", "Current traffic weight of each variant.", labels,
                            registry=self.registry)
        self.registry.register(DriftCollector())
        self.capture_dropped = Counter("oculi_capture_dropped", "Capture records dropped (writer queue full or "
                                       "disk over 75 % full).", ("endpoint",), registry=self.registry)

    def observe_batch(self, endpoint: str, variant: str, stats: VariantStats) -> Any:
        """A callback for :class:`~oculi.serving.batching.Batcher` that records batch size, model time and
        queue waits of ``endpoint``/``variant``."""
        size_metric = self.batch_size.labels(endpoint, variant)
        model_metric = self.model_latency.labels(endpoint, variant)
        wait_metric = self.queue_wait.labels(endpoint, variant)

        def observe(size: int, seconds: float, waits: Sequence[float]) -> None:
            size_metric.observe(size)
            model_metric.observe(seconds)
            for wait in waits:
                wait_metric.observe(wait)
            stats.record_batch(size)

        return observe

    def render(self) -> bytes:
        """The metrics in Prometheus' text exposition format."""
        return generate_latest(self.registry)
