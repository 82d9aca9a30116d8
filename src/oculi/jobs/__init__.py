"""Training jobs: the store (SQLite or PostgreSQL through SQLAlchemy), the status machine, the local runner
(attached or detached child processes, a queue of at most ``OCULI_MAX_PARALLEL_JOBS``), stop / resume / wait,
DescribeTrainingJob-shaped records, script mode (:mod:`oculi.jobs.script`: your own training script with
SageMaker's ``SM_*`` contract). The SageMaker-style ``Estimator`` (which deploys, so it sits on the serving layer)
is :mod:`oculi.serving.estimator`.

Importing this package does no I/O; the store connects on first use."""

from __future__ import annotations
