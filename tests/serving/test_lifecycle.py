"""Start and stop: `oculi serve` in a real subprocess drains in-flight requests on SIGTERM and exits 0; the
endpoint configuration's errors name the key and the fix; the SDK deploys a bundle, predicts and stops it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from typer.testing import CliRunner

from oculi.cli import app
from oculi.errors import ConfigError
from oculi.serving.config import Batching, config_from_models, load_config, parse_config
from oculi.serving.sdk import EndpointError, EndpointPredictor
from tests.helpers import free_port
from tests.serving.conftest import encoded, metric


def test_sigterm_finishes_requests_in_flight_then_exits(bundles, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "oculi.cli", "serve", str(bundles["segmentation"]), "--port",
                             str(port), "--max-batch-size", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(proc.stdout.read().decode())
            time.sleep(0.2)
        big = encoded(1600, 1200, seed=21)
        statuses: list[int] = []

        def send() -> None:
            response = httpx.post(f"{base}/invocations", content=big, timeout=120,
                                  headers={"Content-Type": "image/jpeg", "Accept": "image/png"})
            statuses.append(response.status_code)

        senders = [threading.Thread(target=send) for _ in range(4)]
        for sender in senders:
            sender.start()
        while metric(httpx.get(f"{base}/metrics").text, "oculi_in_flight_requests") < 4:
            assert all(s.is_alive() for s in senders), "requests finished before SIGTERM; use larger images"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        for sender in senders:
            sender.join(120)
        assert proc.wait(60) == 0
        assert statuses == [200] * 4
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/ping", timeout=2)
        output = proc.stdout.read().decode()
        assert "serving at http://127.0.0.1" in output and "Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()


def test_config_file_with_variants_and_sagemaker_names(bundles, tmp_path):
    path = tmp_path / "endpoint.yaml"
    path.write_text(f"""
max_batch_size: 4
endpoints:
  - name: ants
    max_latency_ms: 2
    variants:
      - {{name: r18, model: {bundles['classification']}, weight: 3, max_batch_size: 16}}
      - {{name: lite, model: {bundles['classification-b'].name}}}
  - EndpointName: bees
    ProductionVariants:
      - {{VariantName: main, ModelName: {bundles['detection']}, InitialVariantWeight: 0.5}}
