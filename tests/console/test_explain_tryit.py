"""The try-it box of the endpoints page shows the endpoint's heat maps (``/endpoints/NAME/explain``) under its
answer, in headless Chromium, against a real ``oculi serve`` server."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from oculi.serving.server import BackgroundServer, ServeOptions, build_app, endpoint_config
from tests.console.conftest import until
from tests.serving.bundles import tiny_bundle

pytestmark = pytest.mark.usefixtures("browser")


@pytest.fixture(scope="module")
def segmentation_server(tmp_path_factory):
    bundle = tiny_bundle(tmp_path_factory.mktemp("seg") / "streets", "semantic-segmentation")
    server = BackgroundServer(build_app(endpoint_config([bundle], None), ServeOptions(),
                                       echo=lambda _line: None)).start()
    yield server
    server.stop()


def test_try_it_shows_the_heat_maps(console, page, segmentation_server, tmp_path):
    p = page.page
    p.goto(f"{console.url}/endpoints")
    p.fill("#ep-name", "maps")
    p.fill("#ep-url", segmentation_server.url)
    p.click("form[action='/endpoints'] button[type=submit]")
    p.wait_for_url("**/endpoints")
    image = tmp_path / "street.png"
    pixels = np.random.default_rng(0).integers(0, 80, (48, 64, 3), dtype=np.uint8)
    pixels[10:40, 8:30] = (220, 40, 40)
    Image.fromarray(pixels).save(image)
    p.set_input_files(".tryit-file", str(image))
    p.click(".tryit-explain-button")
    until(p, "document.querySelectorAll('.tryit-explain figure img').length > 0", timeout=120,
          what=f"the heat maps ({page.problems}, {p.inner_text('.tryit')!r})")
    caption = p.locator(".tryit-explain figcaption").first.inner_text()
    assert "faithfulness" in caption
    width = p.evaluate("document.querySelector('.tryit-explain img').naturalWidth")
    assert width == 64  # the overlay covers the uploaded image
    p.locator(".tryit-explain").screenshot(path=str(tmp_path / "tryit-explain.png"))
    p.set_viewport_size({"width": 390, "height": 800})
    p.locator(".tryit-explain").screenshot(path=str(tmp_path / "tryit-explain-390.png"))
    page.check("the try-it heat maps")
