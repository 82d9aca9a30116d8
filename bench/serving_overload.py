"""Overload of `oculi serve` on loopback: ResNet-18 classification (random weights), 224×224 JPEGs.

First the sustainable rate: requests/s with ``--concurrency`` (16) closed-loop clients for 10 s. Then an open-loop
load of ``--factor`` (10) × that rate for ``--seconds`` (30): requests start on schedule whether or not earlier
ones were answered, each on its own connection (``Connection: close``). Reports requests served (200), refused
with 503 (with Retry-After), any other answer or connection error (target zero), latency of the served ones, and
the server's peak resident memory (sampled every 100 ms).

Usage: .venv/bin/python bench/serving_overload.py [--factor 10] [--seconds 30] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import tempfile
import threading
import time
from pathlib import Path

from serving_common import ServerProcess, jpeg_224, percentile, resnet18_bundle, throughput

REQUEST_TIMEOUT = 60.0


async def one(port: int, payload: bytes) -> tuple[str, float]:
    """Send one prepared request on a new connection; returns ``(status or error name, seconds)``."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(payload)
                await writer.drain()
                status_line = await reader.readline()
                await reader.read()  # the rest, until the server closes
            finally:
                writer.close()
        parts = status_line.split()
        outcome = parts[1].decode() if len(parts) > 1 else "empty response"
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
        outcome = type(e).__name__
    return outcome, time.perf_counter() - started


async def open_loop(port: int, payload: bytes, rate: float, seconds: float) -> list[tuple[str, float]]:
    """Start ``rate`` requests per second for ``seconds`` on schedule; wait for all of them."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    tasks = []
    n = 0
    while (now := loop.time() - began) < seconds:
        due = n / rate
        if due > now:
            await asyncio.sleep(due - now)
        tasks.append(asyncio.create_task(one(port, payload)))
        n += 1
    return await asyncio.gather(*tasks)


def main() -> int:
    """Measure the sustainable rate, then overload the server by ``--factor``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="oculi-serving-overload-"))
    bundle = resnet18_bundle(work / "resnet18")
    body = jpeg_224()
    payload = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
               f"Accept: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
    server = ServerProcess(bundle)
    try:
        sustainable, _ = throughput(server.port, body, args.concurrency, 10.0)
        rate = sustainable * args.factor
        idle_rss = server.rss_mb()
        peak = [idle_rss]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], server.rss_mb())
                sampling.wait(0.1)

        sampler = threading.Thread(target=sample)
        sampler.start()
        started, server_cpu, own_cpu = time.perf_counter(), server.cpu_seconds(), time.process_time()
        results = asyncio.run(open_loop(server.port, payload, rate, args.seconds))
        elapsed = time.perf_counter() - started
        server_cpu, own_cpu = server.cpu_seconds() - server_cpu, time.process_time() - own_cpu
        sampling.set()
        sampler.join()
        alive = server.proc.poll() is None
    finally:
        server.stop()
    outcomes = collections.Counter(outcome for outcome, _ in results)
    served = [seconds for outcome, seconds in results if outcome == "200"]
    others = {k: v for k, v in outcomes.items() if k not in ("200", "503")}
    print(f"sustainable rate ({args.concurrency} closed-loop clients, 10 s): {sustainable:.1f} requests/s")
    print(f"offered: {args.factor:g}× = {rate:.0f} requests/s for {args.seconds:g} s → {len(results)} requests "
          f"(all answered after {elapsed:.1f} s)")
    print(f"  served (200):          {outcomes['200']:6d}  ({outcomes['200'] / elapsed:.1f}/s; latency p50 "
          f"{percentile(served, .5) * 1e3:.0f} ms, p99 {percentile(served, .99) * 1e3:.0f} ms)" if served else
          "  served (200):               0")
    print(f"  refused (503):         {outcomes['503']:6d}")
    print(f"  other answers/errors:  {sum(others.values()):6d}  {dict(others) if others else ''} (target 0)")
    print(f"  CPU during the overload: server {server_cpu:.1f} s, load generator {own_cpu:.1f} s, of "
          f"{elapsed * (os.cpu_count() or 1):.1f} s on {os.cpu_count()} cores")
    print(f"  server RSS: {idle_rss:.0f} MiB before, peak {peak[0]:.0f} MiB; server still up afterwards: {alive}")
    return 0 if not others and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
