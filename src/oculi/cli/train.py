"""``oculi train`` and ``oculi demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from oculi.cli.common import console, parse_channels, parse_image_roots


def train(
    algorithm: str = typer.Argument(..., help="Algorithm to train; see `oculi algorithms list`."),
    train: Path | None = typer.Option(None, "--train", help="Training channel: class folders, a .lst file or an "
                                      "augmented manifest."),
    validation: Path | None = typer.Option(None, "--validation", help="Validation channel (same forms). Without "
                                           "it a seeded, stratified part of the training data is held out."),
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Any SageMaker channel as NAME=PATH "
                                             "(train_lst, validation_lst, model, …). Repeatable."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="Hyperparameter as name=value "
                                           "(SageMaker string forms accepted). Repeatable."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Hyperparameters file: JSON (SageMaker's "
                                       "hyperparameters.json) or name=value lines; -p values win."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder for the model bundle (default: a new "
                                       "folder under $OCULI_HOME/runs)."),
    init_model: Path | None = typer.Option(None, "--init-model", help="Start from an earlier oculi model bundle "
                                           "of the same architecture (SageMaker's `model` channel)."),
    image_root: list[str] | None = typer.Option(None, "--image-root", help="Map an S3 prefix in a manifest to a "
                                                "local folder: s3://bucket/prefix=DIR. Repeatable."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow writing over an existing bundle in --output."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    name: str | None = typer.Option(None, "--name", help="Job name (default <algorithm>-YYYY-MM-DD-HH-MM-SS-mmm)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return at once: the job runs in a background "
                                "process (queued while OCULI_MAX_PARALLEL_JOBS jobs run). Follow it with "
                                "`oculi jobs logs NAME --follow`."),
) -> None:
    """Train an algorithm as a training job and write a model bundle (model.json + weights.safetensors).
    Every run is recorded in the job store (`oculi jobs list`); --detach runs it in the background.

    Example: oculi train image-classification --train data/train --validation data/val
    -p architecture=efficientnet-lite0 -p use_pretrained_model=1 -p epochs=5 --output models/ants
    """
    from oculi.config import load_recipe
    from oculi.jobs.runner import JobSpec, dispatch, run_attached, submit
    from oculi.jobs.store import JobStore

    channels = parse_channels(train, validation, channel)
    roots = parse_image_roots(image_root)
    if output is not None and (output.expanduser() / "model.json").exists() and not overwrite:
        from oculi.errors import ConfigError

        raise ConfigError(f"{output} already holds a model bundle; pass another --output folder (or --overwrite).")
    spec = JobSpec(algorithm=algorithm, channels={k: str(v) for k, v in channels.items()},
                   hyperparameters=_params(param), recipe=load_recipe(recipe) if recipe else None, name=name,
                   output=str(output) if output else None, init_model=str(init_model) if init_model else None,
                   image_roots={k: str(v) for k, v in roots.items()} if roots else None)
    store = JobStore()
    job = submit(spec, store, attached=not detach)
    if detach:
        started = dispatch(store)
        state = "started" if job["name"] in started else "queued (InProgress/Pending)"
        console.print(f"job {job['name']} {state}; log {job['log_path']}")
        console.print(f"follow it: oculi jobs logs {job['name']} --follow   ·   wait: oculi jobs wait {job['name']}")
        return
    console.print(f"job {job['name']} (log {job['log_path']})")
    job = run_attached(job, store, echo=console.print)
    result = job.get("result")
    if job["secondary_status"] == "Stopped" or result is None:
        console.print(f"job {job['name']} {job['secondary_status']}; resume it with `oculi jobs resume {job['name']}`")
        return
    shown = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    console.print(f"[bold green]done[/] in {result.seconds:.0f} s. Best epoch {result.best_epoch}: {shown}")
    console.print(f"model bundle: {result.model_dir}  (model.json, weights.safetensors)")
    console.print(f"per-epoch metrics: {result.model_dir / 'metrics.csv'} and `oculi jobs metrics {job['name']}`; "
                  f"checkpoints: {Path(job['job_dir']) / 'checkpoints'}")


def _params(param: list[str] | None) -> dict[str, str]:
    from oculi.config import parse_assignments

    return parse_assignments(param or [])


def demo(
    output: Path = typer.Option(Path("demo-output"), "--output", "-o", help="Folder for the demo's data, model "
                                "and report."),
    epochs: int = typer.Option(8, "--epochs", help="Training epochs."),
) -> None:
    """Train, evaluate and use an image classifier on real handwritten digits (scikit-learn's bundled copy);
    no network, no other data needed.

    Example: oculi demo --output demo-output
    """
    from oculi.demo import run_demo

    run_demo(output, epochs=epochs, echo=console.print)
