"""``oculi algorithms list|describe``."""

from __future__ import annotations

import typer
from rich.table import Column, Table

from oculi.cli.common import console

app = typer.Typer(help="List the built-in algorithms and describe their hyperparameters.", no_args_is_help=True)


@app.command("list")
def list_algorithms() -> None:
    """List every registered algorithm.

    Example: oculi algorithms list
    """
    from oculi.algorithms import ALGORITHMS

    table = Table(Column("algorithm", no_wrap=True), "task", "metric", "summary")
    for name in ALGORITHMS:
        a = ALGORITHMS.get(name)
        table.add_row(name, a.task, a.metric, a.summary)
    console.print(table)


@app.command("describe")
def describe(name: str = typer.Argument(..., help="Algorithm name, e.g. image-classification.")) -> None:
    """Every hyperparameter of an algorithm with its default, valid values and meaning.

    Example: oculi algorithms describe image-classification
    """
    from oculi.algorithms import get_algorithm
    from oculi.config import describe as describe_model

    algorithm = get_algorithm(name)
    console.print(f"[bold]{algorithm.name}[/] — {algorithm.summary}\nobjective metric: {algorithm.metric}; set "
                  "values with -p name=value (SageMaker string forms accepted)\n")
    table = Table(Column("hyperparameter", no_wrap=True), Column("default", max_width=12),
                  Column("valid", max_width=24), Column("meaning", min_width=30))
    for row in describe_model(algorithm.hyperparameters):
        table.add_row(row["name"], row["default"], row["valid"], row["description"])
    console.print(table)
