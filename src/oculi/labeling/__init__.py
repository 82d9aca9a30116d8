"""Labeling jobs (Ground Truth's shapes): the store records and item queue (:mod:`oculi.labeling.jobs`), what each
annotation kind draws and writes (:mod:`oculi.labeling.kinds`), mask files (:mod:`oculi.labeling.masks`), and
model assistance — pre-labels, the uncertainty queue, automated labeling (:mod:`oculi.labeling.auto`).

:class:`LabelingJob` is the Python API (``oculi.LabelingJob``), shaped like the SageMaker SDK's calls::

    job = oculi.LabelingJob.create("bees-1", task="detection", input="photos/", classes=["bee", "wasp"])
    job.describe()["LabelCounters"]
    job.export()            # OUTPUT/manifests/output/output.manifest
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from oculi.jobs.store import JobStore


class LabelingJob:
    """One labeling job in the store, by name."""

    def __init__(self, name: str, store: JobStore | None = None) -> None:
        self.name = name
        self.store = store or JobStore()
        self.store.labeling_job(name)  # raises JobError when there is none

    @classmethod
    def create(cls, name: str, task: str, input: str | Path, classes: list[str] | str,  # noqa: A002
               store: JobStore | None = None, **options: Any) -> LabelingJob:
        """CreateLabelingJob: see :func:`oculi.labeling.jobs.create` for ``options`` (multi_label, instructions,
        output, label_attribute)."""
        from oculi.labeling import jobs

        store = store or JobStore()
        jobs.create(name, task, input, classes, store=store, **options)
        return cls(name, store)

    @classmethod
    def list(cls, store: JobStore | None = None) -> list[dict[str, Any]]:
        """ListLabelingJobs: one summary per job, newest first."""
        from oculi.labeling import jobs

        return jobs.list_jobs(store)

    def describe(self) -> dict[str, Any]:
        """DescribeLabelingJob's answer (status, LabelCounters, output, automated-labeling rounds)."""
        from oculi.labeling import jobs

        return jobs.describe(self.name, self.store)

    def stop(self) -> dict[str, Any]:
        """StopLabelingJob; the labels made so far are written to the output manifest."""
        from oculi.labeling import jobs

        jobs.stop(self.name, self.store)
        return self.describe()

    def export(self, to: str | Path | None = None) -> Path:
        """Write the output manifest (Ground Truth's ``output.manifest``); returns its path."""
        from oculi.labeling import jobs

        return jobs.export(self.name, to, self.store)

    def prelabel(self, model: str | Path, **options: Any) -> int:
        """Pre-label the unlabeled items with a model bundle of the job's task and order the queue by the model's
        uncertainty; see :func:`oculi.labeling.auto.prelabel`."""
        from oculi.labeling import auto

        return auto.prelabel(self.name, model, store=self.store, **options)

    def auto_label(self, **options: Any) -> dict[str, Any]:
        """One round of automated labeling; see :func:`oculi.labeling.auto.auto_label`."""
        from oculi.labeling import auto

        return auto.auto_label(self.name, store=self.store, **options)


__all__ = ["LabelingJob"]
