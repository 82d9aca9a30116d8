"""The endpoints page in headless Chromium: an ``oculi serve`` endpoint server (a real uvicorn server serving a tiny
detection bundle) registered by URL shows its variant, weight and request counts, and the try-it box draws the
boxes of the answer to a dropped image beside the raw SageMaker JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from oculi.serving.server import BackgroundServer, ServeOptions, build_app, endpoint_config
from tests.console.conftest import until
from tests.serving.bundles import tiny_bundle

pytestmark = pytest.mark.usefixtures("browser")


@pytest.fixture(scope="module")
def detection_server(tmp_path_factory):
    bundle = tiny_bundle(tmp_path_factory.mktemp("ssd") / "shapes", "object-detection")
    server = BackgroundServer(build_app(endpoint_config([bundle], None), ServeOptions(),
                                       echo=lambda _line: None)).start()
    yield server
    server.stop()


def test_try_it_on_a_served_detection_model_draws_boxes(console, page, detection_server, tmp_path):
    p = page.page
    p.goto(f"{console.url}/endpoints")
    p.fill("#ep-name", "local")
    p.fill("#ep-url", detection_server.url)
    p.click("form[action='/endpoints'] button[type=submit]")
    p.wait_for_url("**/endpoints")
    assert "shapes" in p.inner_text("section.card h3")
    assert p.locator("section.card table tbody tr, section.card table tr:has(td)").first.inner_text().startswith(
        "AllTraffic")

    image = tmp_path / "shapes.jpg"
    pixels = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    pixels[20:60, 30:90] = (220, 40, 40)
    Image.fromarray(pixels).save(image)
    p.set_input_files(".tryit-file", str(image))
    until(p, "document.querySelector('.tryit').classList.contains('answered')", timeout=60,
          what=f"the drawn answer ({page.problems}, {p.inner_text('.tryit')!r})")
    answer = json.loads(p.inner_text(".tryit-json"))
    assert set(answer) == {"prediction"}  # SageMaker's detection response, unchanged
    assert answer["prediction"] and len(answer["prediction"][0]) == 6
    p.fill(".tryit-min", "0")  # draw every box the (untrained) model answered, whatever its score
    p.dispatch_event(".tryit-min", "input")
    rows = len(answer["prediction"])
    until(p, f"document.querySelectorAll('.tryit-stage svg.overlay rect').length === {rows}", timeout=30,
          what=f"{rows} boxes drawn")
    assert p.locator(".tryit-stage svg.overlay text").first.text_content().split()[0] in ("box", "disc")
    p.screenshot(path=str(tmp_path / "console-endpoints-tryit.png"), full_page=True)
    page.check("the try-it box")

    # the invocation shows in the variant's request count
    p.goto(f"{console.url}/endpoints")
    assert p.locator("section.card table tr:has(td) td").nth(3).inner_text() == "1"
    # weights are editable: the endpoint server applies them
    p.fill("input[name='weight.AllTraffic']", "2.5")
    p.click(".weights-save")
    p.wait_for_url("**/endpoints")
    assert p.input_value("input[name='weight.AllTraffic']") == "2.5"
    page.check("the endpoints page")


def test_an_unreachable_endpoint_server_is_refused_with_the_reason(console, page):
    p = page.page
    p.goto(f"{console.url}/endpoints")
    p.fill("#ep-name", "nowhere")
    p.fill("#ep-url", "http://127.0.0.1:9")
    p.click("form[action='/endpoints'] button[type=submit]")
    assert "cannot reach an oculi serve at http://127.0.0.1:9" in p.inner_text("[role=alert]")
    page.problems.clear()  # the refused registration answered 400, on purpose
    p.fill("#ep-url", "ftp://example")
    p.click("form[action='/endpoints'] button[type=submit]")
    assert "is not an http(s) address" in p.inner_text("[role=alert]")
