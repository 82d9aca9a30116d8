"""``oculi jobs``: list, describe, logs, metrics, stop, resume and wait for training jobs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from oculi.cli.common import console

app = typer.Typer(help="Training jobs: every `oculi train` is one. Example: oculi jobs list --status InProgress",
                  no_args_is_help=True)


def _store():  # noqa: ANN202 - the store, after finding dead workers and starting queued jobs
    from oculi.jobs.runner import dispatch
    from oculi.jobs.store import JobStore

    store = JobStore()
    dispatch(store)
    return store


@app.command("list")
def list_jobs(
    status: str | None = typer.Option(None, "--status", help="InProgress, Completed, Failed, Stopping or Stopped."),
    algorithm: str | None = typer.Option(None, "--algorithm", help="Only jobs of this algorithm."),
    limit: int = typer.Option(50, "--limit", help="At most this many (newest first)."),
) -> None:
    """List jobs (training and batch transform), newest first.

    Example: oculi jobs list --status Failed --algorithm image-classification
    """
    from rich.table import Table

    from oculi.errors import ConfigError
    from oculi.jobs.describe import latest_metrics
    from oculi.jobs.status import PRIMARY_STATUSES
    from oculi.jobs.store import iso

    if status is not None and status not in PRIMARY_STATUSES:
        raise ConfigError(f"--status {status!r} is not a job status; use one of {', '.join(PRIMARY_STATUSES)}.")
    store = _store()
    jobs = store.list(status=status, algorithm=algorithm, limit=limit)
    if not jobs:
        console.print(f"no training jobs{' matching' if status or algorithm else ''} in {store.where()}")
        return
    table = Table("name", "algorithm", "status", "created", "duration", "metric", box=None)
    for column in table.columns:
        column.no_wrap = True
    for job in jobs:
        end = job["training_end"] or (job["updated_at"] if job["status"] != "InProgress" else None)
        start = job["training_start"]
        duration = f"{(end or __import__('time').time()) - start:.0f} s" if start else ""
        final = job["final_metrics"] or latest_metrics(store.metrics(job["name"]))
        if job["kind"] == "transform":
            shown = f"transform: {final.get('Done', 0)} done, {final.get('Failed', 0)} failed"
        else:
            shown = next((f"{k} {v:.4f}" for k, v in final.items()
                          if k.startswith("validation:") and "loss" not in k), "")
        table.add_row(job["name"], job["algorithm"], f"{job['status']}/{job['secondary_status']}",
                      (iso(job["created_at"]) or "")[:19].replace("T", " "), duration, shown)
    wide = console if console.is_terminal else __import__("rich.console").console.Console(width=200, highlight=False)
    wide.print(table)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="Job name.")) -> None:
    """Print a job as JSON in the shape of SageMaker's DescribeTrainingJob.

    Example: oculi jobs describe image-classification-2026-01-31-12-00-00-000
    """
    from oculi.jobs.describe import describe as shape

    store = _store()
    job = store.get(name)
    if job["kind"] == "tuning":  # DescribeHyperParameterTuningJob
        from oculi.tuning.report import describe as shape
    print(json.dumps(shape(job, store), indent=2))


@app.command("logs")
def logs(name: str = typer.Argument(..., help="Job name."),
         follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing until the job ends.")) -> None:
    """Print a job's log.

    Example: oculi jobs logs my-job --follow
    """
    from oculi.jobs.runner import follow_log

    store = _store()

    def write(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    follow_log(store.get(name), store, write, follow=follow)


@app.command("metrics")
def metrics(name: str = typer.Argument(..., help="Job name."),
            plot: Path | None = typer.Option(None, "--plot", help="Also draw the curves into this PNG.")) -> None:
    """Print a job's per-epoch metrics as a table (a script job's: each metric definition's values in the order
    the script printed them).

    Example: oculi jobs metrics my-job --plot curves.png
    """
    from rich.table import Table

    from oculi.jobs.describe import metric_table, plot_metrics

    store = _store()
    job = store.get(name)
    rows = store.metrics(name)
    if not rows:
        console.print(f"job {name} has no metrics yet ({job['status']}/{job['secondary_status']})")
        return
    names, table_rows = metric_table(rows)
    by_epoch = all(r["epoch"] is not None for r in table_rows)
    table = Table("epoch", "step", *names, box=None) if by_epoch else Table("value #", *names, box=None)
    for r in table_rows:
        first = [str(r["epoch"]), str(r["step"])] if by_epoch else [str(r["step"] + 1)]
        table.add_row(*first, *(f"{r[n]:.4f}" if n in r else "" for n in names))
    console.print(table)
    if plot is not None:
        plot_metrics(rows, plot, name)
        console.print(f"curves: {plot}")


@app.command("stop")
def stop(name: str = typer.Argument(..., help="Job name."),
         wait: bool = typer.Option(False, "--wait", help="Return only once the job has stopped.")) -> None:
    """Stop a job: a built-in (or distributed) job writes a checkpoint at the next step boundary and ends Stopped
    within seconds; a script job's process group gets SIGTERM (SageMaker's stop; SIGKILL 30 s later) so the script
    can save to SM_CHECKPOINT_DIR. Resume it later with `oculi jobs resume`.

    Example: oculi jobs stop my-job --wait
    """
    from oculi.jobs.runner import stop as request_stop
    from oculi.jobs.runner import wait as wait_for

    store = _store()
    job = request_stop(name, store)
    console.print(f"{name}: {job['status']}/{job['secondary_status']}")
    if wait:
        job = wait_for(name, store)
        console.print(f"{name}: {job['status']}/{job['secondary_status']}")


@app.command("resume")
def resume(
    name: str = typer.Argument(..., help="Job name."),
    epochs: int | None = typer.Option(None, "--epochs", help="New total number of epochs (extends a finished job; "
                                      "a script job gets it as --epochs)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return at once; the job runs in the background."),
) -> None:
    """Continue a Stopped or Failed job from its last checkpoint (model, optimizer, schedule, RNG, epoch/step and
    the position in the data, so a stop mid-epoch resumes exactly), or extend a Completed one with --epochs.
    A script job runs its script again with the same arguments and SM_CHECKPOINT_DIR (--epochs N becomes its
    --epochs argument); the script restores what it saved there.

    Example: oculi jobs resume my-job --epochs 20
    """
    from oculi.jobs.progress import follow_progress
    from oculi.jobs.runner import dispatch, run_attached
    from oculi.jobs.runner import resume as requeue

    store = _store()
    if store.get(name)["kind"] == "tuning":
        _resume_tuning(name, detach)
        return
    job = requeue(name, epochs, store, attached=not detach)
    console.print(f"{name}: {job['status']}/{job['secondary_status']} — "
                  f"{store.transitions(name)[-1]['message']}")
    if detach:
        dispatch(store)
        console.print(f"follow it with `oculi jobs logs {name} --follow`")
        return
    with follow_progress(job["job_dir"], console, enabled=not job["spec"].get("entry_point")):
        job = run_attached(job, store, echo=console.print)
    _report_end(job)


def _resume_tuning(name: str, detach: bool) -> None:
    """A tuning job continues its study: finished trials are kept, running ones waited for, none repeated."""
    from oculi.cli.tune import run_and_report
    from oculi.tuning import tuner

    job = tuner.resume(name)
    console.print(f"{name}: {job['status']}/{job['secondary_status']} — resuming the tuning job")
    if detach:
        tuner.start_detached(name)
        console.print(f"follow it with `oculi jobs logs {name} --follow`")
        return
    run_and_report(name)


@app.command("wait")
def wait(name: str = typer.Argument(..., help="Job name."),
         timeout: float | None = typer.Option(None, "--timeout", help="Give up after this many seconds."),
         no_progress: bool = typer.Option(False, "--no-progress", help="Hide the step bar drawn on a terminal "
                                          "while a built-in algorithm's job trains.")) -> None:
    """Wait until a job ends; exits 0 when it Completed or Stopped, 5 when it Failed.

    Example: oculi jobs wait my-job
    """
    from oculi.jobs.progress import follow_progress
    from oculi.jobs.runner import wait as wait_for
    from oculi.jobs.status import TERMINAL

    store = _store()
    job = store.get(name)
    # a step bar on a terminal while a built-in algorithm's job trains (a script reports no steps)
    trains = job.get("kind", "training") == "training" and not job["spec"].get("entry_point")
    with follow_progress(job["job_dir"], console,
                         enabled=trains and not no_progress and job["secondary_status"] not in TERMINAL):
        job = wait_for(name, store, timeout=timeout,
                       on_change=lambda j: console.print(f"{name}: {j['status']}/{j['secondary_status']}"))
    _report_end(job)


def _report_end(job: dict) -> None:
    from oculi.errors import JobError

    if job["secondary_status"] == "Failed":
        raise JobError(f"job {job['name']} failed: {job['failure_reason']}")
    if job["kind"] == "transform":
        counts = job["final_metrics"] or {}
        console.print(f"{job['name']}: {job['status']}. {counts.get('Done', 0)} done, {counts.get('Skipped', 0)} "
                      f"skipped, {counts.get('Failed', 0)} failed")
        console.print(f"results: {job['spec']['output']}")
        return
    metrics = job.get("final_metrics") or {}
    shown = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    console.print(f"{job['name']}: {job['status']}. {shown}")
    console.print(f"model bundle: {job['model_dir']}")


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs OCULI_TOKEN."),
    port: int = typer.Option(8080, "--port", help="TCP port."),
    allowed_hosts: str = typer.Option("", "--allowed-hosts", help="Extra names (comma-separated) the server "
                                      "answers to in the Host header, besides localhost and the bound address "
                                      "(a leading dot: its subdomains). Also OCULI_ALLOWED_HOSTS."),
) -> None:
    """Serve the control-plane REST API (create, list, describe, stop jobs; metrics; logs) and run the queue.
    The OpenAPI schema is at /openapi.json, docs at /docs. Without OCULI_TOKEN, a script-mode job (EntryPoint)
    needs the per-process token the server writes to $OCULI_HOME/servers/PORT.token.

    Example: OCULI_TOKEN=secret oculi jobs serve --host 0.0.0.0 --port 8080
    """
    from oculi.serving.control import serve as run
    from oculi.serving.guard import split_hosts

    run(host, port, allowed_hosts=split_hosts(allowed_hosts), echo=console.print)
