"""What every oculi server shares, on real uvicorn servers: the access guard (foreign Host refused, cross-origin
state changes refused, legitimate clients — the SDK, curl-like clients, same-origin pages — accepted), one JSON
error shape for 404/405/400, offline /docs, and port errors before anything says "serving at"."""

from __future__ import annotations

import re
import socket
from html.parser import HTMLParser

import httpx
import pytest
from typer.testing import CliRunner

from oculi.cli import app as cli
from oculi.errors import ConfigError
from oculi.serving.control import create_app
from oculi.serving.guard import Access
from oculi.serving.sdk import EndpointPredictor
from oculi.serving.server import BackgroundServer
from tests.serving.conftest import start_server

WEIGHTS = {"DesiredWeightsAndCapacities": [{"VariantName": "AllTraffic", "DesiredWeight": 1}]}


@pytest.fixture(scope="module")
def endpoint_server(bundles):
    """An endpoint server (one classification endpoint ``cls``) that also answers to ``oculi.test``."""
    background = start_server(bundles, [{"name": "cls", "variants": [{"name": "AllTraffic",
                                                                     "model": "classification"}]}],
                              allowed_hosts=("oculi.test", ".corp.test"))
    yield background
    background.stop()


@pytest.fixture
def jobs_server():
    """The jobs control plane in this process (no dispatch loop) on a free loopback port."""
    app = create_app(dispatch_loop=False)
    background = BackgroundServer(app).start()
    yield background, app.state.oculi_access.secret
    background.stop()


def _error(response: httpx.Response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "message"}, body
    for fragment in fragments:
        assert fragment in body["message"], body["message"]
    return body


def test_foreign_host_is_refused_on_every_route(endpoint_server):
    url, port = endpoint_server.url, endpoint_server.port
    for method, path in (("GET", "/ping"), ("GET", "/api/endpoints"), ("POST", "/api/endpoints/cls/weights"),
                         ("GET", "/docs"), ("GET", "/openapi.json")):
        refused = httpx.request(method, f"{url}{path}", json=WEIGHTS, headers={"Host": f"attacker.example:{port}"})
        body = _error(refused, 421, "attacker.example", "--allowed-hosts")
        assert body["error"] == "MisdirectedRequest"
    # names this server is: localhost, loopback addresses, the configured names and their subdomains
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"oculi.test:{port}", f"gpu.corp.test:{port}",
                 "OCULI.TEST"):
        assert httpx.get(f"{url}/ping", headers={"Host": host}).status_code == 200, host
    for host in (f"oculi.test.attacker.example:{port}", f"corp.test.evil:{port}", f"10.1.2.3:{port}"):
        assert httpx.get(f"{url}/ping", headers={"Host": host}).status_code == 421, host


