"""``oculi monitor``: image-native model monitoring in SageMaker Model Monitor's file shapes — a baseline from the
training data, drift checks on captured traffic (``oculi serve --capture``), schedules, model quality against
returned labels, and drifted windows sent to labeling."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from oculi.cli.common import console, err_console, parse_image_roots
from oculi.errors import ConfigError

app = typer.Typer(help="Model monitoring for images: `baseline` from the training data, `run` a drift check on "
                  "captured traffic, `schedule` checks (`executions` lists them), `quality` once labels come "
                  "back, `export-for-labeling` of a drifted window. Example: oculi monitor baseline models/bees "
                  "--data data/bees --output base/",
                  no_args_is_help=True)

CaptureOption = typer.Option(..., "--capture", help="The capture folder of `oculi serve --capture DIR`.")
BaselineOption = typer.Option(..., "--baseline", help="A folder written by `oculi monitor baseline`.")


def show_bad_lines(lines: list[dict], what: str) -> None:
    """Print the first ten unreadable lines (file:line, why) and how many more the output file lists."""
    for bad in lines[:10]:
        console.print(f"bad {what} line {bad['file']}:{bad['line']}: {bad['error']}")
    if len(lines) > 10:
        console.print(f"… {len(lines) - 10} more bad lines (the output's JSON lists them)")


@app.command("baseline")
def baseline(
    model: Path = typer.Argument(..., help="The model bundle the endpoint serves."),
    data: Path = typer.Option(..., "--data", help="Its training data (a dataset path as `oculi train` takes it); "
                              "the training split is measured."),
    output: Path = typer.Option(Path("baseline"), "--output", "-o", help="Folder for statistics.json, "
                                "constraints.json, embeddings.safetensors and baseline.json."),
    sample: int = typer.Option(1000, "--sample", min=2, help="Training images measured at most (a seeded sample)."),
    image_root: list[str] | None = typer.Option(None, "--image-root", help="s3://bucket/prefix=DIR for manifests."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Measure the training images — size, brightness, contrast, saturation, sharpness, colour; the model's
    predictions; its embeddings — and write SageMaker's statistics.json and suggested constraints.json (edit the
    constraints by hand: drift tests, alpha, min_effect, domains).

    Example: oculi monitor baseline models/ants-bees --data ../shared/data/hymenoptera/hymenoptera_data -o base/
    """
    from oculi.monitoring import baseline as run

    info = run(model, data, output, sample=sample, image_roots=parse_image_roots(image_root),
               progress=not no_progress and err_console.is_terminal)
    console.print(f"baseline of {info['images']} images ({info['seconds']:.1f} s): {output / 'statistics.json'}, "
                  f"{output / 'constraints.json'}")
    for path, why in info["failed"]:
        console.print(f"skipped {path}: {why}")


