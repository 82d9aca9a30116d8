"""Data audits (``oculi data audit``) in the store, and their suspects sent to a labeling job for relabeling.

Each audit is recorded in the store's catalog (kind ``audit``, one record per output folder: auditing into the same
folder again updates it) with its channels, task, classes, counts per kind and time; the console's audit page and
the dataset page read these records.

:func:`send_to_labeling` queues the suspects whose label a person should look at — the kinds in
:data:`SEND_KINDS`: label issues (``label_issue``, ``missing_box``, ``swapped_class``, ``misplaced_box``,
``wrong_mask``), ``outlier`` (does it belong, is it labelled right?), ``near_duplicate`` and ``leakage`` (does the
copy carry the same label as its original?). Image-quality findings and exact duplicates are fixed by removing or
repairing the file (``clean.manifest`` leaves them out) and unreadable files cannot be shown, so they are not sent
unless asked for. The suspects' current labels become the items' pre-labels, so the labeler corrects instead of
redrawing: they are written as an augmented manifest with the task's writer (``AUDIT/labeling/<job>.manifest``) and
read by the labeling job as any labelled input is (:func:`oculi.labeling.jobs.create` /
:func:`~oculi.labeling.jobs.add_items`)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from oculi.errors import ConfigError, DataError, JobError
from oculi.jobs.store import JobStore, check_name, generate_name
from oculi.labeling import jobs

if TYPE_CHECKING:
    from oculi.analysis.audit import AuditReport

AUDIT = "audit"
LABEL_KINDS = ("label_issue", "missing_box", "swapped_class", "misplaced_box", "wrong_mask")
SEND_KINDS = (*LABEL_KINDS, "outlier", "near_duplicate", "leakage")


def read_audit(folder: str | Path) -> dict[str, Any]:
    """``audit.json`` of an audit output folder, or a DataError saying how to make one."""
    path = Path(folder) / "audit.json"
    if not path.is_file():
        raise DataError(f"{path} not found; pass the --output folder of `oculi data audit`.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg}, line {e.lineno}); run the audit again.") from e


def _channel_paths(audit: dict[str, Any]) -> list[Path]:
    return [Path(c.partition("=")[2] if "=" in c else c) for c in audit.get("channels", [])]


def record_audit(folder: str | Path, store: JobStore | None = None,
                 sent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Record the audit written to ``folder`` in the store's catalog (kind ``audit``) — its output folder,
    channels, task, classes, images per split, counts per kind and time — or update the record of that folder;
    ``sent`` (``{"job", "queued", "time"}``) is added to the record's list of sends to labeling. Returns the
    catalog row (``name`` is what the console's ``/audits/<name>`` shows)."""
    store = store or JobStore()
    folder = Path(folder).resolve()
    audit = read_audit(folder)
    previous = next((r for r in store.registered(AUDIT) if r["location"] == str(folder)), None)
    paths = _channel_paths(audit)
    name = previous["name"] if previous else generate_name(f"{paths[0].name if paths else 'data'}-audit")
    info = {"task": audit["task"], "channels": audit.get("channels", []), "classes": audit.get("classes", []),
            "images": audit.get("images", {}), "counts": audit.get("counts", {}),
            "findings": len(audit.get("findings", [])), "label_scores": audit.get("label_scores"),
            "seconds": audit.get("seconds"), "audited_at": (folder / "audit.json").stat().st_mtime,
            "sent": [*(previous["info"].get("sent", []) if previous else []), *([sent] if sent else [])]}
    if previous:
        store.unregister(AUDIT, name)
    return store.register(AUDIT, name, str(folder), info)


def list_audits(store: JobStore | None = None, location: str | Path | None = None) -> list[dict[str, Any]]:
    """The recorded audits, newest first; with ``location`` (a dataset path) only those whose channels lie in it."""
    store = store or JobStore()
    rows = store.registered(AUDIT)
    if location is not None:
        root = Path(location).resolve()
        rows = [r for r in rows if any(p == root or p.is_relative_to(root)
                                       for p in _channel_paths(r["info"]))]
    return sorted(rows, key=lambda r: -r["info"].get("audited_at", r["created_at"]))


