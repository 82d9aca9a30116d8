"""Server time of the labeling queue (prints it; not part of the test run): a labeling job of ``--items`` images
(10,000) in a SQLite job store, the console served by uvicorn on loopback, ``--workers`` labelers (browser
cookies) taking turns: each asks for its next item (``GET /api/labeling/JOB/next``, the lease) and saves a label
(``POST /api/labeling/JOB/items/IDX``). p50 / p95 / max milliseconds of each call (request to last byte), and
a check that no item was handed to two labelers.

Usage: python bench/labeling_queue.py [--items 10000] [--labels 300] [--workers 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def _percentiles(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return f"p50 {statistics.median(values):6.1f} ms   p95 {p95:6.1f} ms   max {values[-1]:6.1f} ms"


def main() -> None:
    """Fill a job, serve the console, time lease + save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--labels", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="oculi-labeling-bench-"))
    os.environ["OCULI_HOME"] = str(home)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from PIL import Image

    from oculi.labeling import jobs
    from tests.helpers import free_port

    images = home / "images"
    images.mkdir()
    Image.new("RGB", (64, 48)).save(images / "0.png")
    manifest = home / "input.manifest"
    manifest.write_text("".join(f'{{"source-ref": "{images / "0.png"}", "n": {i}}}\n' for i in range(args.items)))
    started = time.perf_counter()
    jobs.create("bench", "classification", manifest, ["a", "b", "c"])
    print(f"created a job of {args.items:,} items in {time.perf_counter() - started:.1f} s")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from oculi.cli import main; main()", "console", "--port",
                             str(port)], env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/static/favicon.svg", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        clients = []
        for _ in range(args.workers):
            client = httpx.Client(base_url=url, headers={"origin": url}, timeout=30)
            client.get("/labeling/bench/annotate", headers={"accept": "text/html"})  # sets the labeler cookie
            clients.append(client)
        lease, save, handed = [], [], {}
        for n in range(args.labels):
            w = n % args.workers
            client = clients[w]
            t = time.perf_counter()
            item = client.get("/api/labeling/bench/next").json()["item"]
            lease.append((time.perf_counter() - t) * 1000)
            assert item["idx"] not in handed or handed[item["idx"]] == w, f"item {item['idx']} handed twice"
            handed[item["idx"]] = w
            t = time.perf_counter()
            response = client.post(f"/api/labeling/bench/items/{item['idx']}", json={"classes": [n % 3]})
            save.append((time.perf_counter() - t) * 1000)
            response.raise_for_status()
        print(f"next item (lease), {args.items:,} items, {args.workers} labelers: {_percentiles(lease)}")
        print(f"save a label:                                   {_percentiles(save)}")
        print(f"{len(handed)} items handed out, none to two labelers")
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    main()
