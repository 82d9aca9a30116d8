"""``oculi transform``: batch transform, a thin command over :func:`oculi.batch.transform`."""

from __future__ import annotations

from pathlib import Path

import typer

from oculi.cli.common import PRECISION_HELP, RUNTIME_HELP, console, parse_image_roots


def transform(
    model: Path = typer.Argument(..., help="Model bundle folder (or a job's output folder, or model.tar.gz)."),
    input: Path = typer.Option(..., "--input", "-i", help="A folder of images (searched recursively; sub-folders "
                               "are kept in the output names), one image, or an augmented manifest (source-ref)."),
    output: Path = typer.Option(..., "--output", "-o", help="Folder for the results (created when missing)."),
    accept: str | None = typer.Option(None, "--accept", help="Response type, as an endpoint's Accept header. "
                                      "Classification: application/json (default) or application/json;verbose. "
                                      "Detection: application/json (default) or application/json;annotation=1. "
                                      "Segmentation: image/png (default: the mask PNG) or application/json."),
    assemble_with: str = typer.Option("none", "--assemble-with", help="none: one <image-name>.out per image "
                                      "(SageMaker's convention). line: one JSON-lines file <input-name>.out, a "
                                      "{\"source\": name, …} record per image in input order (JSON accepts only)."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Images per model call (default 32 for "
                                          "classification, 8 for detection, 4 for segmentation)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Processes that each load the model once and take a "
                                "share of the images; the CPU threads are split between them."),
    image_root: list[str] | None = typer.Option(None, "--image-root", help="Manifest input: map S3 URIs to a local "
                                                "folder, S3PREFIX=DIR (repeatable)."),
    job_name: str | None = typer.Option(None, "--job-name", "--name", help="Job name (default "
                                        "<algorithm>-transform-YYYY-MM-DD-HH-MM-SS-mmm)."),
    split_type: str = typer.Option("None", "--split-type", help="SageMaker's SplitType: RecordIO transforms each "
                                   "record of a .rec --input (a .rec is split into records whatever it says; "
                                   "RecordIO refuses other inputs)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on a terminal."),
    explain: bool = typer.Option(False, "--explain", help="Also write heat-map overlays (<image-name>-<target>.png), "
                                 "raw maps (.npy) and <image-name>.explain.json beside each .out (float32; see "
                                 "`oculi explain`)."),
    explain_method: str = typer.Option("auto", "--explain-method", help="With --explain: auto, gradcam, gradcam++, "
                                       "layercam or eigencam."),
    runtime: str = typer.Option("auto", "--runtime", help=RUNTIME_HELP + " The job's log says which ran."),
    precision: str = typer.Option("auto", "--precision", help=PRECISION_HELP),
) -> None:
    """Run a model over many images (SageMaker batch transform), recorded as a job.

    Writes OUTPUT/<image-name>.out per image (what an endpoint would answer), or one JSON-lines file with
    --assemble-with line. Running it again skips the images already done, so a stopped run just continues.
    Unreadable images are listed in OUTPUT/errors.jsonl and the run goes on. Exit code 0 when the job completed
    (even with failed images: see the summary), 1 when it was stopped (oculi jobs stop), 130 on Ctrl-C.

    Example: oculi transform models/ants --input photos/ --output predictions/ --workers 2

    Example: oculi transform models/streets --input val.manifest --image-root s3://bucket/streets=data/streets
    --output masks/ --accept application/json --assemble-with line

    Example: oculi transform models/ants --input val.rec --split-type RecordIO --output predictions/
    Example: oculi transform models/ants --input photos/ --output predictions/ --explain

    Example: oculi transform models/ants --input photos/ --output predictions/ --runtime onnx --precision int8
    """
    from oculi.batch import describe_summary
    from oculi.batch import transform as run

    summary = run(model, input, output, accept=accept, assemble_with=assemble_with, batch_size=batch_size,
                  workers=workers, image_roots=parse_image_roots(image_root), job_name=job_name, progress=progress,
                  echo=console.print, split_type=split_type, explain=explain_method if explain else None,
                  runtime=runtime, precision=precision)
    console.print(f"{summary.status}: {describe_summary(summary)}")
    console.print(f"results: {summary.assembled or summary.output}")
    console.print(f"job: {summary.job_name} (oculi jobs describe {summary.job_name}); log: {summary.log_path}")
    if summary.status != "Completed":
        raise typer.Exit(1)
