"""Shared pieces of the serving benchmarks: a ResNet-18 classification bundle with random weights (built through
the algorithm contract, no download), a 224×224 JPEG, an `oculi serve` child process on a loopback port, and a
light keep-alive HTTP client (``http.client``: the client shares the CPU with the server, so it must be cheap)."""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from oculi.algorithms import get_algorithm
from oculi.artifacts import save_bundle

CLASSES = [f"class-{n}" for n in range(10)]


def resnet18_bundle(directory: Path) -> Path:
    """A 10-class ResNet-18 image-classification bundle at 3×224×224 (resize 256), random weights."""
    algo = get_algorithm("image-classification")
    hp = algo.hyperparameters.model_validate({
        "num_layers": "18", "image_shape": "3,224,224", "resize": "256", "num_classes": str(len(CLASSES)),
        "learning_rate": "0.1", "lr_scheduler": "cosine", "num_workers": "0", "precision_dtype": "float32"})
    torch.manual_seed(0)
    model = algo.build_model(hp, CLASSES, pretrained=False).eval()
    meta = {"algorithm": algo.name, "task": algo.task, "hyperparameters": hp.model_dump(mode="json"),
            "classes": CLASSES, "input": algo.input_spec(hp), "metrics": {}}
    return save_bundle(directory, meta, model)


def jpeg_224() -> bytes:
    """A 224×224 JPEG (smooth noise, quality 90)."""
    small = np.random.default_rng(1).integers(0, 255, (28, 28, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(small).resize((224, 224), Image.BILINEAR).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``oculi serve BUNDLE --port P …`` in a child process; waits for ``/ping``."""

    def __init__(self, bundle: Path, *options: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "oculi.cli", "serve", str(bundle), "--port",
                                      str(self.port), *options], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while True:
            try:
                status, _ = Client(self.port).request("GET", "/ping")
                if status == 200:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"oculi serve did not start: {self.proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)

    def rss_mb(self) -> float:
        """The server's resident memory in MiB (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_seconds(self) -> float:
        """Processor time the server has used so far, user + system, all threads (Linux /proc)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM (the server drains and exits)."""
        self.proc.terminate()
        self.proc.wait(60)


class Client:
    """One keep-alive HTTP/1.1 connection to the loopback server."""

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Send one request; returns ``(status, body)``. A connection the server closed while idle (its
        keep-alive timeout) is reopened once, as HTTP client libraries do."""
        try:
            return self._send(method, path, body, headers or {})
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.connection.close()
            return self._send(method, path, body, headers or {})

    def _send(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def invoke(self, body: bytes) -> int:
        """POST a JPEG to /invocations; returns the status."""
        return self.request("POST", "/invocations", body, {"Content-Type": "image/jpeg",
                                                            "Accept": "application/json"})[0]


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0–1) of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def throughput(port: int, body: bytes, concurrency: int, seconds: float) -> tuple[float, int]:
    """``(requests/s, non-200 answers)`` with ``concurrency`` clients sending back to back for ``seconds``."""
    counts = [0] * concurrency
    failures = [0] * concurrency
    start = threading.Barrier(concurrency + 1)
    stop = threading.Event()

    def client(index: int) -> None:
        connection = Client(port)
        connection.invoke(body)  # connect and warm up outside the timed window
        start.wait()
        while not stop.is_set():
            if connection.invoke(body) == 200:
                counts[index] += 1
            else:
                failures[index] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - began), sum(failures)
