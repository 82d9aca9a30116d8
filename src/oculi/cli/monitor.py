"""``oculi monitor``: image-native model monitoring in SageMaker Model Monitor's file shapes — a baseline from the
training data, drift checks on captured traffic (``oculi serve --capture``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from oculi.cli.common import console, err_console, parse_image_roots

app = typer.Typer(help="Model monitoring for images: `baseline` from the training data, `run` a drift check on "
                  "captured traffic. Example: oculi monitor baseline models/bees --data data/bees --output base/",
                  no_args_is_help=True)


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
    capture: Path = typer.Option(..., "--capture", help="The capture folder of `oculi serve --capture DIR`."),
    baseline_dir: Path = typer.Option(..., "--baseline", help="A folder written by `oculi monitor baseline`."),
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
    for bad in report["bad_lines"][:10]:
        console.print(f"bad capture line {bad['file']}:{bad['line']}: {bad['error']}")
    if len(report["bad_lines"]) > 10:
        console.print(f"… {len(report['bad_lines']) - 10} more bad lines (drift.json lists them)")
    console.print(f"{report['images']} captured images, {report['violations']} violation(s): "
                  f"{output / 'constraint_violations.json'}")
    if report["violations"]:
        raise typer.Exit(3)
