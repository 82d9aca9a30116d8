"""Retake the labeling pages' pictures for the README (not part of the test run): a detection job on the first
images of ../shared/data/bees (its Ground Truth manifest as input, so its boxes arrive as pre-labels), a
segmentation job on ../shared/data/isbi2012-em with a few brush strokes, and the jobs list, at 1280×800 and 390 px.

Usage: python bench/labeling_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Make the jobs, serve the console, take the pictures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="oculi-labeling-shots-"))
    os.environ["OCULI_HOME"] = str(home)
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from oculi.labeling import jobs
    from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, start_console, stop_console, until
    from tests.helpers import SHARED_DATA

    bees = SHARED_DATA / "bees"
    lines = (bees / "train.manifest").read_text().splitlines()[:6]
    manifest = home / "bees.manifest"
    manifest.write_text("\n".join(lines) + "\n")
    (home / "images").symlink_to(bees / "images")
    jobs.create("bees-1", "detection", manifest, ["bee"], instructions="Draw a tight box around every bee.")
    em = home / "em"
    em.mkdir()
    for n in range(3):
        (em / f"{n}.png").symlink_to(SHARED_DATA / "isbi2012-em" / "image" / f"{n}.png")
    jobs.create("membranes-1", "segmentation", em, ["membrane"])
    jobs.create("shapes-1", "classification", em, ["blurry", "sharp"], multi_label=True)
    console = start_console(home)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for width, suffix in ((1280, ""), (390, "-phone")):
                page = browser.new_context(viewport={"width": width, "height": 800}).new_page()
                page.goto(f"{console.url}/labeling/bees-1/annotate")
                until(page, "document.getElementById('image').naturalWidth > 0")
                until(page, "document.querySelectorAll('#stage svg g[data-index]').length > 0")
                page.screenshot(path=str(args.out / f"labeling-boxes{suffix}.png"))
                page.goto(f"{console.url}/labeling/membranes-1/annotate")
                until(page, "document.getElementById('image').naturalWidth > 0")
                time.sleep(0.5)
                rect = page.locator("#image").bounding_box()
                page.keyboard.press("2")
                for y in (0.3, 0.5, 0.7):
                    page.mouse.move(rect["x"] + rect["width"] * 0.2, rect["y"] + rect["height"] * y)
                    page.mouse.down()
                    page.mouse.move(rect["x"] + rect["width"] * 0.8, rect["y"] + rect["height"] * (y + 0.1), steps=8)
                    page.mouse.up()
                until(page, "document.getElementById('save-state').textContent.includes('saved')")
                page.screenshot(path=str(args.out / f"labeling-mask{suffix}.png"))
                page.goto(f"{console.url}/labeling")
                page.screenshot(path=str(args.out / f"labeling-jobs{suffix}.png"), full_page=True)
            browser.close()
    finally:
        stop_console(console)
    print(json.dumps(sorted(str(p) for p in args.out.glob("labeling-*.png"))))


if __name__ == "__main__":
    main()
