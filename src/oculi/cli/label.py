"""``oculi label``: labeling jobs (Ground Truth's shapes) — create, list, describe, stop, export, and the model
assistance (pre-labels with an uncertainty queue, automated labeling). People label in the console
(``oculi console`` → Labeling)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from oculi.cli.common import console

app = typer.Typer(help="Labeling jobs, labelled in the console and written as Ground Truth output manifests. "
                  "Example: oculi label create bees-1 --task detection --input photos/ --classes bee,wasp",
                  no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="The job name (letters, digits, hyphens; also the label attribute)."),
    task: str = typer.Option(..., "--task", help="classification, detection or segmentation."),
    input: Path = typer.Option(..., "--input", help="A folder of images, an input manifest (source-ref lines), or "  # noqa: A002
                               "a labelled dataset whose labels become pre-labels."),
    classes: str = typer.Option(..., "--classes", help="The label categories, comma-separated: bee,wasp."),
    multi_label: bool = typer.Option(False, "--multi-label", help="Classification: several classes per image."),
    instructions: Path | None = typer.Option(None, "--instructions", help="A text file shown to the labelers."),
    output: Path | None = typer.Option(None, "--output", help="Output path (default $OCULI_HOME/labeling); the job "
                                       "writes OUTPUT/<name>/manifests/output/output.manifest."),
    label_attribute: str | None = typer.Option(None, "--label-attribute", help="Default: the job name."),
    pre_label_model: Path | None = typer.Option(None, "--pre-label-model", help="A model bundle of the same task: "
                                                "its predictions become editable proposals and the queue is "
                                                "ordered by its uncertainty."),
) -> None:
    """Create a labeling job (CreateLabelingJob); open the console to label it.

    Example: oculi label create shapes --task classification --input images/ --classes circle,square
    """
    from oculi.labeling import LabelingJob

    job = LabelingJob.create(name, task, input, classes, multi_label=multi_label, instructions=instructions,
                             output=output, label_attribute=label_attribute)
    if pre_label_model is not None:
        console.print(f"pre-labeled {job.prelabel(pre_label_model)} images with {pre_label_model}")
    described = job.describe()
    console.print(f"labeling job {name}: {described['LabelCounters']['Unlabeled']} images, label attribute "
                  f"{described['LabelAttributeName']}; label it in `oculi console` at /labeling/{name}; output "
                  f"{described['LabelingJobOutput']['OutputDatasetS3Uri']}")


def url(path: str) -> str:
    """``path`` on the console at its default address (``oculi console`` without --host/--port)."""
    from oculi.serving.server import local_url

    return f"{local_url('127.0.0.1', 8000)}{path}"


def kinds_option(value: str | None) -> tuple[str, ...]:
    """A comma-separated --kinds value, or the default kinds an audit sends to labeling."""
    from oculi.labeling.audits import SEND_KINDS

    return tuple(k.strip() for k in value.split(",") if k.strip()) if value else SEND_KINDS


def show_sent(result: dict) -> None:
    """Print what :func:`oculi.labeling.audits.send_to_labeling` did and where to label."""
    missing = f" ({result['missing']} no longer in the data)" if result["missing"] else ""
    if not result["suspects"]:
        console.print("no suspects of the kinds sent to labeling; nothing queued")
        return
    action = "created labeling job" if result["created"] else "labeling job"
    console.print(f"queued {result['queued']} suspect(s) of {result['suspects']}{missing} in {action} "
                  f"{result['job']} ({result['status']}); label them at {url('/labeling/' + result['job'])}")


@app.command("add-from-audit")
def add_from_audit(
    name: str = typer.Argument(..., help="The labeling job (created when it does not exist)."),
    audit_dir: Path = typer.Argument(..., help="The --output folder of `oculi data audit`."),
    kinds: str | None = typer.Option(None, "--kinds", help="Which findings to send, comma-separated (default: "
                                     "label issues, outlier, near_duplicate, leakage)."),
) -> None:
    """Queue an audit's suspects for relabeling without running the audit again: their current labels become
    pre-labels; images the job already holds are not added twice; a Completed job is reopened.

    Example: oculi label add-from-audit bees-relabel audit/bees --kinds label_issue,leakage
    """
    from oculi.labeling.audits import send_to_labeling

    show_sent(send_to_labeling(name, audit_dir, kinds=kinds_option(kinds)))


@app.command("list")
def list_jobs() -> None:
    """List labeling jobs with their counters, newest first.

    Example: oculi label list
    """
    from rich.table import Table

    from oculi.labeling import LabelingJob

    rows = LabelingJob.list()
    if not rows:
        console.print("no labeling jobs yet; create one with `oculi label create`.")
        return
    table = Table("name", "task", "status", "created", "human", "machine", "unlabeled", box=None)
    for row in rows:
        c = row["LabelCounters"]
        table.add_row(row["LabelingJobName"], row["Task"], row["LabelingJobStatus"], row["CreationTime"][:19],
                      str(c["HumanLabeled"]), str(c["MachineLabeled"]), str(c["Unlabeled"]))
    console.print(table)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="The labeling job.")) -> None:
    """DescribeLabelingJob's JSON: status, LabelCounters, input, output, automated-labeling rounds.

    Example: oculi label describe shapes
    """
    from oculi.labeling import LabelingJob

    console.print_json(json.dumps(LabelingJob(name).describe()))


@app.command("stop")
def stop(name: str = typer.Argument(..., help="The labeling job.")) -> None:
    """Stop a labeling job (StopLabelingJob); the labels made so far are written to its output manifest.

    Example: oculi label stop shapes
    """
    from oculi.labeling import LabelingJob

    described = LabelingJob(name).stop()
    console.print(f"{name}: {described['LabelingJobStatus']}; output "
                  f"{described['LabelingJobOutput']['OutputDatasetS3Uri']}")


@app.command("export")
def export(
    name: str = typer.Argument(..., help="The labeling job."),
    to: Path | None = typer.Option(None, "--to", help="Also write the manifest here."),
) -> None:
    """Write the output manifest now (Ground Truth's output.manifest; `oculi train --train` reads it as it is).

    Example: oculi label export shapes && oculi train image-classification --train
    ~/.oculi/labeling/shapes/manifests/output/output.manifest
    """
    from oculi.labeling import LabelingJob

    console.print(f"wrote {LabelingJob(name).export(to)}")


@app.command("pre-label")
def pre_label(
    name: str = typer.Argument(..., help="The labeling job."),
    model: Path = typer.Option(..., "--model", help="A model bundle of the job's task and classes."),
    threshold: float = typer.Option(0.5, "--threshold", help="Detection: the score threshold of proposed boxes."),
    measure: str = typer.Option("margin", "--measure", help="Classification uncertainty: margin or entropy."),
) -> None:
    """Pre-label the unlabeled images with a model and order the queue by its uncertainty.

    Example: oculi label pre-label shapes --model ~/.oculi/jobs/shapes-1/output/model
    """
    from oculi.labeling import LabelingJob

    count = LabelingJob(name).prelabel(model, threshold=threshold, measure=measure)
    console.print(f"pre-labeled {count} images; the queue now starts with the most uncertain")


@app.command("auto")
def auto(
    name: str = typer.Argument(..., help="The labeling job."),
    accuracy: float = typer.Option(0.95, "--auto-label-accuracy", help="The accuracy machine labels must meet on "
                                   "held-out human labels."),
    holdout: float = typer.Option(0.25, "--holdout", help="The share of human labels held out to measure the "
                                  "machine labels' accuracy (more certifies higher targets; less trains on more)."),
    algorithm: str | None = typer.Option(None, "--algorithm", help="Default: the task's built-in algorithm."),
    hyperparameter: list[str] | None = typer.Option(None, "-p", "--hyperparameter", help="key=value for training."),
) -> None:
    """One round of automated labeling: train on the human labels (an ordinary training job), pick the confidence
    that meets the target on held-out human labels, machine-label the confident images, queue the rest.

    Example: oculi label auto shapes --auto-label-accuracy 0.95 -p epochs=10
    """
    from oculi.config import parse_assignments
    from oculi.labeling import LabelingJob

    record = LabelingJob(name).auto_label(accuracy=accuracy, holdout=holdout, algorithm=algorithm,
                                          hyperparameters=parse_assignments(hyperparameter or []),
                                          echo=console.print)
    if record["threshold"] is None:
        console.print(f"round {record['round']}: training job {record['training_job']}; no confidence met the "
                      f"{accuracy} target on {record['held_out']} held-out human labels (it takes at least "
                      f"{record['needed']} right in a row; {record['held_out_accuracy']} were right "
                      f"overall); all {record['sent_to_people']} images sent to people. Label more, or hold out more "
                      "with --holdout.")
        return
    console.print(f"round {record['round']}: training job {record['training_job']}; threshold "
                  f"{record['threshold']} (accuracy {record['measured_accuracy']} on {record['measured_on']} held-out "
                  f"human labels); {record['machine_labeled']} machine-labeled, {record['sent_to_people']} sent to "
                  "people")