""")
    (tmp_path / bundles["classification-b"].name).symlink_to(bundles["classification-b"])  # relative to the file
    config = load_config(path)
    assert [e.name for e in config.endpoints] == ["ants", "bees"]
    assert config.endpoints[0].variants[1].model == tmp_path / bundles["classification-b"].name
    resolved = config.resolved(Batching(max_batch_size=2, max_queue_size=7))
    assert resolved["ants"]["r18"] == Batching(max_batch_size=16, max_latency_ms=2, max_queue_size=7)
    assert resolved["ants"]["lite"] == Batching(max_batch_size=4, max_latency_ms=2, max_queue_size=7)
    assert resolved["bees"]["main"] == Batching(max_batch_size=4, max_latency_ms=5, max_queue_size=7)
    assert config.endpoints[1].variants[0].weight == 0.5


@pytest.mark.parametrize(("content", "fragments"), [
    ({"endpoints": [{"name": "a", "variants": [{"name": "v", "model": "m", "wieght": 2}]}]},
     ["endpoints[0].variants[0].wieght: unknown key", "weight"]),
    ({"endpoints": [{"name": "a", "variants": [{"name": "v"}]}]}, ["endpoints[0].variants[0].model: required"]),
    ({"endpoints": [{"name": "a", "variants": [{"name": "v", "model": "m", "weight": -1}]}]},
     ["endpoints[0].variants[0].weight", "greater than or equal to 0"]),
    ({"endpoints": [{"name": "a", "variants": [{"name": "v", "model": "m", "weight": 0}]}]},
     ["every variant of endpoint 'a' has weight 0", "weight > 0"]),
    ({"endpoints": [{"name": "a", "variants": [{"name": "v", "model": "m"}, {"name": "v", "model": "m"}]}]},
     ["variant name 'v' is used twice"]),
    ({"endpoints": [{"name": "my_endpoint", "variants": [{"name": "v", "model": "m"}]}]},
     ["endpoints[0].name", "letters, digits and hyphens"]),
    ({"endpoints": [{"name": "a", "max_batch_size": 0, "variants": [{"name": "v", "model": "m"}]}]},
     ["endpoints[0].max_batch_size", "greater than or equal to 1"]),
    ({"endpoints": []}, ["endpoints", "at least 1"]),
    ({"endpoints": [{"name": "a", "variants": [{"name": "v", "model": "missing-model"}]}]},
     ["endpoints[0].variants[0].model", "missing-model does not exist", "relative paths are taken from"]),
])
def test_config_errors_name_the_key_and_the_fix(tmp_path, content, fragments):
    (tmp_path / "m").mkdir()
    with pytest.raises(ConfigError) as raised:
        parse_config(content, "endpoint.yaml", tmp_path)
    for fragment in fragments:
        assert fragment in str(raised.value), str(raised.value)


def test_serve_cli_errors_and_help(bundles, tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("endpoints:\n  - name: a\n    variants: [{name: v, model: x, weight: two}]\n")
    result = runner.invoke(app, ["serve", "--config", str(bad)])
    assert isinstance(result.exception, ConfigError) and "weight" in str(result.exception)
    both = runner.invoke(app, ["serve", str(bundles["classification"]), "--config", str(bad)])
    assert "either model paths or --config" in str(both.exception)
    nothing = runner.invoke(app, ["serve"])
    assert "nothing to serve" in str(nothing.exception)
    runtime = runner.invoke(app, ["serve", str(bundles["classification"]), "--runtime", "tensorrt"])
    assert "torch, onnx, openvino" in str(runtime.exception)
    twice = runner.invoke(app, ["serve", str(bundles["classification"]), str(bundles["classification"])])
    assert "both be served as endpoint 'ants'" in str(twice.exception)
    shown = runner.invoke(app, ["serve", "--help"], terminal_width=200)
    assert shown.exit_code == 0 and "oculi serve models/ants --port 8080" in shown.output
    assert config_from_models([bundles["classification"]]).endpoints[0].name == "ants"


def test_sdk_deploys_predicts_and_deletes(bundles, tmp_path):
    from oculi import Model  # the SDK's names are exported at the top level
    from oculi.tasks import load_predictor

    image = tmp_path / "photo.png"
    image.write_bytes(encoded(50, 40, "PNG", seed=22))
    local = load_predictor(bundles["classification"]).predict(image)
    with Model(bundles["classification"]).deploy(max_batch_size=4) as predictor:
        assert predictor.endpoint_name == "ants" and predictor.url.startswith("http://127.0.0.1:")
        answer = predictor.predict(image)
        assert max(abs(a - b) for a, b in zip(answer["prediction"], local.probabilities, strict=True)) < 1e-5
        assert predictor.last_variant == "AllTraffic"
        verbose = predictor.predict(image.read_bytes(), accept="application/json;verbose")
        assert verbose["predicted_label"] == local.predicted_label
        described = predictor.describe()["ProductionVariants"][0]
        assert described["Invocations"] == 2 and described["Batching"]["max_batch_size"] == 4
        with pytest.raises(EndpointError, match="406.*supported"):
            predictor.predict(image, accept="image/png")
        other = EndpointPredictor("ants", url=predictor.url)
        assert other.predict(image) == answer
        with pytest.raises(Exception, match="did not start the server"):
            other.delete_endpoint()
        url = predictor.url
    with pytest.raises(EndpointError, match="cannot reach"):
        EndpointPredictor("ants", url=url, timeout=5).predict(image)
    segmenter = Model(bundles["segmentation"]).deploy(endpoint_name="streets")
    try:
        mask = segmenter.predict(image, accept="image/png")
        assert mask.startswith(b"\x89PNG")
        assert segmenter.predict(image, accept="application/json")["width"] == 50
    finally:
        segmenter.delete_endpoint()
