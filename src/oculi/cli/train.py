"""``oculi train`` and ``oculi demo``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from oculi.cli.common import console, parse_channels, parse_image_roots


def train(
    algorithm: str | None = typer.Argument(None, help="Algorithm to train; see `oculi algorithms list`. Leave out "
                                           "with --entry-point."),
    train: Path | None = typer.Option(None, "--train", help="Training channel: class folders, a .lst file or an "
                                      "augmented manifest."),
    validation: Path | None = typer.Option(None, "--validation", help="Validation channel (same forms). Without "
                                           "it a seeded, stratified part of the training data is held out."),
    channel: list[str] | None = typer.Option(None, "--channel", "-c", help="Any SageMaker channel as NAME=PATH "
                                             "(train_lst, validation_lst, train_annotation, label_map, model, …). "
                                             "Repeatable."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="Hyperparameter as name=value "
                                           "(SageMaker string forms accepted). Repeatable."),
    recipe: Path | None = typer.Option(None, "--recipe", help="Hyperparameters file: JSON (SageMaker's "
                                       "hyperparameters.json) or name=value lines; -p values win."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder for the model bundle (default: "
                                       "$OCULI_HOME/jobs/NAME/output/model). With --entry-point: the run folder "
                                       "(model/ = SM_MODEL_DIR, output/ = SM_OUTPUT_DIR, input/, metrics.csv; "
                                       "default: the job folder)."),
    init_model: Path | None = typer.Option(None, "--init-model", help="Start from an earlier oculi model bundle "
                                           "of the same architecture (SageMaker's `model` channel)."),
    image_root: list[str] | None = typer.Option(None, "--image-root", help="Map an S3 prefix in a manifest to a "
                                                "local folder: s3://bucket/prefix=DIR. Repeatable."),
    label_attribute: str | None = typer.Option(None, "--label-attribute", help="Augmented manifests: the "
                                               "attribute that holds the labels, when the lines have several "
                                               "(same as -p label_attribute=NAME)."),
    max_runtime: float | None = typer.Option(None, "--max-runtime", help="Seconds of training (SageMaker's "
                                             "MaxRuntimeInSeconds; same as -p max_runtime=S): the run stops there "
                                             "with a checkpoint and the best model, and with epochs and "
                                             "lr_scheduler left auto plans its epochs and schedule to fit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Allow writing over an existing bundle in --output."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the step progress bar (drawn only when the "
                                     "output is a terminal; a log or a pipe gets one line per epoch)."),
    name: str | None = typer.Option(None, "--name", help="Job name (default <algorithm or script>-YYYY-MM-DD-"
                                    "HH-MM-SS-mmm)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return at once: the job runs in a background "
                                "process (queued while OCULI_MAX_PARALLEL_JOBS jobs run). Follow it with "
                                "`oculi jobs logs NAME --follow`. Works in script mode and distributed runs too."),
    entry_point: Path | None = typer.Option(None, "--entry-point", help="Script mode: run your own training script "
                                            "(e.g. PyTorch Lightning) as a job with SageMaker's SM_* environment "
                                            "instead of a built-in algorithm; SM_CHECKPOINT_DIR survives `oculi "
                                            "jobs resume`.", rich_help_panel="Script mode"),
    source_dir: Path | None = typer.Option(None, "--source-dir", help="Folder with the script and its modules "
                                           "(working directory, on PYTHONPATH); --entry-point is relative to it.",
                                           rich_help_panel="Script mode"),
    metric_definition: list[str] | None = typer.Option(
        None, "--metric-definition", "-m", help="NAME=REGEX read from the script's output; the first capture "
        "group is the value, e.g. 'validation:accuracy=val_accuracy=([0-9.]+)'. Repeatable.",
        rich_help_panel="Script mode"),
    nodes: int | None = typer.Option(None, "--nodes", help="Machines in a distributed run (torchrun --nnodes); "
                                     "run the same command on each with its --node-rank.",
                                     rich_help_panel="Distributed training"),
    devices: int | None = typer.Option(None, "--devices", help="Processes per machine (GPUs, or CPU processes "
                                       "over gloo); mini_batch_size is split across them.",
                                       rich_help_panel="Distributed training"),
    node_rank: int | None = typer.Option(None, "--node-rank", help="This machine's rank, 0 … nodes-1 (default: "
                                         "$NODE_RANK).", rich_help_panel="Distributed training"),
    master_addr: str | None = typer.Option(None, "--master-addr", help="Address of node 0, reachable from every "
                                           "machine (default: $MASTER_ADDR).", rich_help_panel="Distributed training"),
    master_port: int | None = typer.Option(None, "--master-port", help="Free TCP port on node 0 (default: "
                                           "$MASTER_PORT or 29500).", rich_help_panel="Distributed training"),
) -> None:
    """Train a built-in algorithm and write a model bundle (model.json + weights.safetensors), or run your own
    training script (--entry-point) with SageMaker's script-mode contract.
    Every run — built-in, script mode or distributed — is a training job in the store (`oculi jobs list`):
    --detach runs it in the background; `oculi jobs stop NAME` checkpoints and stops it, `oculi jobs resume NAME`
    continues it (a script gets the same SM_CHECKPOINT_DIR back).

    Example: oculi train image-classification --train data/train --validation data/val
    -p architecture=efficientnet-lite0 -p use_pretrained_model=1 -p epochs=5 --output models/ants

    The best model in 15 minutes: oculi train object-detection --train bees --max-runtime 900

    Segmentation: oculi train semantic-segmentation --train em/train -c train_annotation=em/train_annotation
    --validation em/validation -c validation_annotation=em/validation_annotation -p num_classes=2 --output models/em

    Script mode: oculi train --entry-point train.py --source-dir examples/mnist_lightning
    --train ../shared/data/mnist5k -p epochs=3 --metric-definition 'validation:accuracy=val_accuracy=([0-9.]+)'
    --name mnist-1 --detach

    Distributed (DDP): oculi train image-classification --train data/train -p instance_count=2 (2 processes on
    this machine); across 2 machines run on each: oculi train … --nodes 2 --devices 1 --node-rank R
    --master-addr 10.0.0.1 --master-port 29500 --output models/run
    """
    from oculi.config import load_recipe
    from oculi.errors import ConfigError

    distributed_given = any(v is not None for v in (nodes, devices, node_rank, master_addr, master_port))
    if entry_point is not None:
        if algorithm is not None:
            raise ConfigError(f"Pass either an algorithm ({algorithm}) or --entry-point {entry_point}, not both.")
        if init_model or image_root or recipe or distributed_given:
            raise ConfigError("--init-model, --image-root, --recipe and the distributed options apply to built-in "
                              "algorithms; in script mode pass data as channels and settings as -p name=value.")
    elif algorithm is None:
        raise ConfigError("Name an algorithm (see `oculi algorithms list`), e.g. `oculi train image-classification "
                          "--train data/train`, or run your own script with --entry-point train.py.")
    elif source_dir or metric_definition:
        raise ConfigError("--source-dir and --metric-definition belong to script mode; add --entry-point SCRIPT.")
    param = _with_label_attribute(param, label_attribute, script_mode=entry_point is not None)
    param = _with_max_runtime(param, max_runtime, script_mode=entry_point is not None)
    if "LOCAL_RANK" in os.environ:  # a rank of the user's own torchrun: not a job
        if entry_point is not None:
            raise ConfigError("Script mode does not run under torchrun: start your script with torchrun yourself, "
                              "or run `oculi train --entry-point …` without torchrun.")
        if detach or name:
            raise ConfigError("--detach and --name do not apply under your own torchrun (each rank would record a "
                              "job); run `oculi train … --devices N` instead, which is a job.")
        _train_under_torchrun(algorithm, train, validation, channel, param, recipe, output, init_model, image_root,
                              no_progress, overwrite)
        return
    from oculi.jobs.progress import follow_progress
    from oculi.jobs.runner import JobSpec, dispatch, run_attached, submit
    from oculi.jobs.store import JobStore

    channels = parse_channels(train, validation, channel)
    roots = parse_image_roots(image_root)
    if entry_point is None and output is not None and (output.expanduser() / "model.json").exists() \
            and not overwrite:
        raise ConfigError(f"{output} already holds a model bundle; pass another --output folder (or --overwrite).")
    spec = JobSpec(algorithm=algorithm, channels={k: str(v) for k, v in channels.items()},
                   hyperparameters=_params(param), recipe=load_recipe(recipe) if recipe else None, name=name,
                   output=str(output) if output else None, init_model=str(init_model) if init_model else None,
                   image_roots={k: str(v) for k, v in roots.items()} if roots else None,
                   entry_point=str(entry_point) if entry_point else None,
                   source_dir=str(source_dir) if source_dir else None, metric_definitions=metric_definition or None,
                   distributed={"nodes": nodes, "devices": devices, "node_rank": node_rank,
                                "master_addr": master_addr, "master_port": master_port}
                   if distributed_given else None)
    store = JobStore()
    job = submit(spec, store, attached=not detach)
    if detach:
        started = dispatch(store)
        state = "started" if job["name"] in started else "queued (InProgress/Pending)"
        console.print(f"job {job['name']} {state}; log {job['log_path']}")
        console.print(f"follow it: oculi jobs logs {job['name']} --follow   ·   wait: oculi jobs wait {job['name']}")
        return
    console.print(f"job {job['name']} (log {job['log_path']})")
    # a step bar on a terminal (a script reports no steps: its own output is shown as it comes)
    with follow_progress(job["job_dir"], console, enabled=entry_point is None and not no_progress):
        job = run_attached(job, store, echo=console.print if entry_point is None else _plain)
    result = job.get("result")
    budget = getattr(result, "budget", None)
    if job["secondary_status"] == "Stopped" or result is None:
        console.print(f"job {job['name']} {job['secondary_status']}; resume it with `oculi jobs resume {job['name']}`")
        return
    if budget:
        console.print(f"max_runtime {budget['max_runtime']:g} s: {budget['epochs']} epoch(s)"
                      + (" trained before the limit stopped training (MaxRuntimeExceeded; resume it with `oculi "
                         f"jobs resume {job['name']}`)" if budget["exceeded"] else " fitted in the budget"),
                      markup=False)
    if entry_point is not None:
        _report_script(job, result)
        return
    if not result.metrics:  # a node other than 0 of a multi-machine run
        return
    shown = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    console.print(f"[bold green]done[/] in {result.seconds:.0f} s. Best epoch {result.best_epoch}: {shown}")
    console.print(f"model bundle: {result.model_dir}  (model.json, weights.safetensors)")
    console.print(f"per-epoch metrics: {result.model_dir / 'metrics.csv'} and `oculi jobs metrics {job['name']}`; "
                  f"checkpoints: {Path(job['job_dir']) / 'checkpoints'}")


def _plain(line: str) -> None:
    """A script's output line, printed as is (no rich markup)."""
    console.print(line, markup=False, highlight=False)


