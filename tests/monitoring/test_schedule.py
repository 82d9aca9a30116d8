"""``oculi monitor schedule``: executions are recorded per window, a violation is POSTed to the alert URL (a real
HTTP server), the endpoint's Prometheus metrics show the latest drift scores."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from PIL import Image
from typer.testing import CliRunner

from oculi.cli import app
from oculi.monitoring.schedule import executions, schedule
from oculi.serving.metrics import ServingMetrics
from tests.monitoring.test_monitor import base, capture_images, jpeg_train, shapes  # noqa: F401 - fixtures


def test_a_schedule_runs_twice_records_both_alerts_and_exports_gauges(base, tmp_path):  # noqa: F811
    received: list[dict] = []

    class Alerts(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Alerts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dark = [Image.eval(img, lambda v: int(v * 0.3)) for img in shapes(30, seed=51)]
    capture = capture_images(tmp_path / "cap", dark, endpoint="shapes")
    try:
        ran = schedule("shapes-hourly", capture=capture, baseline=base, every="1h", output=tmp_path / "mon",
                       endpoint="shapes", alert_url=f"http://127.0.0.1:{server.server_port}/hook", max_executions=2,
                       sleep=lambda _s: None)
    finally:
        server.shutdown()
    assert [r["status"] for r in ran] == ["CompletedWithViolations", "Completed"]
    assert ran[0]["images"] == 30 and ran[1]["images"] == 0  # the second window starts where the first ended
    recorded = executions("shapes-hourly")
    assert len(recorded) == 2 and recorded[0]["info"]["violations"] == ran[0]["violations"] > 0
    assert len(received) == ran[0]["violations"] and received[0]["schedule"] == "shapes-hourly"
    assert {r["feature_name"] for r in received} >= {"brightness"}
    text = ServingMetrics().render().decode()
    assert 'oculi_monitoring_violations{endpoint="shapes",schedule="shapes-hourly"}' in text
    line = next(x for x in text.splitlines() if x.startswith("oculi_monitoring_drift_effect")
                and 'feature="brightness"' in x)
    assert float(line.split()[-1]) > 0.5

    # the CLI lists both executions; running the schedule again continues after the last window
    result = CliRunner().invoke(app, ["monitor", "executions", "shapes-hourly"])
    assert result.exit_code == 0 and result.output.count("Completed") == 2, result.output
    result = CliRunner().invoke(app, ["monitor", "schedule", "shapes-hourly", "--capture", str(capture),
                                      "--baseline", str(base), "--every", "1h", "--endpoint", "shapes",
                                      "--output", str(tmp_path / "mon"), "--executions", "1"])
    assert result.exit_code == 0, result.output
    assert len(executions("shapes-hourly")) == 3 and "0 images" in result.output


def test_a_detached_schedule_runs_in_the_background_until_stopped(base, tmp_path):  # noqa: F811
    import time

    import pytest

    from oculi.errors import ConfigError
    from oculi.monitoring.schedule import running, stop

    capture = capture_images(tmp_path / "cap", shapes(25, seed=3))
    runner = CliRunner()
    started = runner.invoke(app, ["monitor", "schedule", "bg", "--capture", str(capture), "--baseline", str(base),
                                  "--every", "2s", "--output", str(tmp_path / "mon"), "--detach"])
    assert started.exit_code == 0, started.output
    assert "runs in the background" in started.output
    try:
        deadline = time.monotonic() + 120  # a hang guard: the background process loads torch and the model
        while not executions("bg"):
            assert time.monotonic() < deadline, (tmp_path / "mon" / "bg" / "schedule.log").read_text()
            time.sleep(0.5)
        pid = running("bg")
        assert pid is not None
        listed = runner.invoke(app, ["monitor", "schedules"])
        assert "bg" in listed.output and f"process {pid}" in listed.output
        with pytest.raises(ConfigError, match="already runs"):  # one process per schedule
            schedule("bg", capture=capture, baseline=base, every="2s", output=tmp_path / "mon", max_executions=1)
        again = runner.invoke(app, ["monitor", "schedule", "bg", "--capture", str(capture), "--baseline", str(base),
                                    "--detach"])
        assert isinstance(again.exception, ConfigError) and "already runs" in str(again.exception)
        stopped = runner.invoke(app, ["monitor", "stop", "bg"])
        assert stopped.exit_code == 0 and "stopped" in stopped.output
        assert running("bg") is None
        assert "was not running" in runner.invoke(app, ["monitor", "stop", "bg"]).output
    finally:  # never leave the background process behind, whatever failed
        stop("bg")
    assert executions("bg")[0]["info"]["status"] in ("Completed", "CompletedWithViolations")
    unknown = runner.invoke(app, ["monitor", "stop", "nope"])
    assert isinstance(unknown.exception, ConfigError)
    assert "no monitoring schedule named 'nope'" in str(unknown.exception)
