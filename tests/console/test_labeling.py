"""The labeling pages in headless Chromium against a real ``oculi console``: three images labeled by keyboard, a box
drawn with the mouse and resized by its handle, a mask painted with the brush; after a reload everything is still
there (in the store, on disk and on the page); the output manifest is written from the job page and trains."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from oculi.jobs.store import JobStore
from oculi.labeling import jobs
from oculi.labeling.masks import load_values, mask_path
from tests.console.conftest import until
from tests.helpers import TINY, draw

CLASSES = ["circle", "square", "stripes"]


def _images(folder: Path, count: int, size: tuple[int, int]) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _wait_image(page) -> None:
    until(page, "document.getElementById('image').naturalWidth > 0 && !document.getElementById('stage').hidden",
          what="the image to load")


def _saved(page) -> None:
    until(page, "document.getElementById('save-state').textContent.includes('saved')", what="autosave")


def test_label_by_keyboard_box_and_brush_reload_export_train(console, home_env, page, tmp_path) -> None:
    import oculi

    p = page.page
    folder = tmp_path / "shapes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, kind in enumerate(["circle", "square", "stripes", "circle"]):
        draw(kind, 32, rng).save(folder / f"{i}-{kind}.png")
    jobs.create("shapes", "classification", folder, CLASSES)
    jobs.create("boxes", "detection", _images(tmp_path / "photos", 2, (400, 300)), ["bee", "wasp"])
    jobs.create("cells", "segmentation", _images(tmp_path / "em", 2, (200, 150)), ["cell"])
    store = JobStore()

    p.goto(f"{console.url}/labeling")
    assert p.locator("#labeling-jobs tbody tr").count() == 3
    p.fill("#lj-name", "from-form")  # the create form makes the same job `oculi label create` makes
    p.select_option("#lj-task", "detection")
    p.fill("#lj-input", str(tmp_path / "photos"))
    p.fill("#lj-classes", "bee, wasp")
    p.click("#create")
    p.wait_for_url(f"{console.url}/labeling/from-form")
    assert store.labeling_job("from-form")["spec"]["categories"] == ["bee", "wasp"]
    assert "2" in p.locator("#counters").inner_text()
    page.check("labeling list and form")

    # classification: keys 1–3 label three images, each key saves and moves on
    p.goto(f"{console.url}/labeling/shapes/annotate")
    pressed = {}
    for key in ("1", "2", "3"):
        _wait_image(p)
        shown = p.evaluate("document.getElementById('file').textContent")
        p.keyboard.press(key)
        until(p, f"document.getElementById('file').textContent !== {json.dumps(shown)}", what="the next image")
        pressed[shown.split(" ")[0]] = CLASSES[int(key) - 1]
    labeled = {Path(i["source"]["image"]).name: CLASSES[i["label"]["classes"][0]]
               for i in store.labeling_items("shapes", ("human",))}
    assert labeled == pressed
    p.reload()
    _wait_image(p)
    p.keyboard.press("ArrowLeft")  # back to the last image labeled before the reload
    until(p, "document.getElementById('file').textContent.includes('human')", what="the labeled image")
    shown = p.evaluate("document.getElementById('file').textContent").split(" ")[0]
    chosen = p.evaluate("[...document.querySelectorAll('#classes [aria-pressed=true]')].map(b => b.textContent)")
    assert len(chosen) == 1 and pressed[shown] in chosen[0]
    page.check("classification page")

    # boxes: drag to draw, then drag the south-east handle to resize; pixel coordinates of the 400×300 image
    p.goto(f"{console.url}/labeling/boxes/annotate")
    _wait_image(p)
    rect = p.locator("#image").bounding_box()
    scale = rect["width"] / 400
    at = lambda x, y: (rect["x"] + x * scale, rect["y"] + y * scale)  # noqa: E731 - image px → page px
    p.keyboard.press("2")
    p.mouse.move(*at(50, 40))
    p.mouse.down()
    p.mouse.move(*at(150, 120), steps=6)
    p.mouse.up()
    _saved(p)
    box_item = store.labeling_items("boxes", ("human",))[0]
    (x1, y1, x2, y2), = [b["box"] for b in box_item["label"]["boxes"]]
    assert abs(x1 - 50) < 2 and abs(y1 - 40) < 2 and abs(x2 - 150) < 2 and abs(y2 - 120) < 2
    assert box_item["label"]["boxes"][0]["label"] == 1 and box_item["label"]["width"] == 400
    p.evaluate("document.getElementById('save-state').textContent = ''")
    p.mouse.move(*at(150, 120))
    p.mouse.down()
    p.mouse.move(*at(250, 200), steps=6)
    p.mouse.up()
    _saved(p)
    (x1, y1, x2, y2), = [b["box"] for b in store.labeling_item("boxes", box_item["idx"])["label"]["boxes"]]
    assert abs(x1 - 50) < 2 and abs(y1 - 40) < 2 and abs(x2 - 250) < 2 and abs(y2 - 200) < 2
    p.reload()
    _wait_image(p)
    p.keyboard.press("ArrowLeft")
    until(p, "document.querySelectorAll('#stage svg g[data-index]').length === 1", what="the saved box")
    page.check("box page")

    # segmentation: the brush paints class "cell" (key 2; 1 is the background) into a full-size indexed PNG
    p.goto(f"{console.url}/labeling/cells/annotate")
    _wait_image(p)
    rect = p.locator("#image").bounding_box()
    scale = rect["width"] / 200
    p.keyboard.press("2")
    p.mouse.move(rect["x"] + 40 * scale, rect["y"] + 75 * scale)
    p.mouse.down()
    p.mouse.move(rect["x"] + 160 * scale, rect["y"] + 75 * scale, steps=12)
    p.mouse.up()
    _saved(p)
    mask_item = store.labeling_items("cells", ("human",))[0]
    job = store.labeling_job("cells")
    values = load_values(mask_path(jobs.output_dir(job), mask_item["idx"]))
    assert values.shape == (150, 200)
    assert set(np.unique(values)) == {0, 1}
    assert values[75, 100] == 1 and values[10, 10] == 0
    painted = int((values == 1).sum())
    p.reload()
    _wait_image(p)
    p.keyboard.press("ArrowLeft")
    until(p, "document.getElementById('file').textContent.includes('human')", what="the painted image")
    count = ("(() => { const c = document.querySelector('#stage canvas'); const d = c.getContext('2d')"
             ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) "
             "if (d[i]) n++; return n; })()")
    until(p, f"{count} > 0", what="the mask drawn again")
    assert p.evaluate(count) == painted
    page.check("mask page")

    # export from the job page; the manifest trains as it is
    p.goto(f"{console.url}/labeling/shapes")
    assert p.locator("#counters").inner_text().count("3") >= 2  # total and human labeled
    p.click("#export")
    p.wait_for_load_state()
    manifest = jobs.output_manifest(store.labeling_job("shapes"))
    lines = [json.loads(t) for t in manifest.read_text().splitlines()]
    assert sorted(x["shapes-metadata"]["class-name"] for x in lines) == sorted(pressed.values())
    page.check("job page")
    started = time.monotonic()
    result = oculi.train("image-classification", {"train": str(manifest)}, TINY,
                         output=tmp_path / "model", progress=False, echo=lambda *_: None)
    assert result.classes == CLASSES and time.monotonic() - started < 300
