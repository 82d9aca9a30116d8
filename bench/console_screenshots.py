"""Screenshots of every console page for the README (``docs/console-*.png``, 1280×800; one at phone width, one in
the dark theme), taken in headless Chromium from a console over real records: tiny generated data registered as
datasets, a classification job and a detection job trained through the job runner (with an evaluation report),
a stopped job, a few dozen recorded ones, and the detection model served by ``oculi serve`` — started from the
Endpoints page's form, stopped at the end — for the try-it box.
Prints the files it wrote. Takes a few minutes on 2 cores.

``--phone DIR`` also writes every page at phone width (390 px, whole page) to DIR, for checking by eye.

``--records DIR`` keeps the data, jobs and store in DIR; a rerun reuses the jobs trained there (only the pages are
taken again).

Usage: python bench/console_screenshots.py [--out docs] [--phone DIR] [--records DIR]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def records(root: Path) -> dict[str, Path]:
    """Generate the data, run the jobs, write the evaluation report; returns the paths the pages need. Jobs already
    completed in ``root`` (a rerun with ``--records``) are kept."""
    from oculi.data import synthetic
    from oculi.jobs import runner
    from oculi.jobs.store import JobStore
    from oculi.tasks import evaluate

    store = JobStore()
    classification = synthetic.write_classification_data(root / "shapes-classes", per_class=24, size=48)
    detection = synthetic.write_detection_data(root / "shapes-boxes", count=16)
    synthetic.write_segmentation_data(root / "shapes-masks", count=12, size=(96, 72))
    for n in range(36 if store.find("ants-bees-sweep-00") is None else 0):  # older jobs, so the list has pages
        job = store.create({"name": f"ants-bees-sweep-{n:02d}", "algorithm": "image-classification",
                            "job_dir": str(root / "old"), "model_dir": str(root / "old"),
                            "log_path": str(root / "old.log"), "spec": {"attached": True}})
        store.update(job["name"], created_at=time.time() - 86_400 * (n + 1))
        for status in (("Failed",), ("Stopping", "Stopped"))[n % 2]:
            store.transition(job["name"], status, "recorded")

    def run(name: str, algorithm: str, channels: dict[str, Path], **hp: str) -> dict:
        from oculi.algorithms import get_algorithm

        done = store.find(name)
        if done is not None and done["status"] == "Completed":
            return done
        if done is not None:
            raise SystemExit(f"job {name} in {root} is {done['status']}, not Completed: use a fresh --records folder")

        spec = runner.JobSpec(algorithm=algorithm, name=name, channels={k: str(v) for k, v in channels.items()},
                              hyperparameters={**get_algorithm(algorithm).tiny_hyperparameters, **hp})
        return runner.run_attached(runner.submit(spec, store, attached=True), store, echo=lambda _line: None)

    shapes = run("shapes-resnet20", "image-classification", classification, epochs="8", learning_rate="auto")
    evaluate(shapes["model_dir"], classification["validation"], output=Path(shapes["model_dir"]).parent / "evaluation",
             progress=False)
    run("shapes-resnet20-lr", "image-classification", classification, epochs="8", learning_rate="0.01")
    run("shapes-ssd", "object-detection", detection, epochs="6")
    if store.find("shapes-long") is None:  # a job stopped while it waits for a slot
        stopped = runner.submit(runner.JobSpec(algorithm="image-classification", name="shapes-long",
                                               channels={k: str(v) for k, v in classification.items()},
                                               hyperparameters={"epochs": "3", "image_shape": "3,48,48",
                                                                "num_layers": "20", "num_workers": "0"}), store)
        runner.stop(stopped["name"], store)
    return {"classes": classification["train"],
            "boxes": detection["train"], "masks": root / "shapes-masks", "query": detection["validation"]}


def small_png(file: Path) -> None:
    """Rewrite a screenshot as a 256-colour PNG (a page has few colours: about a third of the bytes)."""
    from PIL import Image

    with Image.open(file) as image:
        small = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    small.save(file, optimize=True)


def main() -> None:
    """Build the records, serve the console and the detection endpoint, take the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--phone", type=Path, help="also write every page at phone width to this folder")
    parser.add_argument("--records", type=Path, help="keep the data, jobs and store here (a rerun reuses the jobs "
                        "trained there; default: a temp folder)")
    args = parser.parse_args()
    root = args.records.resolve() if args.records else Path(tempfile.mkdtemp(prefix="oculi-console-shots-"))
    os.environ["OCULI_HOME"] = str(root / "home")
    os.environ.pop("OCULI_TOKEN", None)
    from playwright.sync_api import sync_playwright

    from oculi.console.app import create_app
    from oculi.console.launch import stop_server
    from oculi.jobs.store import JobStore
    from oculi.serving.server import BackgroundServer

    paths = records(root)
    console = BackgroundServer(create_app(dispatch_loop=False)).start()
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            url = console.url

            def shot(name: str, target=page) -> None:
                time.sleep(0.4)
                file = args.out / f"console-{name}.png"
                target.screenshot(path=str(file))
                small_png(file)
                written.append(file)

            known = {item["name"] for item in JobStore().registered("dataset")}
            for name, path in (("classes", paths["classes"]), ("boxes", paths["boxes"]), ("masks", paths["masks"])):
                if f"shapes-{name}" in known:
                    continue
                page.goto(f"{url}/datasets")
                page.fill("#dataset-name", f"shapes-{name}")
                page.fill("#dataset-path", str(path))
                page.click("#register")
                page.wait_for_url(f"**/datasets/shapes-{name}")
            page.goto(f"{url}/endpoints")  # start `oculi serve` for the detection model from the form
            page.select_option("#start-model", "shapes-ssd")
            page.fill("#start-name", "shapes-ssd-serve")
            page.click("#start-form button[type=submit]")
            page.wait_for_selector(".launch-state.running", timeout=180_000)  # the page reloads while it starts

            page.goto(f"{url}/jobs")
            shot("jobs")
            page.goto(f"{url}/jobs/shapes-resnet20")
            page.wait_for_selector("#charts svg")
            page.check("#charts input.log-scale")  # the loss curves on a log scale
            shot("job")
            page.goto(f"{url}/jobs/new")
            page.fill("#channel-train", str(paths["classes"]))
            page.fill("#hp-mini_batch_size", "0")
            page.click("#submit")
            page.wait_for_selector("#form-error")
            shot("new-job")
            page.goto(f"{url}/models")
            shot("models")
            page.goto(f"{url}/models/shapes-resnet20")
            page.wait_for_selector("#charts svg")
            shot("model")
            page.goto(f"{url}/models/compare?m=shapes-resnet20&m=shapes-resnet20-lr")
            page.wait_for_selector("#charts svg")
            shot("compare")
            page.goto(f"{url}/datasets")
            shot("datasets")
            for name in ("boxes", "masks"):
                page.goto(f"{url}/datasets/shapes-{name}")
                page.wait_for_selector(".cell.drawn")
                shot(f"dataset-{name}")
            page.goto(f"{url}/endpoints")
            query = next(Path(paths["query"]).parent.rglob("*.png"))
            page.set_input_files(".tryit-file", str(query))
            page.wait_for_selector(".tryit.answered")
            page.fill(".tryit-min", "0.25")  # a briefly trained model: draw its less confident boxes too
            page.dispatch_event(".tryit-min", "input")
            page.evaluate("window.scrollTo(0, document.querySelector('section.server').offsetTop - 60)")
            shot("endpoints")
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(f"{url}/jobs/shapes-resnet20")
            phone.wait_for_selector("#charts svg")
            shot("job-phone", phone)
            dark = browser.new_page(viewport={"width": 1280, "height": 800}, color_scheme="dark")
            dark.goto(f"{url}/jobs/shapes-ssd")
            dark.wait_for_selector("#charts svg")
            shot("job-dark", dark)
            if args.phone:
                args.phone.mkdir(parents=True, exist_ok=True)
                pages = [("jobs", "/jobs", "table"), ("job", "/jobs/shapes-resnet20", "#charts svg"),
                         ("new-job", "/jobs/new", "#submit"), ("models", "/models", "table"),
                         ("model", "/models/shapes-resnet20", "#charts svg"),
                         ("compare", "/models/compare?m=shapes-resnet20&m=shapes-resnet20-lr", "#charts svg"),
                         ("datasets", "/datasets", "table"), ("dataset-boxes", "/datasets/shapes-boxes", ".cell.drawn"),
                         ("dataset-masks", "/datasets/shapes-masks", ".cell.drawn"),
                         ("endpoints", "/endpoints", "form")]
                for name, path, ready in pages:
                    phone.goto(f"{url}{path}")
                    phone.wait_for_selector(ready)
                    time.sleep(0.4)
                    file = args.phone / f"console-{name}-phone.png"
                    phone.screenshot(path=str(file), full_page=True)
                    written.append(file)
            browser.close()
    finally:
        if any(item["name"] == "shapes-ssd-serve" for item in JobStore().registered("endpoint")):
            stop_server(JobStore(), "shapes-ssd-serve")
        console.stop()
    for file in written:
        print(file)


if __name__ == "__main__":
    main()
