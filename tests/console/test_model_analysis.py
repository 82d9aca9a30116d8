"""The model page shows the thresholds and calibration stored in model.json and the error analysis of the
evaluation reports beside the bundle (TIDE table, error galleries; boundary F1 and worst-image error maps), in
headless Chromium at desktop and phone width with no console error or failed request. Screenshots go to the
test's temp folder."""

from __future__ import annotations

import pytest

from oculi.artifacts import update_meta
from oculi.inference.calibration import Calibration
from oculi.jobs.store import JobStore
from oculi.tasks import evaluate
from tests.serving.bundles import tiny_bundle

pytestmark = pytest.mark.usefixtures("browser")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    """A calibrated tiny detection bundle with an evaluation report beside it, and a tiny segmentation bundle
    with its report."""
    from tests.segmentation.helpers import write_layout
    from tests.test_detection_training import _shapes_coco

    root = tmp_path_factory.mktemp("analysed")
    det = tiny_bundle(root / "det" / "model", "object-detection")
    evaluate(det, _shapes_coco(root / "shapes", 4, 3), output=root / "det" / "evaluation", progress=False)
    update_meta(det, {"calibration": Calibration("precision=0.95", 1.37, {"box": 0.61, "disc": 0.72},
                                                 data={"source": "shapes/val", "fingerprint": "ab" * 8,
                                                       "num_images": 4},
                                                 ece={"before": 0.21, "after": 0.04}).to_meta()})
    seg = tiny_bundle(root / "seg" / "model", "semantic-segmentation")
    layout = write_layout(root / "seg-data", "validation", 3, seed=2)
    (layout / "train").mkdir()
    evaluate(seg, layout, output=root / "seg" / "evaluation", progress=False)
    return {"det": det, "seg": seg}


def test_model_page_shows_thresholds_and_error_analysis(console, page, home_env, analysed, tmp_path):
    store = JobStore()
    store.register("model", "bees-calibrated", str(analysed["det"]), {"algorithm": "object-detection"})
    store.register("model", "membranes", str(analysed["seg"]), {"algorithm": "semantic-segmentation"})
    p = page.page
    p.goto(f"{console.url}/models/bees-calibrated")
    text = p.inner_text("#calibration")
    assert "precision=0.95" in text and "1.370" in text and "0.2100 → 0.0400" in text and "abababababababab" in text
    assert p.locator("table.thresholds tr").count() == 3  # header + box + disc
    assert p.locator("table.tide tr").count() == 7  # header + six error types
    galleries = p.locator(".error-analysis .figures img")
    assert galleries.count() >= 1
    p.wait_for_load_state("networkidle")
    assert all(p.evaluate("[...document.querySelectorAll('.error-analysis img')].map(i => i.naturalWidth > 0)"))
    p.screenshot(path=str(tmp_path / "model-analysis-detection.png"), full_page=True)
    page.check("detection model page")

    p.goto(f"{console.url}/models/membranes")
    assert "No thresholds stored" in p.inner_text("#calibration")
    assert p.locator("table.boundary tr").count() == 4  # header + three classes
    maps = p.locator(".error-analysis .figures img")
    assert maps.count() == 3
    p.wait_for_load_state("networkidle")
    p.screenshot(path=str(tmp_path / "model-analysis-segmentation.png"), full_page=True)
    page.check("segmentation model page")

    p.set_viewport_size({"width": 390, "height": 844})
    for name in ("bees-calibrated", "membranes"):
        p.goto(f"{console.url}/models/{name}")
        p.wait_for_load_state("networkidle")
        overflow = p.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"/models/{name} is {overflow} px wider than a 390-px phone"
        p.screenshot(path=str(tmp_path / f"model-analysis-{name}-phone.png"), full_page=True)
        page.check(f"/models/{name} at 390 px")