def suspects(audit: dict[str, Any], kinds: tuple[str, ...] | list[str] = SEND_KINDS) -> list[dict[str, Any]]:
    """The findings of ``kinds`` in ``audit`` (``audit.json``'s content), one per image file (its best-scored
    finding, in the audit's order)."""
    from oculi.analysis.audit import KINDS

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown finding kind(s) {', '.join(unknown)}; the audit's kinds are {', '.join(KINDS)}.")
    if "unreadable" in kinds:
        raise ConfigError("unreadable files cannot be shown to a labeler; fix or remove them, and leave "
                          "`unreadable` out of the kinds.")
    chosen: dict[str, dict[str, Any]] = {}
    for finding in audit.get("findings", []):
        if finding["kind"] in kinds:
            chosen.setdefault(finding["file"], finding)
    return list(chosen.values())


def default_job_name(audit: dict[str, Any]) -> str:
    """A labeling job name for an audit's suspects: ``<dataset folder>-relabel``."""
    paths = _channel_paths(audit)
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", paths[0].name if paths else "audit").strip("-")[:55] or "audit"
    return f"{base}-relabel"


def _check_job(job: dict[str, Any], task: str, names: list[str], multi_label: bool, folder: Path) -> None:
    """A ConfigError when existing job ``job`` cannot take suspects of ``task`` / ``names`` / ``multi_label``."""
    problems = []
    if job["task"] != task:
        problems.append(f"it is a {job['task']} job and the audited data is {task}")
    elif job["spec"]["categories"] != names:
        problems.append(f"its classes are {', '.join(job['spec']['categories'])} and the audited data's are "
                        f"{', '.join(names)}")
    elif bool(job["spec"].get("multi_label")) != multi_label:
        problems.append("it is " + ("multi-label" if job["spec"].get("multi_label") else "single-label") +
                        " and the audited data is not")
    if problems:
        other = f"{job['name'][:57]}-audit"
        raise ConfigError(f"labeling job {job['name']!r} cannot take this audit's suspects: {problems[0]}. Send them "
                          f"to a new job, e.g. `oculi label add-from-audit {other} {folder}`.")


