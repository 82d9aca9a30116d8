"""`oculi data check` on detection data: each finding names the file; negatives are kept and counted."""

from __future__ import annotations

import json
import subprocess
import sys

from oculi.data.checks import check_path
from tests.data.conftest import make_image


def _coco_with_problems(root):
    """A COCO file whose annotations hold each detection problem once."""
    for name in ("ok", "outside", "negative"):
        make_image(root / "images" / f"{name}.png", size=(40, 30))
    (root / "images" / "broken.png").write_bytes(b"not a png")
    data = {
        "images": [{"id": i, "file_name": f"{n}.png", "width": 40, "height": 30}
                   for i, n in enumerate(("ok", "outside", "negative", "missing", "broken"), 1)],
        "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "unused"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 10]},
            {"id": 2, "image_id": 2, "category_id": 2, "bbox": [30, 20, 20, 20]},   # outside → clipped
            {"id": 3, "image_id": 1, "category_id": 2, "bbox": [5, 5, 0, 7]},      # zero width → dropped
            {"id": 4, "image_id": 1, "category_id": 9, "bbox": [1, 1, 5, 5]},      # class id not in the list
            {"id": 5, "image_id": 4, "category_id": 1, "bbox": [1, 1, 5, 5]},      # image file missing
            {"id": 6, "image_id": 5, "category_id": 1, "bbox": [1, 1, 5, 5]},      # image unreadable
        ],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data))
    return path


def test_detection_check_reports_each_problem_with_its_file(tmp_path):
    path = _coco_with_problems(tmp_path)
    report = check_path(path)
    codes = {f.code: f for f in report.findings}
    assert report.task == "detection" and not report.ok
    assert "box_clipped" in codes and "outside" in codes["box_clipped"].location() + codes["box_clipped"].message
    assert codes["empty_box"].level == "warning"
    assert codes["undeclared_class"].level == "warning" and "9" in codes["undeclared_class"].message
    assert any(f.code == "missing_image" and "missing.png" in f.location() + f.message for f in report.findings)
    assert any(f.level == "error" and "broken.png" in f.location() for f in report.findings)
    assert codes["empty_class"].level == "warning" and "unused" in codes["empty_class"].message
    assert any(f.code.startswith("negative") for f in report.findings)
    assert report.counts["train"]["cat"] >= 1


def test_detection_check_cli_exit_codes(tmp_path):
    bad = _coco_with_problems(tmp_path / "bad")
    run = [sys.executable, "-c", "from oculi.cli import main; main()", "data", "check"]
    result = subprocess.run([*run, str(bad)], capture_output=True, text=True)
    assert result.returncode == 1 and "Boxes per class" in result.stdout
    good = tmp_path / "good"
    make_image(good / "images" / "a.png", size=(40, 30))
    (good / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 10]}]}))
    assert subprocess.run([*run, str(good / "annotations.json")], capture_output=True).returncode == 0


def test_bees_manifest_checks_clean(shared_data):
    report = check_path(shared_data / "bees" / "train.manifest")
    assert report.ok and report.num_images["train"] == 400 and report.counts["train"] == {"bee": 843}
