"""``oculi data audit``, ``oculi embed``, ``oculi search`` and ``oculi tag``: thin commands over
:mod:`oculi.analysis`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from oculi.cli.common import console, err_console, parse_image_roots
from oculi.config import parse_assignments
from oculi.errors import ConfigError

ImageRootOption = typer.Option(None, "--image-root", help="Map an S3 prefix in a manifest to a local folder: "
                               "s3://bucket/prefix=DIR. Repeatable.")
TaskOption = typer.Option("auto", "--task", help="classification, detection, segmentation, or auto (recognised "
                          "from the data).")


def audit(
    channels: list[str] = typer.Argument(..., help="A dataset PATH (a folder of train/validation splits, class "
                                         "folders, a .lst, a manifest, detection or segmentation data) or "
                                         "NAME=PATH channels (train=…, validation=…)."),
    output: Path = typer.Option(Path("audit"), "--output", "-o", help="Folder for audit.json, report.html and "
                                "clean.manifest (created; your data is never modified)."),
    task: str = TaskOption,
    model: Path | None = typer.Option(None, "--model", help="A bundle of the data's task: its embeddings find "
                                      "outliers and its predictions score labels (in-sample). Without it, "
                                      "--folds short trainings of the task's built-in algorithm (ordinary jobs) "
                                      "give out-of-fold predictions, and the first fold's model the embeddings."),
    folds: int = typer.Option(3, "--folds", min=2, help="Out-of-fold trainings for label issues."),
    hyperparameter: list[str] | None = typer.Option(None, "--hyperparameter", "-p", help="Override a fold "
                                                    "training's hyperparameter, e.g. -p epochs=2. Repeatable."),
    no_labels: bool = typer.Option(False, "--no-labels", help="Skip label issues (no fold trainings)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds and their trainings."),
    image_root: list[str] | None = ImageRootOption,
    label_attribute: str | None = typer.Option(None, "--label-attribute", help="Augmented manifests: the label "
                                               "attribute, when the lines have several."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    send_to_labeling: str | None = typer.Option(None, "--send-to-labeling", help="Queue the suspects in this "
                                                "labeling job (created with the data's task and classes when it "
                                                "does not exist), their labels as pre-labels."),
    send_kinds: str | None = typer.Option(None, "--send-kinds", help="Which findings --send-to-labeling sends, "
                                          "comma-separated (default: label issues, outlier, near_duplicate, "
                                          "leakage)."),
) -> None:
    """Audit a dataset before training: blurry, dark, bright, low-information, odd-sized and grayscale images
    (relative to the collection), exact and near duplicates within and across splits (leakage), outliers in
    the model's embedding space, and wrong labels with cleanlab on out-of-fold predictions of --folds short
    trainings (ordinary jobs): classification labels; detection missing, swapped and misplaced boxes;
    segmentation mask regions. --no-labels skips the trainings.

    Writes OUTPUT/audit.json (each finding: file, line, kind, score, fix), OUTPUT/report.html (thumbnails per
    kind) and OUTPUT/clean.manifest (the training split without flagged images), and records the audit in the
    store (the console's dataset page lists it). --send-to-labeling JOB queues the suspects for relabeling.

    Example: oculi data audit ../shared/data/hymenoptera/hymenoptera_data --output audit/ants

    Example: oculi data audit train=data/train validation=data/val --model models/flowers --no-labels

    Example: oculi data audit data/bees --output audit/bees --send-to-labeling bees-relabel
    """
    from oculi.analysis.audit import audit as run
    from oculi.cli.label import kinds_option, show_sent, url
    from oculi.labeling.audits import record_audit
    from oculi.labeling.audits import send_to_labeling as send

    progress = not no_progress and err_console.is_terminal
    report = run(channels, output, task=task, model=model, folds=folds,
                 hyperparameters={k: str(v) for k, v in parse_assignments(hyperparameter or []).items()},
                 seed=seed, labels=not no_labels, image_roots=parse_image_roots(image_root),
                 label_attribute=label_attribute, progress=progress, echo=lambda line: err_console.print(line))
    table = Table("kind", "findings", "top example")
    for kind, items in report.by_kind().items():
        table.add_row(kind, str(len(items)), f"{Path(items[0].file).name}: {items[0].detail}")
    images = sum(len(s) for s in report.sets.values())
    console.print(table if report.findings else f"No findings in {images} images.")
    for note in report.notes:
        console.print(f"note: {note}")
    if report.jobs:
        console.print(f"fold jobs: {', '.join(report.jobs)}")
    console.print(f"{len(report.findings)} findings in {images} images ({report.seconds:.1f} s); wrote "
                  f"{output / 'audit.json'}, {output / 'report.html'} and {output / 'clean.manifest'}")
    record = record_audit(output)
    console.print(f"recorded as audit {record['name']}: {url('/audits/' + record['name'])}")
    if send_to_labeling:
        show_sent(send(send_to_labeling, report, kinds=kinds_option(send_kinds)))


def embed(
    model: Path = typer.Argument(..., help="Model bundle whose backbone embeds the images."),
    channels: list[str] = typer.Argument(..., help="A dataset PATH or NAME=PATH channels."),
    output: Path = typer.Option(..., "--output", "-o", help="Index folder to write."),
    task: str = TaskOption,
    image_root: list[str] | None = ImageRootOption,
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Embed a dataset with a model's own backbone (penultimate features; for detection data also each labelled
    box as a crop) into an index for `oculi search` and `oculi tag`. Embeddings are cached per file, so
    embedding again after adding images only embeds the new ones.

    Example: oculi embed models/ants ../shared/data/hymenoptera/hymenoptera_data --output indexes/ants
    """
    from oculi.analysis.search import embed as run

    index = run(model, channels, output, task=task, image_roots=parse_image_roots(image_root),
                progress=not no_progress and err_console.is_terminal)
    boxes = sum(1 for item in index.items if item["box"] is not None)
    console.print(f"Embedded {len(index) - boxes} images" + (f" and {boxes} boxes" if boxes else "") +
                  f" ({index.vectors.shape[1]} dimensions) into {output}")


def _box(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in value.split(","))
    except ValueError:
        raise ConfigError(f"--box got {value!r}; expected x0,y0,x1,y1 in the image's pixels, e.g. "
                          "--box 10,20,200,180.") from None
    if x1 <= x0 or y1 <= y0:
        raise ConfigError(f"--box {value}: x1 must exceed x0 and y1 exceed y0 (corners, not width/height).")
    return x0, y0, x1, y1


def search(
    index: Path = typer.Argument(..., help="Index folder made by `oculi embed`."),
    query: Path = typer.Argument(..., help="Query image."),
    box: str | None = typer.Option(None, "--box", help="Search with this region of the query, x0,y0,x1,y1 "
                                   "pixels; finds boxes of a detection index."),
    k: int = typer.Option(10, "-k", min=1, help="How many neighbours."),
    html: Path | None = typer.Option(None, "--html", help="Also write a contact sheet (HTML + thumbnails)."),
    approximate: bool | None = typer.Option(None, "--approximate/--exact", help="Force the approximate "
                                            "(usearch) or exact index; default: approximate from 2M vectors."),
) -> None:
    """Find the images (or boxes) most similar to a query image, by cosine similarity of the model's embeddings.

    Example: oculi search indexes/ants query.jpg -k 5 --html similar.html

    Example: oculi search indexes/bees photo.jpg --box 40,30,180,160
    """
    from oculi.analysis.search import search as run

    hits = run(index, query, box=_box(box), k=k, approximate=approximate)
    table = Table("rank", "similarity", "image", "box", "split", "labels")
    for hit in hits:
        table.add_row(str(hit["rank"]), f"{hit['score']:.3f}", hit["image"],
                      ",".join(f"{v:.0f}" for v in hit["box"]) if hit["box"] else "", hit["split"],
                      ", ".join(hit["labels"]))
    console.print(table)
    if html is not None:
        from oculi.analysis.report import write_contact_sheet

        console.print(f"contact sheet: {write_contact_sheet(html, query, _box(box), hits)}")


def tag(
    source: Path = typer.Argument(..., help="An index made by `oculi embed` (labelled neighbours + its model) or "
                                  "a classification model bundle."),
    images: list[Path] = typer.Argument(..., help="Images to tag."),
    output: Path = typer.Option(Path("pre-labels.manifest"), "--output", "-o", help="Manifest of proposed "
                                "labels (usable as pre-labels)."),
    k: int = typer.Option(10, "-k", min=1, help="Labelled neighbours that vote."),
) -> None:
    """Propose a label for each image from its nearest labelled neighbours (and the model's own prediction when
    it is a classifier of the same classes), with a confidence; writes a Ground Truth-style manifest.

    Example: oculi tag indexes/ants new/*.jpg --output new.manifest
    """
    from oculi.analysis.search import tag as run

    results = run(source, images, output, k=k)
    table = Table("image", "label", "confidence")
    for row in results:
        table.add_row(row["image"], row["label"], f"{row['confidence']:.2f}")
    console.print(table)
    console.print(f"Wrote {len(results)} proposed labels to {output}")