@app.command("run")
def run_check(
    capture: Path = CaptureOption,
    baseline_dir: Path = BaselineOption,
    endpoint: str | None = typer.Option(None, "--endpoint", help="Only this endpoint's captures."),
    since: str | None = typer.Option(None, "--since", help="Window start, ISO 8601 (2026-12-06T10:00:00Z)."),
    until: str | None = typer.Option(None, "--until", help="Window end (exclusive), ISO 8601."),
    output: Path = typer.Option(Path("monitoring"), "--output", "-o", help="Folder for statistics.json, "
                                "constraint_violations.json, drift.json and the window's images."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide the progress bar."),
) -> None:
    """Check captured images against a baseline: Kolmogorov–Smirnov on each image and prediction statistic,
    chi-squared on class mixes and formats, a kernel two-sample test (MMD) on the model's embeddings; p-values
    Holm-corrected. Writes SageMaker's constraint_violations.json. Exit code 0 (no violation) or 3 (violations).

    Example: oculi monitor run --capture capture/ --baseline base/ --since 2026-12-06T00:00:00Z -o checks/today
    """
    from oculi.monitoring import check

    report = check(capture, baseline_dir, output, endpoint=endpoint, since=since, until=until,
                   progress=not no_progress and err_console.is_terminal)
    if report["tests"]:
        table = Table("feature", "test", "effect", "p", "p (Holm)", "drift")
        for t in sorted(report["tests"], key=lambda t: t["p_adjusted"]):
            table.add_row(t["feature"], t["test"], f"{t['effect']:.3g}", f"{t['p_value']:.2g}",
                          f"{t['p_adjusted']:.2g}", "[red]yes[/red]" if t["flagged"] else "no")
        console.print(table)
    for note in report["notes"]:
        console.print(f"note: {note}")
    show_bad_lines(report["bad_lines"], "capture")
    console.print(f"{report['images']} captured images, {report['violations']} violation(s): "
                  f"{output / 'constraint_violations.json'}")
    if report["violations"]:
        raise typer.Exit(3)


@app.command("quality")
def quality(
    capture: Path = CaptureOption,
    ground_truth: Path = typer.Option(..., "--ground-truth", help="Labels of captured requests, JSON lines: "
                                      "SageMaker's groundTruthData records (eventMetadata.inferenceId or eventId), "
                                      "or a labeling job's output manifest (export-for-labeling's images keep "
                                      "their event id as file name)."),
    baseline_dir: Path = BaselineOption,
    window: str = typer.Option("1d", "--window", help="Score per window: 1h, 1d, 7d …"),
    tolerance: float = typer.Option(0.05, "--tolerance", help="A window this far below the training figure is "
                                    "a violation."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Only this endpoint's captures."),
    output: Path = typer.Option(Path("quality"), "--output", "-o", help="Folder for quality.json and "
                                "constraint_violations.json."),
) -> None:
    """Model quality once labels come back: joins the labels to the captured requests by id, scores the model
    (accuracy, mAP or mIoU) per window and compares it with the training-time figure. Exit code 3 on violations.

    Example: oculi monitor quality --capture capture/ --ground-truth labels.jsonl --baseline base/ --window 1d
    """
    from oculi.monitoring import quality as run

    result = run(capture, ground_truth, baseline_dir, output, window=window, tolerance=tolerance,
                 endpoint=endpoint)
    table = Table("window start", "labelled images", result["metric"], "training")
    for row in result["windows"]:
        training = "—" if row["training"] is None else f"{row['training']:.3f}"
        table.add_row(row["start"], str(row["images"]), f"{row[result['metric']]:.3f}", training)
    console.print(table)
    if result["missing"]:
        console.print(f"{len(result['missing'])} label(s) matched no captured request, e.g. {result['missing'][0]}")
    show_bad_lines(result["bad_lines"], "input")
    console.print(f"{result['matched']} of {result['labelled']} labels joined; {result['violations']} violation(s): "
                  f"{output / 'constraint_violations.json'}")
    if result["violations"]:
        raise typer.Exit(3)


@app.command("export-for-labeling")
def export_for_labeling(
    check_dir: Path = typer.Option(..., "--violations", help="The --output folder of `oculi monitor run`."),
    job: str = typer.Option(..., "--to", help="Name of the labeling job to create."),
    confidence_below: float = typer.Option(0.6, "--confidence-below", help="Without a violation, send the images "
                                           "the model is less sure of than this."),
    limit: int = typer.Option(500, "--limit", min=1, help="At most this many images, least confident first."),
) -> None:
    """Send a checked window's images to a new labeling job with the model's answers as pre-labels: all of them
    when the window drifted, else the low-confidence ones. Label them in the console; the job's output manifest is
    --ground-truth for `oculi monitor quality`.

    Example: oculi monitor export-for-labeling --violations checks/today --to bees-drift-1
    """
    from oculi.monitoring import export_for_labeling as run

    result = run(check_dir, job, confidence_below=confidence_below, limit=limit)
    why = "the window drifted" if result["drifted"] else f"confidence below {confidence_below}"
    console.print(f"labeling job {result['job']}: {result['images']} images ({why}), pre-labelled; label them "
                  "with `oculi console` → Labeling")


@app.command("schedule")
def schedule(
    name: str = typer.Argument(..., help="The schedule's name."),
    capture: Path = CaptureOption,
    baseline_dir: Path = BaselineOption,
    every: str = typer.Option("1h", "--every", help="How often: 30s, 15m, 1h, 1d."),
    endpoint: str | None = typer.Option(None, "--endpoint", help="Only this endpoint's captures; its /metrics then "
                                        "shows the latest drift scores."),
    output: Path = typer.Option(Path("monitoring"), "--output", "-o", help="Each execution writes "
                                "OUTPUT/NAME/<time>/."),
    alert_url: str | None = typer.Option(None, "--alert-url", help="POST each violation here as JSON."),
    executions: int | None = typer.Option(None, "--executions", min=1, help="Stop after this many executions "
                                          "(default: run until Ctrl-C or `oculi monitor stop NAME`)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return at once; the schedule runs in the background "
                                "(log: OUTPUT/NAME/schedule.log) until `oculi monitor stop NAME`."),
) -> None:
    """Run drift checks on a schedule: every --every, the traffic captured since the last execution is checked;
    each execution is recorded (`oculi monitor executions NAME`). In this process (Ctrl-C stops it), or with
    --detach in the background. Started again, a schedule resumes from its last window.

    Example: oculi monitor schedule bees-hourly --capture capture/ --baseline base/ --endpoint bees --every 1h -d
    """
    from oculi.monitoring.schedule import parse_every, running, start_detached
    from oculi.monitoring.schedule import schedule as run

    if detach:
        parse_every(every)  # a bad value fails here, not in the log
        if running(name) is not None:
            raise ConfigError(f"monitoring schedule {name!r} already runs (process {running(name)}); stop it "
                              f"first: oculi monitor stop {name}")
        arguments = ["--capture", str(capture.resolve()), "--baseline", str(baseline_dir.resolve()), "--every",
                     every, "--output", str(output.resolve())]
        for flag, value in (("--endpoint", endpoint), ("--alert-url", alert_url), ("--executions", executions)):
            if value is not None:
                arguments += [flag, str(value)]
        pid = start_detached(name, arguments, output)
        console.print(f"schedule {name} runs in the background (process {pid}; log "
                      f"{output.resolve() / name / 'schedule.log'}); `oculi monitor executions {name}` lists its "
                      f"executions, `oculi monitor stop {name}` stops it")
        return

    def show(info: dict) -> None:
        what = info.get("failure_reason") or f"{info['images']} images, {info['violations']} violation(s)"
        console.print(f"{info['ended'][:19]}  {info['status']}: {what} → {info['output']}")
        for error in info.get("alert_errors", []):
            err_console.print(error)

    try:
        run(name, capture=capture, baseline=baseline_dir, every=every, output=output, endpoint=endpoint,
            alert_url=alert_url, max_executions=executions, echo=show)
    except KeyboardInterrupt:
        console.print(f"schedule {name} stopped; `oculi monitor schedule {name} …` resumes from its last window")


@app.command("stop")
def stop_schedule(name: str = typer.Argument(..., help="The schedule's name.")) -> None:
    """Stop the process that runs a schedule (as Ctrl-C would); its executions stay recorded, and `oculi monitor
    schedule NAME …` later resumes from its last window."""
    from oculi.monitoring.schedule import stop

    if stop(name):
        console.print(f"schedule {name} stopped")
    else:
        console.print(f"schedule {name} was not running")


@app.command("schedules")
def list_schedules() -> None:
    """The monitoring schedules (ListMonitoringSchedules): every, endpoint, whether a process runs them, and their
    executions."""
    from oculi.jobs.store import JobStore
    from oculi.monitoring.schedule import SCHEDULE, executions, running

    store = JobStore()
    table = Table("name", "every", "endpoint", "running", "executions", "last status")
    for item in store.registered(SCHEDULE):
        runs = executions(item["name"], store)
        pid = running(item["name"], store)
        table.add_row(item["name"], item["info"].get("every", ""), item["info"].get("endpoint") or "–",
                      f"process {pid}" if pid else "no", str(len(runs)),
                      runs[-1]["info"].get("status", "") if runs else "–")
    console.print(table)


@app.command("executions")
def list_executions(name: str = typer.Argument(..., help="The schedule's name.")) -> None:
    """The recorded executions of a schedule (ListMonitoringExecutions): window, status, images, violations."""
    from oculi.monitoring.schedule import executions

    table = Table("window until", "status", "images", "violations", "output")
    for row in executions(name):
        info = row["info"]
        table.add_row(info["window"]["until"][:19], info["status"], str(info.get("images", "—")),
                      str(info.get("violations", "—")), row["location"])
    console.print(table)
