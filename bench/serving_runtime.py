"""End-to-end endpoint figures of ``runtime=auto`` (the default of ``oculi serve``) against the runtime that was the
default before it, ``--runtime torch`` (with torch's own precision policy: bf16 autocast on CPUs with native bf16,
else float32): for each bundle, two ``oculi serve`` processes on loopback, one
JPEG per ``POST /invocations``.

1. Concurrency 1: p50/p95 latency, ``--requests`` per server, one request to each in turn (same machine load).
2. Concurrency ``--concurrency``: requests/s with the servers' dynamic batching, in alternating windows.

The bundles should carry what ``auto`` chooses from (``oculi export --precision int8`` and ``oculi benchmark``):
``bench/edge_export.py`` leaves such bundles in /tmp/oculi-bench-edge.

Usage: .venv/bin/python bench/serving_runtime.py [BUNDLE …] [--requests 100] [--concurrency 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from serving_common import Client, ServerProcess, jpeg_224, percentile, throughput

from oculi.export.benchmark import cpu_name
from oculi.inference.runtimes import choose_runtime, machine_kind
from oculi.tasks import load_predictor

WARMUP = 5
ROUNDS = 4  # alternating throughput windows per server
DEFAULT = [Path("/tmp/oculi-bench-edge") / name for name in ("lite0", "resnet18")]


def latencies(servers: dict[str, ServerProcess], body: bytes, requests: int) -> dict[str, list[float]]:
    """Seconds per request for each server, one request to each in turn on its own keep-alive connection."""
    clients = {name: Client(server.port) for name, server in servers.items()}
    seconds: dict[str, list[float]] = {name: [] for name in servers}
    for n in range(WARMUP + requests):
        for name, client in clients.items():
            started = time.perf_counter()
            if client.invoke(body) != 200:
                raise RuntimeError(f"{name}: a request failed")
            if n >= WARMUP:
                seconds[name].append(time.perf_counter() - started)
    return seconds


def main() -> int:
    """Serve each bundle twice (torch float32, auto) and print latency and throughput."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundles", nargs="*", type=Path, default=DEFAULT)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    body = jpeg_224()
    print(f"CPU: {cpu_name()} ({machine_kind()}), torch {torch.__version__}, {torch.get_num_threads()} threads; one "
          f"{len(body) / 1024:.1f} KiB 224×224 JPEG per request\n", flush=True)
    print("| bundle | server | p50 ms | p95 ms | req/s at concurrency "
          f"{args.concurrency} |\n|---|---|---|---|---|")
    for bundle in args.bundles:
        predictor = load_predictor(bundle, runtime="torch")
        torch_precision = predictor.runtime.precision  # torch's own auto: bf16 on CPUs with native bf16
        runtime, precision, _ = choose_runtime(predictor.bundle, predictor.device)
        del predictor
        servers = {f"--runtime torch (the old default: {torch_precision})": ServerProcess(bundle, "--runtime", "torch"),
                   f"auto → {runtime} {precision}": ServerProcess(bundle)}
        try:
            seconds = latencies(servers, body, args.requests)
            rates = dict.fromkeys(servers, 0.0)
            for _ in range(ROUNDS):
                for name, server in servers.items():
                    rate, failures = throughput(server.port, body, args.concurrency, args.seconds / ROUNDS)
                    if failures:
                        raise RuntimeError(f"{name}: {failures} request(s) failed")
                    rates[name] += rate / ROUNDS
        finally:
            for server in servers.values():
                server.stop()
        for name in servers:
            print(f"| {bundle.name} | {name} | {percentile(seconds[name], .5) * 1e3:.1f} | "
                  f"{percentile(seconds[name], .95) * 1e3:.1f} | {rates[name]:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
