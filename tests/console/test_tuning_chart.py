"""The tuning page's parallel coordinates, laid out on the server: axes per range kind and scale, one line per
finished trial."""

from __future__ import annotations

from typing import Any

from oculi.console.tuning import parallel_coordinates
from oculi.tuning.ranges import CategoricalParameter, ContinuousParameter, IntegerParameter

RANGES = {"learning_rate": ContinuousParameter(0.0001, 0.1, "Logarithmic"),
          "momentum": ContinuousParameter(0.5, 0.99, "ReverseLogarithmic"),
          "mini_batch_size": IntegerParameter(8, 32), "optimizer": CategoricalParameter(["sgd", "adam", "nag"])}


def row(index: int, state: str, objective: float | None, **values: str) -> dict[str, Any]:
    status = {"COMPLETE": "Completed", "PRUNED": "Stopped", "FAIL": "Failed", "RUNNING": "InProgress"}[state]
    return {"index": index, "job": f"t-{index:03d}", "state": state, "status": status, "secondary_status": status,
            "objective": objective, "hyperparameters": values}


def test_axes_lines_and_the_best_trial() -> None:
    hp = {"learning_rate": "0.001", "momentum": "0.9", "mini_batch_size": "16", "optimizer": "adam"}
    rows = [row(1, "COMPLETE", 0.5, **hp), row(2, "COMPLETE", 0.8, **{**hp, "learning_rate": "0.01"}),
            row(3, "PRUNED", None, **hp), row(4, "RUNNING", None, **hp), row(5, "COMPLETE", 0.6, **hp)]
    chart = parallel_coordinates(rows, RANGES, "validation:accuracy", maximize=True, best="t-002")
    axes = {a["name"]: a for a in chart["axes"]}
    assert list(axes) == [*RANGES, "validation:accuracy"]
    assert [a["scale"] for a in chart["axes"]] == ["log", "reverse-log", "linear", "categorical", "objective"]
    assert [t["label"] for t in axes["learning_rate"]["ticks"]][::2] == ["0.0001", "0.001", "0.01", "0.1"]
    assert [t["label"] for t in axes["optimizer"]["ticks"]] == ["sgd", "adam", "nag"]
    assert {t["label"] for t in axes["momentum"]["ticks"]} >= {"0.9", "0.99"}
    assert all(float(t["label"]) == int(float(t["label"])) for t in axes["mini_batch_size"]["ticks"])
    # the log axis puts 0.001 a third of the way up, 0.01 two thirds (drawn between top and bottom)
    lines = {line["job"]: line for line in chart["lines"]}
    assert sorted(lines) == ["t-001", "t-002", "t-005"] and [f["job"] for f in chart["faint"]] == ["t-003"]
    assert chart["running"] == 1
    height = chart["bottom"] - chart["top"]
    y = float(lines["t-001"]["points"].split()[0].split(",")[1])
    assert abs((chart["bottom"] - y) / height - 1 / 3) < 0.01
    assert (lines["t-002"]["best"], lines["t-002"]["shade"], lines["t-001"]["shade"], lines["t-005"]["shade"]) == (
        True, 10, 0, 3)
    assert chart["lines"][-1]["job"] == "t-002"  # the best is drawn last, on top
    assert len(lines["t-001"]["points"].split()) == 5 and len(chart["faint"][0]["points"].split()) == 4
    minimized = parallel_coordinates(rows, RANGES, "validation:loss", maximize=False, best="t-001")
    assert {line["job"]: line["shade"] for line in minimized["lines"]}["t-001"] == 10


def test_nothing_to_draw_before_a_trial_ends() -> None:
    assert parallel_coordinates([row(1, "RUNNING", None)], RANGES, "validation:accuracy", True, None) is None
