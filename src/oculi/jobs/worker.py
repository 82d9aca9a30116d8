"""``python -m oculi.jobs.worker NAME``: the child process that runs one detached job, then starts the next
pending one. Its stdout/stderr go to the job's log (the runner opens it)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m oculi.jobs.worker JOB_NAME", file=sys.stderr)
        return 2
    from oculi.jobs.runner import dispatch, run_job
    from oculi.jobs.store import JobStore

    store = JobStore()
    job = run_job(argv[1], store)
    try:
        dispatch(store)  # this slot is free now: start the next pending job
    finally:
        store.dispose()
    return 0 if job["status"] in ("Completed", "Stopped") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