def _train_under_torchrun(algorithm: str, train: Path | None, validation: Path | None, channel: list[str] | None,
                          param: list[str] | None, recipe: Path | None, output: Path | None,
                          init_model: Path | None, image_root: list[str] | None, no_progress: bool,
                          overwrite: bool) -> None:
    """One rank of the user's own torchrun (``torchrun … -m oculi.cli train …``): DDP with the layout from
    torchrun's environment, attached and not recorded as a job; rank 0 reports."""
    from oculi.config import load_recipe
    from oculi.engine.training import train as run

    result = run(algorithm, parse_channels(train, validation, channel), _params(param),
                 recipe=load_recipe(recipe) if recipe else None, output=output, init_model=init_model,
                 image_roots=parse_image_roots(image_root), progress=not no_progress, overwrite=overwrite,
                 echo=console.print)
    if os.environ.get("RANK", "0") != "0" or not result.metrics:  # another rank, or a node other than 0
        return
    shown = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    console.print(f"[bold green]done[/] in {result.seconds:.0f} s. Best epoch {result.best_epoch}: {shown}")
    console.print(f"model bundle: {result.model_dir}  (model.json, weights.safetensors)")


def _report_script(job: dict, result: Any) -> None:
    """Where a finished script job's model, metrics and log went."""
    run_dir = Path(job["model_dir"]).parent
    for note in result.notes:
        console.print(note, markup=False)
    console.print(f"[bold green]done[/] in {result.seconds:.0f} s.")
    if result.final_metrics:
        console.print("final metrics: " + "  ".join(f"{k} {v:g}" for k, v in result.final_metrics.items())
                      + f"  (all {len(result.metrics)} values: {run_dir / 'metrics.csv'}, "
                      f"`oculi jobs metrics {job['name']}`)", markup=False)
    elif job["spec"].get("metric_definitions"):
        console.print("warning: no metric definition matched the script's output", markup=False)
    console.print(f"model (SM_MODEL_DIR): {result.model_dir}  ({', '.join(result.model_files) or 'empty'})",
                  markup=False)
    console.print(f"log: {job['log_path']}; other outputs (SM_OUTPUT_DATA_DIR): {result.output_dir / 'data'}; "
                  f"checkpoints (SM_CHECKPOINT_DIR): {Path(job['job_dir']) / 'checkpoints'}", markup=False)