def test_cross_origin_state_changes_are_refused_and_legitimate_clients_work(endpoint_server):
    url, port = endpoint_server.url, endpoint_server.port
    weights = f"{url}/api/endpoints/cls/weights"
    for headers in ({"Origin": "http://attacker.example"}, {"Origin": f"http://localhost:{port + 1}"},
                    {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        _error(httpx.post(weights, json=WEIGHTS, headers=headers), 403, "cross-origin")
    # a page served by this very server (same origin), and clients that are not browsers (no Origin)
    assert httpx.post(weights, json=WEIGHTS, headers={"Origin": f"http://127.0.0.1:{port}"}).status_code == 200
    assert httpx.post(weights, json=WEIGHTS).status_code == 200
    predictor = EndpointPredictor("cls", url=url)
    assert predictor.update_weights({"AllTraffic": 2})["ProductionVariants"][0]["CurrentWeight"] == 2.0
    # reading is not a state change; the data plane is not the control plane
    assert httpx.get(f"{url}/api/endpoints/cls", headers={"Origin": "http://attacker.example"}).status_code == 200


def test_errors_have_one_json_shape(endpoint_server, jobs_server):
    for url in (endpoint_server.url, jobs_server[0].url):
        _error(httpx.get(f"{url}/no/such/route"), 404, "/no/such/route", "/docs")
        body = _error(httpx.delete(f"{url}/openapi.json"), 405, "DELETE", "GET")
        assert body["error"] == "MethodNotAllowed"
    _error(httpx.post(f"{endpoint_server.url}/api/endpoints/cls/weights", json={"Bogus": 1}), 400,
           "DesiredWeightsAndCapacities")
    _error(httpx.post(f"{jobs_server[0].url}/api/training-jobs", json={"Bogus": 1}), 400, "Bogus")
    _error(httpx.get(f"{jobs_server[0].url}/api/training-jobs", params={"limit": 0}), 400, "limit")
    _error(httpx.get(f"{jobs_server[0].url}/api/training-jobs/nope"), 404, "nope")


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for key, value in attrs if key in ("src", "href") and value]


@pytest.mark.parametrize("which", ["endpoint", "jobs"])
def test_docs_load_every_asset_from_the_server_itself(which, endpoint_server, jobs_server):
    url = endpoint_server.url if which == "endpoint" else jobs_server[0].url
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    parser = _Assets()
    parser.feed(page.text)
    scripted = re.findall(r"url: '([^']+)'", page.text)  # the schema the page loads
    assert len(parser.urls) >= 3 and scripted == ["/openapi.json"], (parser.urls, scripted)
    for asset in [*parser.urls, *scripted]:
        assert asset.startswith("/"), f"/docs loads {asset} from elsewhere"
        fetched = httpx.get(f"{url}{asset}")
        assert fetched.status_code == 200 and len(fetched.content) > 100, asset
    js = httpx.get(f"{url}{next(u for u in parser.urls if u.endswith('.js'))}")
    assert "SwaggerUIBundle" in js.text and "javascript" in js.headers["content-type"]


def test_script_mode_needs_the_token_even_on_loopback(jobs_server, tmp_path):
    background, secret = jobs_server
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text("print('hello')\n")
    body = {"TrainingJobName": "script-1", "EntryPoint": "train.py", "SourceDir": str(source)}
    _error(httpx.post(f"{background.url}/api/training-jobs", json=body), 401, "script-mode", "Bearer")
    _error(httpx.post(f"{background.url}/api/training-jobs", json=body, headers={"Authorization": "Bearer x"}),
           401)
    assert httpx.get(f"{background.url}/api/training-jobs").json()["TrainingJobSummaries"] == []
    created = httpx.post(f"{background.url}/api/training-jobs", json=body,
                         headers={"Authorization": f"Bearer {secret}"})
    assert created.status_code == 201, created.text
    assert [j["TrainingJobName"] for j in httpx.get(f"{background.url}/api/training-jobs").json()[
        "TrainingJobSummaries"]] == ["script-1"]


@pytest.mark.parametrize(("host", "authority", "allowed"), [
    ("127.0.0.1", "127.0.0.1:8080", True), ("127.0.0.1", "[::1]:8080", True), ("127.0.0.1", "localhost", True),
    ("127.0.0.1", "app.localhost:8080", True), ("127.0.0.1", "192.168.1.5:8080", False),
    ("127.0.0.1", "attacker.example:8080", False), ("127.0.0.1", "", False),
    ("0.0.0.0", "192.168.1.5:8080", True), ("0.0.0.0", "[fe80::1]:8080", True),
    ("0.0.0.0", f"{socket.gethostname()}:8080", True), ("0.0.0.0", "attacker.example:8080", False),
    ("10.0.0.5", "10.0.0.5:8080", True), ("10.0.0.6", "10.0.0.5:8080", False),
])
def test_which_host_names_a_server_answers_to(host, authority, allowed):
    assert Access(host=host).host_allowed(authority) is allowed
    assert Access(host=host, allowed_hosts=("*",)).host_allowed(authority) is bool(authority)


def test_bad_and_busy_ports_are_clear_errors_before_serving(bundles):
    runner = CliRunner()
    model = str(bundles["classification"])
    for port in ("99999", "-1"):
        result = runner.invoke(cli, ["serve", model, "--port", port])
        assert isinstance(result.exception, ConfigError), result.output
        assert f"port {port} is not a TCP port" in str(result.exception) and "--port 8080" in str(result.exception)
        assert "serving at" not in result.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(cli, ["serve", model, "--port", str(port)])
        assert isinstance(result.exception, ConfigError), result.output
        message = str(result.exception)
        assert f"port {port} on 127.0.0.1 is already in use" in message and f"--port {port + 1}" in message
        assert "serving at" not in result.output and "endpoint ants" not in result.output
        with pytest.raises(ConfigError, match=f"port={port + 1}, or port=None"):
            BackgroundServer(create_app(dispatch_loop=False), port=port)
    result = runner.invoke(cli, ["serve", model, "--host", "no-such-host.invalid"])
    assert isinstance(result.exception, ConfigError) and "no-such-host.invalid" in str(result.exception)
