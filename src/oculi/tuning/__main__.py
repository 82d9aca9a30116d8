"""``python -m oculi.tuning NAME``: the background process of ``oculi tune --detach`` (its output goes to the
tuning job's log)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    """Run tuning job ``argv[1]`` (Pending) until it ends."""
    if len(argv) != 2:
        print("usage: python -m oculi.tuning TUNING_JOB_NAME", file=sys.stderr)
        return 2
    from oculi.tuning.tuner import run

    job = run(argv[1])
    return 0 if job["status"] in ("Completed", "Stopped") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
