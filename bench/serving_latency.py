"""Latency and throughput of `oculi serve` on loopback: a ResNet-18 classification bundle (random weights),
one 224×224 JPEG per request, SageMaker's ``POST /invocations`` with ``Accept: application/json``.

1. Concurrency 1: p50/p99 latency of the server against the same work done in-process (decode → preprocess →
   ResNet-18 → softmax → JSON, the server's own codec), ``--requests`` of each, alternating. Target: server p50
   ≤ 1.5× in-process p50.
2. Concurrency ``--concurrency`` (16): requests/s with dynamic batching (max_batch_size 8, the default) against
   without (``--max-batch-size 1``), ``--seconds`` each in alternating windows. Target: ≥ 1.5×.

The server runs in a child process (as in production); the client is ``http.client`` on keep-alive connections,
one thread per concurrent client, on the same 2 cores, so its cost is part of the figures.

Usage: .venv/bin/python bench/serving_latency.py [--requests 100] [--concurrency 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from serving_common import Client, ServerProcess, jpeg_224, percentile, resnet18_bundle, throughput

from oculi.inference.codecs import decode_request
from oculi.tasks import get_task, load_predictor

WARMUP = 5
ROUNDS = 4  # alternating measurement windows per server


def paired(bundle: Path, port: int, body: bytes, requests: int) -> tuple[list[float], list[float]]:
    """Seconds per request in-process (decode → predict → JSON) and through the server (one keep-alive
    connection), alternating one of each so that both see the same machine load. The loop runs in a worker
    thread, as the server's model does: on a loaded machine PyTorch's OpenMP team is much slower when driven
    from the main thread (measured 10× here), which would flatter the server."""
    predictor = load_predictor(bundle)
    codec = get_task("classification").codec
    client = Client(port)
    local: list[float] = []
    served: list[float] = []

    def run() -> None:
        for n in range(WARMUP + requests):
            started = time.perf_counter()
            image = decode_request(body, "image/jpeg", predictor.min_side)
            codec.encode(predictor.predict([image])[0], "application/json")
            middle = time.perf_counter()
            assert client.invoke(body) == 200
            ended = time.perf_counter()
            if n >= WARMUP:
                local.append(middle - started)
                served.append(ended - middle)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()
    return local, served


def main() -> int:
    """Build the bundle, measure in-process, then against a server with and without batching."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oculi-serving-bench-"))
    bundle = resnet18_bundle(work / "resnet18")
    body = jpeg_224()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-18 at 224×224, one "
          f"{len(body) / 1024:.1f} KiB JPEG per request\n", flush=True)

    batching = ServerProcess(bundle)
    no_batching = ServerProcess(bundle, "--max-batch-size", "1")
    try:
        local, served = paired(bundle, batching.port, body, args.requests)
        print("concurrency 1 (ms)            p50      p99")
        print(f"  in-process             {percentile(local, .5) * 1e3:8.1f} {percentile(local, .99) * 1e3:8.1f}")
        print(f"  oculi serve            {percentile(served, .5) * 1e3:8.1f} {percentile(served, .99) * 1e3:8.1f}")
        ratio = percentile(served, .5) / percentile(local, .5)
        print(f"  server / in-process p50: {ratio:.2f}× (target ≤ 1.5×)\n", flush=True)
        # alternate windows between the two servers, so a change in machine load hits both alike
        totals = {"batching": [0.0, 0], "no batching": [0.0, 0]}
        for _ in range(ROUNDS):
            for name, server in (("batching", batching), ("no batching", no_batching)):
                rate, failures = throughput(server.port, body, args.concurrency, args.seconds / ROUNDS)
                totals[name][0] += rate / ROUNDS
                totals[name][1] += failures
    finally:
        batching.stop()
        no_batching.stop()
    print(f"concurrency {args.concurrency} ({args.seconds:g} s each, in {ROUNDS} alternating windows)  "
          "requests/s   non-200")
    print(f"  dynamic batching (max_batch_size 8) {totals['batching'][0]:10.1f} {totals['batching'][1]:9d}")
    print(f"  no batching (max_batch_size 1)      {totals['no batching'][0]:10.1f} {totals['no batching'][1]:9d}")
    print(f"  batching gain: {totals['batching'][0] / totals['no batching'][0]:.2f}× (target ≥ 1.5×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
