"""The training-job status machine, in SageMaker's words.

A job's state is its *secondary* status; the primary ``TrainingJobStatus`` follows from it (``PRIMARY``)::

    (created) → Pending → Starting → Training → Uploading → Completed
                   │          │          │          │
                   └──────────┴──────────┴──────────┴──→ Stopping → Stopped
                                         Training / Uploading / Stopping ──→ MaxRuntimeExceeded  (primary Stopped)
                   └──────────┴──────────┴──────────┴──→ Failed       (Stopping → Failed too)
    Completed / Stopped / MaxRuntimeExceeded / Failed → Pending        (``oculi jobs resume``)

``MaxRuntimeExceeded`` is SageMaker's: the job reached ``StoppingCondition.MaxRuntimeInSeconds`` (the
``max_runtime`` hyperparameter) and stopped; as in SageMaker, its model (the best epoch so far) is written.

A batch transform job (``kind`` ``transform``) runs ``Starting → Transforming → Completed`` instead, with the same
stop and failure edges; it is never resumed (rerunning the transform skips the images already done). A
hyperparameter tuning job (``kind`` ``tuning``) runs ``Starting → Tuning → Completed`` while its trials are
training jobs of their own.

Every other change is illegal and raises :class:`IllegalTransition`: a finished job never silently becomes
``InProgress`` again except through resume, and a job never skips ``Starting`` (where its worker is recorded).
"""

from __future__ import annotations

from oculi.errors import JobError

# TrainingJobStatus values.
IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED = "InProgress", "Completed", "Failed", "Stopping", "Stopped"
PRIMARY_STATUSES = (IN_PROGRESS, COMPLETED, FAILED, STOPPING, STOPPED)

# The SecondaryStatus values oculi uses (a subset of SageMaker's; no instances to launch, no image to download).
PENDING, STARTING, TRAINING, UPLOADING = "Pending", "Starting", "Training", "Uploading"
TRANSFORMING = "Transforming"  # a batch transform job's working state (oculi's; SageMaker reports only the primary)
TUNING = "Tuning"  # a tuning job's working state (oculi's; SageMaker reports only HyperParameterTuningJobStatus)
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
SECONDARY_STATUSES = (PENDING, STARTING, TRAINING, UPLOADING, STOPPING, STOPPED, COMPLETED, FAILED, TRANSFORMING,
                      MAX_RUNTIME_EXCEEDED, TUNING)

PRIMARY: dict[str, str] = {
    PENDING: IN_PROGRESS, STARTING: IN_PROGRESS, TRAINING: IN_PROGRESS, UPLOADING: IN_PROGRESS,
    STOPPING: STOPPING, STOPPED: STOPPED, COMPLETED: COMPLETED, FAILED: FAILED,
    TRANSFORMING: IN_PROGRESS, MAX_RUNTIME_EXCEEDED: STOPPED, TUNING: IN_PROGRESS,
}

# Secondary statuses a worker process owns (it must be alive while the job is in one of them).
ACTIVE = frozenset({STARTING, TRAINING, UPLOADING, STOPPING, TRANSFORMING, TUNING})
TERMINAL = frozenset({COMPLETED, FAILED, STOPPED, MAX_RUNTIME_EXCEEDED})

TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({PENDING}),  # a new job waits for a slot in the local queue
    PENDING: frozenset({STARTING, STOPPING, FAILED}),
    STARTING: frozenset({TRAINING, TRANSFORMING, TUNING, STOPPING, FAILED}),
    TUNING: frozenset({COMPLETED, STOPPING, FAILED}),
    TRANSFORMING: frozenset({COMPLETED, STOPPING, FAILED}),
    TRAINING: frozenset({UPLOADING, STOPPING, FAILED, MAX_RUNTIME_EXCEEDED}),
    UPLOADING: frozenset({COMPLETED, STOPPING, FAILED, MAX_RUNTIME_EXCEEDED}),
    STOPPING: frozenset({STOPPED, FAILED, MAX_RUNTIME_EXCEEDED}),
    COMPLETED: frozenset({PENDING}),  # resume --epochs N extends a finished job
    STOPPED: frozenset({PENDING}),
    MAX_RUNTIME_EXCEEDED: frozenset({PENDING}),
    FAILED: frozenset({PENDING}),
}


class IllegalTransition(JobError):
    """A status change the job lifecycle does not allow (e.g. Completed → Training)."""


def is_legal(current: str | None, new: str) -> bool:
    """Whether a job in secondary status ``current`` (None: not created yet) may move to ``new``."""
    return new in TRANSITIONS.get(current, frozenset())


def check_transition(current: str | None, new: str, job: str = "the job") -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is legal; the message says what is allowed."""
    if new not in PRIMARY:
        raise IllegalTransition(f"{new!r} is not a job status; expected one of {', '.join(SECONDARY_STATUSES)}.")
    if not is_legal(current, new):
        allowed = ", ".join(sorted(TRANSITIONS.get(current, ()))) or "nothing"
        where = "a new job" if current is None else f"{job} is {PRIMARY[current]}/{current}"
        raise IllegalTransition(f"Cannot move {job} to {PRIMARY[new]}/{new}: {where}, which may only move to "
                                f"{allowed}.")
