"""Latency and throughput of `oculi serve` on loopback: a ResNet-18 classification bundle (random weights),
one 224×224 JPEG per request, SageMaker's ``POST /invocations`` with ``Accept: application/json``.

1. Concurrency 1: p50/p99 latency of the server against the same work done in-process (decode → preprocess →
   ResNet-18 → softmax → JSON, the server's own codec), each over ``--requests`` calls. Target: server p50 ≤
   1.5× in-process p50.
2. Concurrency ``--concurrency`` (16): requests/s with dynamic batching (``--max-batch-size 8``) against
   without (``--max-batch-size 1``), each for ``--seconds``. Target: ≥ 1.5×.

The server runs in a child process (as in production); the client is ``http.client`` on keep-alive connections,
one thread per concurrent client, on the same 2 cores, so its cost is part of the figures.

Usage: .venv/bin/python bench/serving_latency.py [--requests 100] [--concurrency 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from serving_common import Client, ServerProcess, jpeg_224, percentile, resnet18_bundle, throughput

from oculi.inference import Predictor
from oculi.inference.codecs import codec_for, decode_request

WARMUP = 5


def in_process(bundle: Path, body: bytes, requests: int) -> list[float]:
    """Seconds per decode → predict → JSON, in this process."""
    predictor = Predictor.from_artifact(bundle)
    codec = codec_for("classification")
    times = []
    for n in range(WARMUP + requests):
        started = time.perf_counter()
        image = decode_request(body, "image/jpeg", predictor.min_side)
        codec.encode(predictor.predict([image])[0], "application/json")
        if n >= WARMUP:
            times.append(time.perf_counter() - started)
    return times


def sequential(port: int, body: bytes, requests: int) -> list[float]:
    """Seconds per request, one at a time on one keep-alive connection."""
    client = Client(port)
    times = []
    for n in range(WARMUP + requests):
        started = time.perf_counter()
        assert client.invoke(body) == 200
        if n >= WARMUP:
            times.append(time.perf_counter() - started)
    return times


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
          f"{len(body) / 1024:.1f} KiB JPEG per request\n")

    local = in_process(bundle, body, args.requests)
    server = ServerProcess(bundle)
    try:
        served = sequential(server.port, body, args.requests)
        batched, batched_failures = throughput(server.port, body, args.concurrency, args.seconds)
    finally:
        server.stop()
    server = ServerProcess(bundle, "--max-batch-size", "1")
    try:
        unbatched, unbatched_failures = throughput(server.port, body, args.concurrency, args.seconds)
    finally:
        server.stop()

    print("concurrency 1 (ms)            p50      p99")
    print(f"  in-process             {percentile(local, .5) * 1e3:8.1f} {percentile(local, .99) * 1e3:8.1f}")
    print(f"  oculi serve            {percentile(served, .5) * 1e3:8.1f} {percentile(served, .99) * 1e3:8.1f}")
    ratio = percentile(served, .5) / percentile(local, .5)
    print(f"  server / in-process p50: {ratio:.2f}× (target ≤ 1.5×)\n")
    print(f"concurrency {args.concurrency} ({args.seconds:g} s each)        requests/s   non-200")
    print(f"  dynamic batching (max_batch_size 8) {batched:10.1f} {batched_failures:9d}")
    print(f"  no batching (max_batch_size 1)      {unbatched:10.1f} {unbatched_failures:9d}")
    print(f"  batching gain: {batched / unbatched:.2f}× (target ≥ 1.5×)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
