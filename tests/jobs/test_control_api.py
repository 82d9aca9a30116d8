"""The control-plane REST API on a real uvicorn server (a child process on a free loopback port), with and
without a token: DNS rebinding and cross-origin requests are refused, a script-mode job needs the per-process
token, and port errors come before "serving at"."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import TINY, free_port
from tests.jobs.conftest import until


@dataclass
class Served:
    """A running ``oculi jobs serve``: base ``url``, ``port``, auth ``headers``, the process."""

    url: str
    port: int
    headers: dict[str, str]
    proc: subprocess.Popen

    def __iter__(self):  # (url, headers), as the older tests unpack it
        return iter((self.url, self.headers))


@pytest.fixture
def server(oculi_home, request):
    """Start ``oculi jobs serve`` (token from the test's parameter, if any); yields a :class:`Served`."""
    token = getattr(request, "param", None)
    port = free_port()
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
        yield Served(base, port, headers, proc)
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
    assert bad.status_code == 400 and "Bogus" in bad.json()["message"]

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
                             "0.0.0.0", "--port", str(free_port())], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    assert "without a token" in result.stderr and "OCULI_TOKEN" in result.stderr and "Traceback" not in result.stderr


def _script(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A script-mode CreateTrainingJob body whose script writes a marker file (proof that it ran)."""
    source = tmp_path / "src"
    source.mkdir()
    marker = tmp_path / "ran.txt"
    (source / "train.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    return {"TrainingJobName": "script-job", "EntryPoint": "train.py", "SourceDir": str(source)}, marker


def _jobs(server: Served) -> list[str]:
    listed = httpx.get(f"{server.url}/api/training-jobs").json()["TrainingJobSummaries"]
    return [j["TrainingJobName"] for j in listed]


def test_dns_rebinding_and_cross_origin_requests_run_nothing(server, tmp_path, mini_data):
    body, marker = _script(tmp_path)
    url = f"{server.url}/api/training-jobs"
    # a web page on attacker.example whose name now resolves to 127.0.0.1: the browser sends its own Host
    rebound = httpx.post(url, json=body, headers={"Host": f"attacker.example:{server.port}"})
    assert rebound.status_code == 421 and "attacker.example" in rebound.json()["message"], rebound.text
    builtin = {"TrainingJobName": "builtin-job", "AlgorithmName": "image-classification", "HyperParameters": TINY,
               "InputDataConfig": {k: str(v) for k, v in mini_data.items()}}
    for headers in ({"Host": f"attacker.example:{server.port}"}, {"Origin": "http://attacker.example"},
                    {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = httpx.post(url, json=builtin, headers=headers)
        assert refused.status_code in (403, 421) and set(refused.json()) == {"error", "message"}, refused.text
        stop = httpx.post(f"{url}/any-job/stop", headers=headers)
        assert stop.status_code in (403, 421), stop.text
    # no token: a script job is refused even from this machine, without an Origin
    unauthorised = httpx.post(url, json=body)
    assert unauthorised.status_code == 401 and "token" in unauthorised.json()["message"]
    time.sleep(3)  # longer than the server's dispatch round: a job that slipped through would have started
    assert _jobs(server) == [] and not marker.exists()
    assert httpx.get(url, headers={"Host": f"attacker.example:{server.port}"}).status_code == 421


def test_script_job_with_the_per_process_token(server, tmp_path, oculi_home):
    token_file = oculi_home / "servers" / f"{server.port}.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
    body, marker = _script(tmp_path)
    token = token_file.read_text().strip()
    created = httpx.post(f"{server.url}/api/training-jobs", json=body, headers={"Authorization": f"Bearer {token}"})
    assert created.status_code == 201, created.text
    until(marker.exists, timeout=120, poll=0.2, what="the script to run")
    # a same-origin page (or any client) may read and stop without the token
    assert _jobs(server) == ["script-job"]
    same = httpx.post(f"{server.url}/api/training-jobs/nope/stop", headers={"Origin": server.url})
    assert same.status_code == 404 and "nope" in same.json()["message"]
    server.proc.terminate()
    server.proc.wait(timeout=30)
    output = server.proc.stdout.read().decode()
    assert output.index(str(token_file)) < output.index(f"serving at http://127.0.0.1:{server.port}"), output
    assert not token_file.exists(), "the token file outlived its server"


def test_busy_and_bad_ports_are_named_before_serving(oculi_home):
    env = {k: v for k, v in os.environ.items() if k != "OCULI_TOKEN"}
    command = [sys.executable, "-c", "from oculi.cli import main; main()", "jobs", "serve", "--port"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*command, str(port)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr and f"--port {port + 1}" in result.stderr
    assert "serving at" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([*command, "99999"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "port 99999 is not a TCP port" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