def _with_label_attribute(param: list[str] | None, label_attribute: str | None, script_mode: bool) -> list[str]:
    """``param`` plus ``label_attribute=NAME`` for ``--label-attribute NAME``; a different ``-p label_attribute``
    or script mode (where labels are the script's business) is a :class:`ConfigError`."""
    from oculi.errors import ConfigError

    param = list(param or [])
    if label_attribute is None:
        return param
    if script_mode:
        raise ConfigError("--label-attribute applies to built-in algorithms; a script reads its own channels.")
    given = _params(param).get("label_attribute")
    if given is not None and given != label_attribute:
        raise ConfigError(f"--label-attribute {label_attribute} conflicts with -p label_attribute={given}; pass one.")
    return [*param, f"label_attribute={label_attribute}"] if given is None else param


def _with_max_runtime(param: list[str], max_runtime: float | None, script_mode: bool) -> list[str]:
    """``param`` plus ``max_runtime=S`` for ``--max-runtime S``; a different ``-p max_runtime`` or script mode is a
    :class:`ConfigError`."""
    from oculi.errors import ConfigError

    if max_runtime is None:
        return param
    if script_mode:
        raise ConfigError("--max-runtime applies to built-in algorithms; a script keeps its own time.")
    given = _params(param).get("max_runtime")
    try:
        same = given is None or float(given) == max_runtime
    except ValueError:
        same = False
    if not same:
        raise ConfigError(f"--max-runtime {max_runtime:g} conflicts with -p max_runtime={given}; pass one.")
    return [*param, f"max_runtime={max_runtime:g}"] if given is None else param


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
