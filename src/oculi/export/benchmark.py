"""``oculi benchmark MODEL``: one row per runtime × precision the bundle can run — file size, the task's metric and
its change from float32, latency p50/p95 at batch 1, throughput at the predictor's batch size, speed-up over torch
float32 — saved as JSON and Markdown, and filed in model.json (``benchmarks``, by :func:`machine_kind`) so that
``runtime=auto`` picks the measured fastest row within the accuracy bound on this kind of machine.

Latency and throughput time :meth:`Predictor.predict` on decoded ``uint8`` images — what a server does per request
after decoding: preprocessing, the network, postprocessing. The rows take turns in a few rounds of consecutive
calls, so a change of load on the machine affects them alike while no row is timed against another runtime's
threads."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from oculi.artifacts import ONNX, WEIGHTS, ModelBundle
from oculi.errors import ConfigError
from oculi.export.onnx import commit, opened
from oculi.export.quantize import DEFAULT_MAX_DROP, channel_images, recorded_channel
from oculi.inference.predictor import Predictor
from oculi.inference.runtimes import OPENVINO_PRECISIONS, QUANTIZED, available, machine_kind, openvino_installed
from oculi.precision import cpu_supports_bf16
from oculi.tasks import evaluate, task_of

ROUNDS = 4  # rounds of consecutive calls per row (see _timings)
COMBINATIONS = {"torch": ("float32", "bfloat16"), "onnx": ("float32", "int8", "fp16"), "openvino": OPENVINO_PRECISIONS}


@dataclass
class BenchmarkTable:
    """The rows measured (dicts: runtime, precision, size_mb, metric, metric_change, p50_ms, p95_ms,
    throughput, speedup, ok, notes), the rows left out with why (``skipped``), the machine kind and CPU."""

    rows: list[dict[str, Any]]
    skipped: list[str]
    machine: str
    cpu: str
    metric: str
    batch_size: int
    measured: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_json(self) -> dict[str, Any]:
        """The table as saved and filed in model.json."""
        return {"machine": self.machine, "cpu": self.cpu, "metric": self.metric, "batch_size": self.batch_size,
                "measured": self.measured, "rows": self.rows, "skipped": self.skipped}

    def markdown(self) -> str:
        """The table in Markdown (Ultralytics' benchmark table plus the accuracy change)."""
        lines = [f"Benchmark on {self.cpu} ({self.machine}), {self.measured}", "",
                 f"| runtime | precision | size MB | {self.metric} | change | p50 ms | p95 ms | img/s (batch "
                 f"{self.batch_size}) | speed-up | notes |", "|---|---|---|---|---|---|---|---|---|---|"]
        for row in self.rows:
            metric = "–" if row["metric"] is None else f"{row['metric']:.4f}"
            change = "–" if row["metric_change"] is None else f"{row['metric_change']:+.4f}"
            lines.append(f"| {row['runtime']} | {row['precision']} | {row['size_mb']:.2f} | {metric} | {change} | "
                         f"{row['p50_ms']:.1f} | {row['p95_ms']:.1f} | {row['throughput']:.1f} | "
                         f"{row['speedup']:.2f}× | {'; '.join(row['notes'])} |")
        lines += [f"- not measured: {why}" for why in self.skipped]
        return "\n".join(lines) + "\n"


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's processor string elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _size_mb(bundle: ModelBundle, runtime: str, precision: str) -> float:
    name = WEIGHTS if runtime == "torch" else QUANTIZED.get(precision, ONNX)
    return (bundle.path / name).stat().st_size / 1e6


def _timings(predictors: dict[tuple[str, str], Predictor], images: list[torch.Tensor], batch: int, runs: int,
             ) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """Per row: batch-1 call seconds (``runs`` calls) and batch-``batch`` call seconds (one per round), the rows
    taking turns in :data:`ROUNDS` rounds of consecutive calls, each block after two untimed calls — one runtime's
    threads still waking or spinning must not be timed against another's, as a server runs one runtime."""
    single, many = images[:1], (images * batch)[:batch]
    rounds = min(ROUNDS, runs)
    out: dict[tuple[str, str], tuple[list[float], list[float]]] = {key: ([], []) for key in predictors}
    for round_ in range(rounds):
        for key, predictor in predictors.items():
            for _ in range(2):
                predictor.predict(single)
            for _ in range(runs // rounds + (round_ < runs % rounds)):
                started = time.perf_counter()
                predictor.predict(single)
                out[key][0].append(time.perf_counter() - started)
            predictor.predict(many, batch_size=batch)
            started = time.perf_counter()
            predictor.predict(many, batch_size=batch)
            out[key][1].append(time.perf_counter() - started)
    return out


def benchmark(model: str | Path, *, data: str | Path | None = None,
              runtimes: tuple[str, ...] = ("torch", "onnx", "openvino"),
              precisions: tuple[str, ...] = ("float32", "bfloat16", "int8"), runs: int = 50,
              max_accuracy_drop: float | None = None, output: Path | None = None, record: bool = True,
              progress: Callable[[str], None] = lambda _: None) -> BenchmarkTable:
    """Measure every ``runtimes`` × ``precisions`` row the bundle ``model`` can run (ONNX rows need their export)
    on ``data`` (default: the bundle's recorded validation channel; none reachable → no metric column), write
    ``benchmark.json`` and ``benchmark.md`` to ``output`` when given, and file the table in model.json under this
    machine kind when ``record``. A row is marked (``ok`` false) when its metric falls more than
    ``max_accuracy_drop`` (default: the export's bound, else 0.01) below float32's; a row slower than float32 ONNX
    is noted."""
    for runtime in runtimes:
        if runtime not in COMBINATIONS:
            raise ConfigError(f"--runtimes got {runtime!r}; expected some of {', '.join(COMBINATIONS)}.")
    known = sorted({p for ps in COMBINATIONS.values() for p in ps})
    for precision in precisions:
        if precision not in known:
            raise ConfigError(f"--precisions got {precision!r}; expected some of {', '.join(known)}.")
    if runs < 3:
        raise ConfigError(f"runs got {runs}; expected at least 3.")
    source = Path(model).expanduser()
    with opened(source) as bundle:
        contract = task_of(bundle)
        try:
            data_path: Path | None = recorded_channel(bundle, data, "validation", "--data")
        except ConfigError:
            if data is not None:
                raise
            data_path = None
        skipped: list[str] = []
        if data_path is None:
            skipped.append(f"{contract.metric}: no --data given and the bundle records no reachable validation data")
        predictors: dict[tuple[str, str], Predictor] = {}
        for runtime in runtimes:
            for precision in precisions:
                if precision not in COMBINATIONS[runtime]:
                    continue
                if runtime == "openvino" and not openvino_installed():
                    if precision == "float32":
                        skipped.append("openvino: not installed (pip install 'oculi[openvino]')")
                    continue
                if runtime != "torch" and not available(bundle, precision):
                    flag = "" if precision == "float32" else f" --precision {precision}"
                    skipped.append(f"{runtime} {precision}: no current export (`oculi export MODEL --format onnx"
                                   f"{flag}`)")
                    continue
                if runtime == "onnx" and precision == "fp16" and not torch.cuda.is_available():
                    skipped.append("onnx fp16: for GPUs (no GPU here)")
                    continue
                if runtime == "torch" and precision == "bfloat16" and not cpu_supports_bf16():
                    skipped.append("torch bfloat16: this CPU has no native bf16 (it would only be slower)")
                    continue
                predictors[(runtime, precision)] = contract.predictor(bundle, "cpu", runtime, precision)
        if not predictors:
            raise ConfigError(f"{source}: nothing to benchmark: " + "; ".join(skipped))
        metrics: dict[tuple[str, str], float | None] = {}
        for key, predictor in predictors.items():
            if data_path is not None:
                progress(f"{key[0]} {key[1]}: measuring {contract.metric} on {data_path}…")
            metrics[key] = (float(evaluate(predictor, data_path, progress=False).metrics[contract.metric])
                            if data_path is not None else None)
        progress("timing…")
        sample_paths = (channel_images(bundle, data_path, 8)[0] if data_path is not None else [])
        first = next(iter(predictors.values()))
        images = [first.to_tensor(path) for path in sample_paths] or [_generated(bundle)]
        batch = first.default_batch_size
        timings = _timings(predictors, images, batch, runs)
        rows = _rows(bundle, predictors, metrics, timings, batch, max_accuracy_drop)
        table = BenchmarkTable(rows, skipped, machine_kind(), cpu_name(), contract.metric, batch)
        if output is not None:
            output.mkdir(parents=True, exist_ok=True)
            (output / "benchmark.json").write_text(json.dumps(table.to_json(), indent=2) + "\n")
            (output / "benchmark.md").write_text(table.markdown())
        if record:
            filed = dict(bundle.meta.get("benchmarks") or {})
            filed[table.machine] = table.to_json()
            commit(bundle, source, {}, {"benchmarks": filed})
    return table


def _generated(bundle: ModelBundle) -> torch.Tensor:
    """A seeded random ``uint8`` image at the bundle's input size, when no data is at hand."""
    spec = bundle.meta["input"]
    size = int(spec.get("resize") or spec.get("height") or spec.get("base_size") or 224)
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def _rows(bundle: ModelBundle, predictors: dict[tuple[str, str], Predictor],
          metrics: dict[tuple[str, str], float | None],
          timings: dict[tuple[str, str], tuple[list[float], list[float]]], batch: int,
          max_accuracy_drop: float | None) -> list[dict[str, Any]]:
    """The table rows from the measurements (see :class:`BenchmarkTable`)."""
    reference_metric = metrics.get(("torch", "float32"), metrics.get(("onnx", "float32")))
    medians = {key: statistics.median(single) for key, (single, _) in timings.items()}
    baseline = medians.get(("torch", "float32"), max(medians.values()))
    onnx_float = medians.get(("onnx", "float32"))
    rows = []
    for key in predictors:
        runtime, precision = key
        single, many = timings[key]
        bound = max_accuracy_drop
        if bound is None:
            bound = (bundle.meta.get(f"onnx_{precision}") or {}).get("max_accuracy_drop", DEFAULT_MAX_DROP)
        metric = metrics[key]
        change = None if metric is None or reference_metric is None else metric - reference_metric
        notes = []
        ok = True
        if change is not None and -change > bound:
            ok = False
            notes.append(f"below the accuracy floor (drop {-change:.4f} > {bound:g})")
        if onnx_float is not None and key != ("onnx", "float32") and medians[key] > onnx_float:
            notes.append("slower than float32 ONNX")
        quantiles = statistics.quantiles(single, n=20) if len(single) >= 2 else single * 19
        rows.append({"runtime": runtime, "precision": precision, "size_mb": _size_mb(bundle, runtime, precision),
                     "metric": metric, "metric_change": change, "p50_ms": medians[key] * 1000,
                     "p95_ms": quantiles[18] * 1000, "throughput": batch / statistics.median(many),
                     "speedup": baseline / medians[key], "ok": ok, "notes": notes})
    return rows
