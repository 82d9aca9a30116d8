"""``oculi data check|split|sample`` for image-classification data and ``oculi data convert`` for object detection,
segmentation and labeling tools' (Label Studio, CVAT) data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from oculi.cli.common import console, err_console, parse_channels, parse_image_roots, working
from oculi.data.channels import read_channel, resolve_classification_channels, split_layout
from oculi.data.checks import check_classification, check_path
from oculi.data.convert import CLASSIFICATION_FORMATS
from oculi.data.detection import DETECTION_FORMATS, DETECTION_READ_FORMATS
from oculi.data.formats.manifest import write_manifest
from oculi.data.segmentation import SEGMENTATION_FORMATS
from oculi.data.split import stratified_sample, stratified_split
from oculi.data.tasks import convert_data
from oculi.errors import ConfigError, DataError
from oculi.types import SampleSet

app = typer.Typer(
    help="Check, split and sample image-classification data: class folders, SageMaker .lst files and augmented "
    "manifests. Convert object detection data between SageMaker JSON, manifests, COCO, Pascal VOC, YOLO, Label "
    "Studio and CVAT, and segmentation masks between SageMaker's mask layout, -ref manifests, Pascal VOC, COCO, "
    "Label Studio and CVAT. Label Studio, CVAT, labelme and VIA files are read wherever data is.",
    no_args_is_help=True,
)

ImageRootOption = Annotated[
    list[str] | None,
    typer.Option(
        "--image-root",
        help="Map an S3 prefix in a manifest to a local folder: s3://bucket/prefix=DIR. Repeatable.",
    ),
]
LabelAttributeOption = Annotated[
    str | None,
    typer.Option(
        "--label-attribute",
        help="Augmented manifests: the attribute that holds the labels, when the lines have several "
        "(e.g. class besides verified-class). VIA files: the region attribute that holds the class.",
    ),
]
SeedOption = Annotated[
    int, typer.Option("--seed", help="Seed of the shuffle; the same seed gives the same result.")
]


@app.command()
def check(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Class folders, a .lst, a manifest, or a folder of train/validation(val)/test splits."
        ),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            "--channel",
            "-c",
            help="A SageMaker channel NAME=PATH instead of PATH (train, validation, "
            "train_lst, validation_lst). Repeatable.",
        ),
    ] = None,
    image_root: ImageRootOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of tables.")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Threads that decode images.")] = 2,
    num_classes: Annotated[int | None, typer.Option(
        "--num-classes", min=2, max=254, help="The num_classes you will train with: .lst / manifest class ids and "
        "segmentation mask values at or above it (other than 255 = ignore) are reported. Default: from the "
        "class-map or label map, else the data.")] = None,
    label_attribute: LabelAttributeOption = None,
) -> None:
    """Check a dataset: can it be trained on?

    Decodes every image and reports what would stop training (unreadable or truncated images, empty classes,
    labels out of range, duplicates across splits) and what is handled for you (converted modes, EXIF rotation),
    each with its file and line. Exits 1 when the data cannot be trained on.

    Segmentation data (SageMaker's train/ + train_annotation/ layout, VOC SegmentationClass, -ref manifests) is
    checked mask by mask: missing or extra masks, mask size ≠ image size, values outside the label map, RGB masks
    where an index mask is expected, classes that never appear.

    Example: oculi data check ../shared/data/hymenoptera/hymenoptera_data

    Example: oculi data check data/streets   (holding train/, train_annotation/, label_map/)

    Example: oculi data check data/membranes --num-classes 2
    """
    roots = parse_image_roots(image_root)
    progress = not json_output and err_console.is_terminal
    if path is not None and channel:
        raise ConfigError(
            "Give a dataset PATH or --channel NAME=PATH options, not both; e.g. "
            "`oculi data check --channel train=data/train --channel validation=data/val`."
        )
    if channel:
        sets = resolve_classification_channels(parse_channels(None, None, channel), image_roots=roots,
                                               num_classes=num_classes, label_attribute=label_attribute)
        report = check_classification(sets, workers=workers, progress=progress)
    elif path is not None:
        report = check_path(path, roots, workers=workers, progress=progress, num_classes=num_classes,
                            label_attribute=label_attribute)
    else:
        raise ConfigError(
            "Nothing to check: pass a dataset PATH (e.g. `oculi data check data/flowers`) or "
            "`--channel train=DIR`."
        )
    if json_output:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        report.render(console)
    if not report.ok:
        raise typer.Exit(1)


def _read_clean(path: Path, image_root: list[str] | None, label_attribute: str | None = None, *,
                command: str) -> SampleSet:
    """Read a dataset to rewrite; refuse when the reader left lines out, so no image is dropped silently, and
    a folder of splits (``command`` takes one dataset: the fix names one split folder)."""
    splits = split_layout(path)
    if splits is not None:
        names = ", ".join(f"{p.name}/" for p in splits.values())
        raise DataError(f"{path}: holds splits ({names}), not classes; `oculi data {command}` reads one dataset. "
                        f"Pass one split folder, e.g. `oculi data {command} {splits['train']} …`.")
    sample_set = read_channel(path, image_roots=parse_image_roots(image_root), label_attribute=label_attribute)
    errors = [f for f in sample_set.findings if f.level == "error"]
    if errors:
        raise DataError(
            f"{path}: {len(errors)} problem(s) in the labels, e.g. {errors[0].location()}: {errors[0].message} "
            f"See them all with `oculi data check {path}` and fix them first."
        )
    return sample_set


def _count_table(sample_set: SampleSet, columns: dict[str, SampleSet]) -> Table:
    table = Table()
    table.add_column("class")
    counts = {name: s.class_counts() for name, s in columns.items()}
    for name in columns:
        table.add_column(name, justify="right")
    for index, class_name in enumerate(sample_set.classes):
        table.add_row(class_name, *(str(c[index]) for c in counts.values()))
    table.add_section()
    table.add_row("images", *(str(len(s)) for s in columns.values()), style="bold")
    return table


@app.command()
def split(
    path: Annotated[Path, typer.Argument(help="Dataset to split: class folders, a .lst or a manifest.")],
    fraction: Annotated[
        float, typer.Option("--fraction", help="Share of each class that goes to validation, e.g. 0.2.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for train.manifest and validation.manifest.")
    ],
    seed: SeedOption = 0,
    image_root: ImageRootOption = None,
    label_attribute: LabelAttributeOption = None,
) -> None:
    """Split a dataset into stratified train and validation manifests.

    Each class is split in the same proportion (a class keeps at least one training image); the same seed gives
    the same split.

    Example: oculi data split data/flowers --fraction 0.2 --seed 0 --output data/flowers-split
    """
    sample_set = _read_clean(path, image_root, label_attribute, command="split")
    train, validation = stratified_split(sample_set, fraction, seed)
    train_path = write_manifest(train, output / "train.manifest")
    validation_path = write_manifest(validation, output / "validation.manifest")
    console.print(_count_table(sample_set, {"train": train, "validation": validation}))
    console.print(f"Wrote {len(train)} images to {train_path}", soft_wrap=True)
    console.print(f"Wrote {len(validation)} images to {validation_path}", soft_wrap=True)
    console.print(
        f"Train on them with: oculi train image-classification --train {train_path} "
        f"--validation {validation_path}",
        soft_wrap=True,
    )


@app.command()
def sample(
    path: Annotated[Path, typer.Argument(help="Dataset to sample: class folders, a .lst or a manifest.")],
    fraction: Annotated[
        float, typer.Option("--fraction", help="Share of each class to keep (at least one image), e.g. 0.02.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Manifest file to write.")],
    seed: SeedOption = 0,
    image_root: ImageRootOption = None,
    label_attribute: LabelAttributeOption = None,
) -> None:
    """Write a class-balanced random subset of a dataset as a manifest.

    Keeps the same share of every class (at least one image each), for quick experiments.

    Example: oculi data sample data/flowers --fraction 0.02 --seed 0 --output data/flowers-2pct.manifest
    """
    sample_set = _read_clean(path, image_root, label_attribute, command="sample")
    subset = stratified_sample(sample_set, fraction, seed)
    written = write_manifest(subset, output)
    console.print(_count_table(sample_set, {"all": sample_set, "sampled": subset}))
    console.print(f"Wrote {len(subset)} of {len(sample_set)} images to {written}", soft_wrap=True)


@app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="Detection data: a manifest, COCO JSON, VOC or YOLO folder, "
                                           "SageMaker train images (with --annotations), a Label Studio / CVAT / "
                                           "labelme / VIA file; or segmentation or classification data.")],
    to: Annotated[str, typer.Option("--to", help=f"Output format: {', '.join(DETECTION_FORMATS)}, recordio (a .rec "
                                    f"+ .idx: out/train.rec, or out when it ends in .rec); segmentation: "
                                    f"{', '.join(SEGMENTATION_FORMATS)}; classification: "
                                    f"{', '.join(CLASSIFICATION_FORMATS)}.")],
    out: Annotated[Path, typer.Argument(help="Output folder (or a .manifest / .json file for manifest / coco).")],
    source_format: Annotated[
        str, typer.Option("--from", help="Input format when not recognised: "
                          f"{', '.join(DETECTION_READ_FORMATS)}.")
    ] = "auto",
    annotations: Annotated[
        Path | None,
        typer.Option("--annotations", help="SageMaker train_annotation folder when SOURCE is the train images "
                     "folder; the image folder for COCO, VOC, Label Studio, CVAT, labelme and VIA."),
    ] = None,
    names: Annotated[
        Path | None, typer.Option("--names", help="YOLO class names: a data YAML or one name per line.")
    ] = None,
    image_root: ImageRootOption = None,
    copy_images: Annotated[
        bool, typer.Option("--copy-images", help="Copy the images into OUT (byte for byte) instead of referencing.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the ledger as JSON.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an output that already exists (its "
                                            "annotation file or folders are deleted first). The input itself is "
                                            "never overwritten.")] = False,
    label_attribute: LabelAttributeOption = None,
    task: Annotated[str, typer.Option("--task", help="auto, classification, detection or segmentation. auto "
                                      "recognises SageMaker mask folders, VOC SegmentationClass, -ref manifests "
                                      "and brush / mask labels as segmentation, image tags only as "
                                      "classification; pass segmentation to read polygons as masks (detection "
                                      "reads them as their bounding boxes).")] = "auto",
    default_class: Annotated[str | None, typer.Option(
        "--default-class", help="VIA: the class of regions without a class attribute (the balloon tutorial's "
        "files have none); default 'object'.")] = None,
) -> None:
    """Convert object detection data between formats and print a ledger of what was read, written and changed
    (segmentation masks and image-classification tags too).

    Boxes, class names and images are counted in and out; every box or image dropped or changed (clipped, empty,
    a difficult flag YOLO cannot hold, an image not found) is listed with its file and reason. The input is never
    written over; an existing output is replaced only with --overwrite; data in which no image is found is an
    error, not an empty output.

    Example: oculi data convert ../shared/data/bees/train.manifest --to coco out/bees-coco --image-root
    s3://sagemaker-remars/datasets/na-bees/500=../shared/data/bees/images

    Segmentation masks convert the same way; the ledger then counts labelled pixels per class.

    Example: oculi data convert data/streets --to voc out/streets-voc

    Example: oculi data convert annotations.json --task segmentation --annotations images --to sagemaker-masks out/sm

    Labeling tools' files (Label Studio JSON exports, CVAT for images 1.1 XML, labelme JSON, VIA 1.x/2 JSON) are
    read too, and written with --to labelstudio or --to cvat.

    Example: oculi data convert balloon/train/via_region_data.json --to coco out/balloon --default-class balloon

    Example: oculi data convert export.json --task segmentation --to cvat out/cvat
    """
    from oculi.data.tasks import DATA_TASKS

    if task != "auto" and (task not in DATA_TASKS or DATA_TASKS.get(task).convert is None):
        convertible = [t for t in DATA_TASKS.names() if DATA_TASKS.get(t).convert is not None]
        raise ConfigError(f"--task got {task!r}; expected auto, {' or '.join(convertible)}.")
    options = {"copy_images": copy_images, "names": names} if copy_images or names is not None else {}
    if default_class is not None:
        options["default_class"] = default_class
    with working(f"converting {source} to {to}…", enabled=not json_output):
        ledger = convert_data(source, to, out, task=task, source_format=source_format, annotations=annotations,
                              image_roots=parse_image_roots(image_root), overwrite=overwrite,
                              label_attribute=label_attribute, **options)
    if json_output:
        typer.echo(json.dumps(ledger.to_dict(), indent=2, ensure_ascii=False))
    else:
        ledger.render(console)
