"""The tuning job's clock (what ResourceLimits.MaxRuntimeInSeconds limits), from its recorded transitions."""

from __future__ import annotations

from typing import Any

from oculi.tuning.report import runtime_seconds


class Transitions:
    """A store stand-in holding one job's transitions as ``(secondary_status, time)``."""

    def __init__(self, *steps: tuple[str, float]) -> None:
        self.steps = steps

    def transitions(self, name: str) -> list[dict[str, Any]]:
        return [{"secondary_status": s, "time": t} for s, t in self.steps]


def test_the_clock_runs_while_in_progress_and_pauses_while_stopped_or_failed() -> None:
    first = [("Pending", 0.0), ("Starting", 10.0), ("Tuning", 11.0), ("Stopping", 50.0), ("Stopped", 70.0)]
    assert runtime_seconds(Transitions(*first), "t", now=1000.0) == 60.0  # stopped: the clock waits
    resumed = [*first, ("Pending", 500.0), ("Starting", 600.0), ("Tuning", 601.0)]
    assert runtime_seconds(Transitions(*resumed), "t", now=630.0) == 90.0  # counts on from where it stopped
    killed = [*resumed, ("Failed", 640.0), ("Pending", 900.0), ("Starting", 905.0), ("Tuning", 906.0),
              ("Completed", 915.0)]
    assert runtime_seconds(Transitions(*killed), "t", now=5000.0) == 110.0
    assert runtime_seconds(Transitions(("Pending", 0.0), ("Stopping", 1.0), ("Stopped", 2.0)), "t", now=9.0) == 0.0
