"""The ``oculi`` command line: thin commands over the Python API. User mistakes print a message and exit with
the error's code; ``--debug`` shows the traceback."""

from __future__ import annotations

import os
import sys

import typer

from oculi.cli import algorithms as _algorithms
from oculi.cli import analysis as _analysis
from oculi.cli import console as _console
from oculi.cli import data as _data
from oculi.cli import evaluate as _evaluate
from oculi.cli import explain as _explain
from oculi.cli import export as _export
from oculi.cli import jobs as _jobs
from oculi.cli import label as _label
from oculi.cli import models as _models
from oculi.cli import monitor as _monitor
from oculi.cli import predict as _predict
from oculi.cli import serve as _serve
from oculi.cli import train as _train
from oculi.cli import transform as _transform
from oculi.cli import tune as _tune
from oculi.cli.common import err_console
from oculi.errors import OculiError

app = typer.Typer(
    name="oculi",
    help="The SageMaker computer-vision workflow on your own machine: label and audit data, train built-in "
    "algorithms or your own script, tune, evaluate and explain, predict, serve, batch-transform, export for the "
    "edge, and watch it all in `oculi console`.\n\n"
    "Example: oculi train image-classification --train data/train -p epochs=5",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("train")(_train.train)
app.command("evaluate")(_evaluate.evaluate)
app.command("predict")(_predict.predict)
app.command("serve")(_serve.serve)
app.command("transform")(_transform.transform)
app.command("explain")(_explain.explain)
app.command("export")(_export.export)
app.command("benchmark")(_export.benchmark)
app.command("demo")(_train.demo)
app.command("console")(_console.console)
app.command("embed")(_analysis.embed)
app.command("search")(_analysis.search)
app.command("tag")(_analysis.tag)
_data.app.command("audit")(_analysis.audit)
app.command("tune")(_tune.tune)
app.add_typer(_data.app, name="data")
app.add_typer(_algorithms.app, name="algorithms")
app.add_typer(_jobs.app, name="jobs")
app.add_typer(_label.app, name="label")
app.add_typer(_models.app, name="models")
app.add_typer(_monitor.app, name="monitor")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    if debug:
        os.environ["OCULI_DEBUG"] = "1"


def _debug() -> bool:
    """``OCULI_DEBUG`` (set by ``--debug``); a bad value of any variable is itself the error shown, so False."""
    from oculi.settings import settings

    try:
        return settings().debug
    except OculiError:
        return False


def main() -> None:
    """Console-script entry point: run the app (typer handles usage errors, exit codes and Ctrl-C → 130) and
    turn :class:`OculiError` into a message and its exit code."""
    try:
        app()
    except OculiError as e:
        if _debug():
            raise
        report = getattr(e, "report", None)
        if report is not None and hasattr(report, "render"):
            report.render(err_console)
        err_console.print(f"[bold red]error:[/] {e}")
        sys.exit(e.exit_code)
