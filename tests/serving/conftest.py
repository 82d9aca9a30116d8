"""Fixtures for the serving tests: tiny bundles of the three tasks (built once per session), one real uvicorn
server on a free loopback port hosting all the test endpoints, and request bodies (good images, a corrupt one, a
decompression bomb)."""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from oculi.serving.app import ServerSettings, create_serving_app
from oculi.serving.capture import DataCapture
from oculi.serving.config import parse_config
from oculi.serving.endpoints import load_endpoints
from oculi.serving.metrics import ServingMetrics
from oculi.serving.server import BackgroundServer
from tests.serving.bundles import tiny_bundle

MAX_BODY = 512 * 1024  # the test server's body limit (the default is SageMaker's 6 MB)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Untrained tiny bundles: ``classification`` (3 classes), ``classification-b`` (other weights),
    ``detection`` (2 classes), ``segmentation`` (3 classes)."""
    root = tmp_path_factory.mktemp("bundles")
    return {"classification": tiny_bundle(root / "ants", "image-classification"),
            "classification-b": tiny_bundle(root / "ants-b", "image-classification", seed=1),
            "detection": tiny_bundle(root / "bees", "object-detection"),
            "segmentation": tiny_bundle(root / "streets", "semantic-segmentation")}


# Endpoints of the shared test server. `cls` waits up to 250 ms for batch mates so the batching test is not at the
# mercy of thread scheduling; `split` has two variants 1:3; `unbatched` turns batching off; `tight` holds one
# request at a time, to overload on purpose.
ENDPOINTS = [
    {"name": "cls", "max_latency_ms": 250, "variants": [{"name": "AllTraffic", "model": "classification"}]},
    {"name": "det", "variants": [{"name": "AllTraffic", "model": "detection"}]},
    {"name": "seg", "variants": [{"name": "AllTraffic", "model": "segmentation"}]},
    {"name": "split", "variants": [{"name": "A", "model": "classification", "weight": 1},
                                   {"name": "B", "model": "classification-b", "weight": 3}]},
    {"name": "unbatched", "max_batch_size": 1, "variants": [{"name": "AllTraffic", "model": "classification"}]},
    {"name": "tight", "max_batch_size": 1, "max_queue_size": 1,
     "variants": [{"name": "AllTraffic", "model": "segmentation"}]},
]


@dataclass
class Server:
    """A running test server: base ``url`` and its ``capture`` folder."""

    url: str
    capture: Path
    background: BackgroundServer


def start_server(bundles: dict[str, Path], endpoints: list[dict], capture: Path | None = None,
                 token: str | None = None, max_body: int = MAX_BODY,
                 allowed_hosts: tuple[str, ...] = ()) -> BackgroundServer:
    """Load ``endpoints`` (``model`` values are keys of ``bundles``) and serve them on a free loopback port."""
    spec = [{**e, "variants": [{**v, "model": str(bundles[v["model"]])} for v in e["variants"]]}
            for e in endpoints]
    config = parse_config({"endpoints": spec}, "test", Path.cwd())
    metrics = ServingMetrics()
    loaded = load_endpoints(config, metrics, echo=lambda _line: None)
    settings = ServerSettings(max_body_bytes=max_body, token=token, allowed_hosts=allowed_hosts,
                              capture=DataCapture(capture, 100.0) if capture else None)
    return BackgroundServer(create_serving_app(loaded, metrics, settings)).start()


@pytest.fixture(scope="session")
def server(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Server:
    """The shared test server (every invocation captured)."""
    capture = tmp_path_factory.mktemp("capture")
    background = start_server(bundles, ENDPOINTS, capture)
    yield Server(background.url, capture, background)
    background.stop()


def encoded(width: int = 80, height: int = 60, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A ``width × height`` RGB image encoded as ``fmt``: noise, smoothed when large (so it stays small)."""
    side = min(width, height, 64)
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize((width, height), Image.BILINEAR).save(buffer, format=fmt)
    return buffer.getvalue()


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A few hundred bytes of PNG whose header claims ``width × height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
            + chunk(b"IEND", b""))


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text ``text`` (0 when absent)."""
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] == name and all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0
