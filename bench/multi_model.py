"""Multi-model endpoint: first-request (cold: load + predict) and warm latency, and the server's memory serving
20 ResNet-18 bundles (random weights, 224×224) with ``--max-loaded-models 5`` against keeping all 20 loaded.

Each configuration runs in a fresh child process (so its memory is its own): the server is
:func:`oculi.serving.server.build_multi_model_app` on a loopback port in that process, the client a keep-alive
``http.client`` connection. Reports cold latency (median over the 20 first requests), warm latency (median of 20
requests to a loaded model), and the process's resident memory after every model was used once (VmRSS) and its
peak (VmHWM).

Usage: .venv/bin/python bench/multi_model.py [--models 20] [--max-loaded 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving_common import jpeg_224, resnet18_bundle  # noqa: E402


def _memory_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def child(directory: Path, models: int, max_loaded: int) -> dict[str, float]:
    """Serve ``directory`` with ``max_loaded`` and measure; returns the figures."""
    from oculi.serving.server import BackgroundServer, ServeOptions, build_multi_model_app

    server = BackgroundServer(build_multi_model_app(directory, ServeOptions(), max_loaded, name="zoo",
                                                    echo=lambda _l: None)).start()
    before = _memory_mb()["VmRSS"]
    body = jpeg_224()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)

    def call(target: str) -> float:
        start = time.perf_counter()
        connection.request("POST", "/endpoints/zoo/invocations", body=body,
                           headers={"Content-Type": "image/jpeg", "X-Amzn-SageMaker-Target-Model": target})
        response = connection.getresponse()
        response.read()
        assert response.status == 200, response.status
        return (time.perf_counter() - start) * 1000

    cold = [call(f"m{n:02d}") for n in range(models)]
    warm = [call(f"m{models - 1:02d}") for _ in range(20)]
    memory = _memory_mb()
    server.stop()
    return {"cold_ms": statistics.median(cold), "warm_ms": statistics.median(warm), "rss_before_mb": before,
            "rss_mb": memory["VmRSS"], "peak_mb": memory["VmHWM"]}


def main() -> None:
    """Build the bundles once, then measure each configuration in its own process."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--max-loaded", type=int, default=5)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]), int(args.child[2]))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        zoo = Path(tmp) / "zoo"
        first = resnet18_bundle(zoo / "m00")
        for n in range(1, args.models):
            shutil.copytree(first, zoo / f"m{n:02d}")
        for limit in (args.max_loaded, args.models):
            out = subprocess.run([sys.executable, __file__, "--child", str(zoo), str(args.models), str(limit)],
                                 capture_output=True, text=True, check=True)
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{args.models} models, --max-loaded-models {limit}: cold {figures['cold_ms']:.0f} ms, warm "
                  f"{figures['warm_ms']:.0f} ms (medians); RSS {figures['rss_before_mb']:.0f} MB idle → "
                  f"{figures['rss_mb']:.0f} MB after all used, peak {figures['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
