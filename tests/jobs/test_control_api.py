"""The control-plane REST API on a real uvicorn server (a child process on a free loopback port), with and
without a token."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.helpers import TINY
from tests.jobs.conftest import until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(oculi_home, request):
    """Start ``oculi jobs serve`` (token from the test's parameter, if any); yields (base URL, headers)."""
    token = getattr(request, "param", None)
    port = _free_port()
    env = {**os.environ, "OCULI_HOME": str(oculi_home)}
    env.pop("OCULI_TOKEN", None)
    if token:
        env["OCULI_TOKEN"] = token
    proc = subprocess.Popen([sys.executable, "-c", "from oculi.cli import main; main()", "jobs", "serve", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        deadline = time.monotonic() + 180  # a loaded 2-core machine takes a while to import the server
        while True:
            try:
                httpx.get(f"{base}/openapi.json", headers=headers, timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.terminate()  # reading a live server's output would wait for ever
                    raise AssertionError(proc.communicate(timeout=30)[0].decode()) from None
                time.sleep(0.2)
        yield base, headers
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_create_list_describe_metrics_logs_stop(server, mini_data):
    base, _ = server
    schema = httpx.get(f"{base}/openapi.json").json()
    assert "/api/training-jobs" in schema["paths"] and "/api/training-jobs/{name}/stop" in schema["paths"]
    body = {"TrainingJobName": "api-job-1", "AlgorithmName": "image-classification",
            "HyperParameters": TINY,
            "InputDataConfig": {k: str(v) for k, v in mini_data.items()}}
    created = httpx.post(f"{base}/api/training-jobs", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["TrainingJobName"] == "api-job-1"
    again = httpx.post(f"{base}/api/training-jobs", json=body)
    assert again.status_code == 409 and "already exists" in again.json()["message"]
    bad = httpx.post(f"{base}/api/training-jobs", json={**body, "Bogus": 1})
    assert bad.status_code == 422

    def finished():
        d = httpx.get(f"{base}/api/training-jobs/api-job-1").json()
        return d if d["TrainingJobStatus"] in ("Completed", "Failed", "Stopped") else None

    described = until(finished, timeout=120, poll=0.5, what="job end")
    assert described["TrainingJobStatus"] == "Completed", described.get("FailureReason")
    assert described["SecondaryStatusTransitions"][0]["Status"] == "Pending"
    assert described["HyperParameters"]["num_classes"] == "3"
    assert {m["MetricName"] for m in described["FinalMetricDataList"]} >= {"validation:accuracy"}
    listed = httpx.get(f"{base}/api/training-jobs", params={"status": "Completed"}).json()
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == ["api-job-1"]
    metrics = httpx.get(f"{base}/api/training-jobs/api-job-1/metrics").json()
    assert metrics["Epochs"][0]["epoch"] == 1 and "validation:accuracy" in metrics["MetricNames"]
    logs = httpx.get(f"{base}/api/training-jobs/api-job-1/logs")
    assert "completed" in logs.text and int(logs.headers["X-Next-Offset"]) == len(logs.content)
    stop = httpx.post(f"{base}/api/training-jobs/api-job-1/stop")
    assert stop.status_code == 409 and "already ended" in stop.json()["message"]
    assert httpx.get(f"{base}/api/training-jobs/nope").status_code == 404


@pytest.mark.parametrize("server", ["s3cret-token"], indirect=True)
def test_every_request_needs_the_token_when_one_is_set(server):
    base, headers = server
    for path in ("/openapi.json", "/api/training-jobs", "/docs"):
        assert httpx.get(f"{base}{path}").status_code == 401, path
        assert httpx.get(f"{base}{path}", headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert httpx.get(f"{base}{path}", headers=headers).status_code == 200, path
    assert httpx.post(f"{base}/api/training-jobs/x/stop").status_code == 401


def test_refuses_a_public_address_without_a_token(oculi_home):
    env = {k: v for k, v in os.environ.items() if k != "OCULI_TOKEN"}
    result = subprocess.run([sys.executable, "-c", "from oculi.cli import main; main()", "jobs", "serve", "--host",
                             "0.0.0.0", "--port", str(_free_port())], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "without a token" in result.stderr and "OCULI_TOKEN" in result.stderr and "Traceback" not in result.stderr