def send_to_labeling(job: str, source: AuditReport | str | Path, *, kinds: tuple[str, ...] | list[str] = SEND_KINDS,
                     store: JobStore | None = None) -> dict[str, Any]:
    """Queue an audit's suspects (findings of ``kinds``, see the module docstring) in labeling job ``job``, their
    current labels as pre-labels. ``source``: the :class:`~oculi.analysis.audit.AuditReport` just made, or an audit
    output folder (its data is read again from the channels ``audit.json`` names). A job that does not exist is
    created with the audited data's task and classes; an existing one must have the same task, classes and
    multi-label setting (else a ConfigError naming the difference and suggesting ``JOB-audit``); images it already
    holds are not added again, and a Completed job that gets new items is InProgress again.

    Returns ``{"job", "queued", "suspects", "missing", "created", "status", "audit"}``: ``queued`` items added,
    ``suspects`` images of ``kinds``, ``missing`` of those no longer in the data, ``audit`` the audit's record
    name."""
    from oculi.analysis.audit import read_sets
    from oculi.tasks import get_task

    store = store or JobStore()
    check_name(job)
    if isinstance(source, str | Path):
        folder = Path(source).resolve()
        audit = read_audit(folder)
        if not audit.get("channels"):
            raise DataError(f"{folder / 'audit.json'} does not name its channels (an older audit); run "
                            "`oculi data audit` again to send its suspects.")
        reading = audit.get("reading") or {}
        roots = {k: Path(v) for k, v in (reading.get("image_roots") or {}).items()}
        task, sets = read_sets(audit["channels"], task=audit["task"], image_roots=roots or None,
                               label_attribute=reading.get("label_attribute"))
    else:
        if source.output is None:
            raise ConfigError("this audit report was not written to a folder; pass its output folder instead.")
        folder, audit, task, sets = source.output, source.to_dict(), source.task, source.sets
    contract = get_task(task)
    found = suspects(audit, kinds)
    samples = {(split, str(s.image)): s for split, ss in sets.items() for s in ss.samples}
    chosen = [samples[(f["split"], f["file"])] for f in found if (f["split"], f["file"]) in samples]
    reference = sets.get("train") or next(iter(sets.values()))
    names = jobs.categories(task, reference.classes)
    multi_label = reference.multi_label
    try:
        existing: dict[str, Any] | None = store.labeling_job(job)
    except JobError:
        existing = None
    if existing is not None:
        _check_job(existing, task, names, multi_label, folder)
    queued = 0
    if chosen:
        if contract.write_manifest is None:
            raise ConfigError(f"{contract.title} data cannot be written as a manifest yet, so its suspects cannot be "
                              "sent to labeling.")
        manifest = folder / "labeling" / f"{job}.manifest"
        manifest.parent.mkdir(parents=True, exist_ok=True)
        contract.write_manifest(reference.with_samples(chosen), manifest)
        if existing is None:
            jobs.create(job, task, manifest, reference.classes, multi_label=multi_label, store=store)
            queued = len(chosen)
        else:
            queued = jobs.add_items(job, manifest, store)
    record = record_audit(folder, store, {"job": job, "queued": queued, "time": time.time()} if chosen else None)
    status = store.labeling_job(job)["status"] if chosen or existing else None
    return {"job": job, "queued": queued, "suspects": len(found), "missing": len(found) - len(chosen),
            "created": existing is None and bool(chosen), "status": status, "audit": record["name"]}


def _running_record(location: str | Path) -> Path:
    import hashlib

    from oculi.settings import oculi_home

    key = hashlib.sha1(str(Path(location).resolve()).encode()).hexdigest()[:16]
    return oculi_home() / "audits" / f"running-{key}.json"


def start_audit(location: str | Path, name: str, *, labels: bool = True, folds: int = 3) -> dict[str, Any]:
    """Audit the dataset at ``location`` in the background (``oculi data audit`` in its own process session, so it
    outlives a closed console) into ``$OCULI_HOME/audits/NAME-<time>/``, recorded in the store when it ends; the
    console's button. ``labels=False``: no fold trainings (no label issues). Refuses while an audit of the same data
    runs. Returns the background task's record (``output``: the audit folder)."""
    from oculi.processes import start_recorded
    from oculi.settings import oculi_home

    if not Path(location).exists():
        raise DataError(f"{location} does not exist; register the dataset again with its current path.")
    if folds < 2:
        raise ConfigError(f"an audit needs at least 2 folds for out-of-fold label issues; got {folds}.")
    if audit_state(location) and audit_state(location)["running"]:
        raise JobError(f"an audit of {location} already runs; wait for it to finish.")
    output = oculi_home() / "audits" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = ["oculi.cli", "data", "audit", str(Path(location).resolve()), "--output", str(output), "--no-progress",
               "--folds", str(folds), *([] if labels else ["--no-labels"])]
    return start_recorded(command, output / "audit.log", _running_record(location), output=str(output),
                          labels=labels)


def audit_state(location: str | Path) -> dict[str, Any] | None:
    """The last audit :func:`start_audit` started on ``location``: its record with ``running``, ``tail`` (the
    log's last lines) and ``failed`` (it ended without writing ``audit.json``); None when none was started."""
    from oculi.processes import read_recorded

    state = read_recorded(_running_record(location))
    if state is None:
        return None
    return {**state, "failed": not state["running"] and not (Path(state["output"]) / "audit.json").is_file()}
