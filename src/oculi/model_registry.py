"""The model registry, in SageMaker's shapes: a *model package group* (``ModelPackageGroup``) holds numbered
versions (``ModelPackage``) of a model, each a registered bundle with its metrics, training job and dataset
fingerprint (from the bundle's ``model.json``) and a ``ModelApprovalStatus``. ``group:NAME`` wherever a model is
served names the group's latest approved version, ``group:NAME/VERSION`` one version. Every deployment and weight
change of an endpoint is recorded, so :func:`serving_at` answers "what was serving at time T".

Kept in the job store's database (tables ``model_package_groups``, ``model_packages``, ``endpoint_deployments``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from oculi.errors import OculiError
from oculi.jobs.store import (
    NAME_RULE,
    JobStore,
    deployments_table,
    iso,
    jobs_table,
    package_groups_table,
    packages_table,
)

PENDING, APPROVED, REJECTED = "PendingManualApproval", "Approved", "Rejected"
# SageMaker's UpdateModelPackage: a version leaves PendingManualApproval once and never returns to it; an approved
# version can be rejected (withdrawn) and a rejected one approved after all.
APPROVAL_TRANSITIONS = {PENDING: {APPROVED, REJECTED}, APPROVED: {REJECTED}, REJECTED: {APPROVED}}
GROUP_PREFIX = "group:"


class ModelRegistryError(OculiError):
    """A model package group or version that does not exist, or an approval change that is not allowed."""

    exit_code = 6
    http_status = 404


def package_arn(group: str, version: int) -> str:
    """The local stand-in for SageMaker's ModelPackageArn."""
    return f"arn:oculi:sagemaker:local:model-package/{group}/{version}"


def _check_group_name(name: str) -> str:
    if not NAME_RULE.match(name):
        raise ModelRegistryError(f"Model package group name {name!r} is not valid: use 1–63 letters, digits and "
                                 "hyphens, starting with a letter or digit (SageMaker's rule), e.g. --group ants.")
    return name


def _training_job(store: JobStore, bundle: Path) -> str | None:
    """The job whose output is ``bundle`` (its folder, or the ``model/`` folder inside it), if the store has it."""
    candidates = [str(bundle), str(bundle.parent)] if bundle.name == "model" else [str(bundle)]
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(jobs_table.c.name).where(jobs_table.c.model_dir.in_(candidates))
                           .order_by(jobs_table.c.created_at.desc())).first()
    return row[0] if row else None


def _describe(row: Any) -> dict[str, Any]:
    """One model_packages row in the shape of SageMaker's DescribeModelPackage."""
    info = row["info"] or {}
    return {
        "ModelPackageGroupName": row["group_name"], "ModelPackageVersion": row["version"],
        "ModelPackageArn": package_arn(row["group_name"], row["version"]),
        "ModelPackageDescription": row["description"], "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": row["approval"], "ApprovalDescription": row["approval_description"],
        "CreationTime": iso(row["created_at"]), "LastModifiedTime": iso(row["updated_at"]),
        "ModelDataUrl": row["location"], "WeightsSha256": row["weights_sha256"],
        "Algorithm": info.get("algorithm"), "Task": info.get("task"), "Classes": info.get("classes", []),
        "ModelMetrics": info.get("metrics", {}), "TrainingJobName": info.get("training_job"),
        "DatasetFingerprint": info.get("dataset_fingerprint"),
    }


def register(bundle: Path, group: str, description: str = "", *, store: JobStore | None = None) -> dict[str, Any]:
    """Register the bundle folder ``bundle`` as the next version of ``group`` (created if new), pending manual
    approval; returns its description (DescribeModelPackage's shape)."""
    from oculi.artifacts import read_meta, resolve_bundle_path, weights_digest

    store = store or JobStore()
    _check_group_name(group)
    path = resolve_bundle_path(Path(bundle))
    if not path.is_dir():
        raise ModelRegistryError(f"{bundle}: register a bundle folder (model.json + weights.safetensors), not a "
                                 "file; unpack a model.tar.gz first.")
    path = path.resolve()
    meta = read_meta(path)
    info = {"algorithm": meta.get("algorithm"), "task": meta.get("task"), "classes": meta.get("classes", []),
            "metrics": meta.get("metrics", {}), "dataset_fingerprint": (meta.get("dataset") or {}).get("fingerprint"),
            "training_job": _training_job(store, path)}
    digest = weights_digest(path)
    for _ in range(50):  # two registrations at once: one gets the unique (group, version), the other retries
        now = time.time()
        try:
            with store._tx() as conn:
                if conn.execute(sa.select(package_groups_table.c.name)
                                .where(package_groups_table.c.name == group)).first() is None:
                    conn.execute(package_groups_table.insert().values(name=group, description="", created_at=now))
                version = 1 + int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(packages_table.c.version), 0))
                                               .where(packages_table.c.group_name == group)).scalar_one())
                conn.execute(packages_table.insert().values(
                    group_name=group, version=version, approval=PENDING, approval_description="", location=str(path),
                    weights_sha256=digest, description=description, info=info, created_at=now, updated_at=now))
            return describe(group, version, store=store)
        except IntegrityError:
            time.sleep(0.01)
    raise ModelRegistryError(f"could not register a version of {group!r}: others kept registering at once; retry.")


def groups(store: JobStore | None = None) -> list[dict[str, Any]]:
    """Every group (ListModelPackageGroups' summaries) with its version count and latest approved version."""
    store = store or JobStore()
    with store.engine.connect() as conn:
        rows = conn.execute(package_groups_table.select().order_by(package_groups_table.c.name)).mappings().all()
        out = []
        for g in rows:
            versions = conn.execute(sa.select(packages_table.c.version, packages_table.c.approval)
                                    .where(packages_table.c.group_name == g["name"])).all()
            approved = [v for v, a in versions if a == APPROVED]
            out.append({"ModelPackageGroupName": g["name"], "CreationTime": iso(g["created_at"]),
                        "Versions": len(versions), "LatestApprovedVersion": max(approved) if approved else None})
    return out


def versions(group: str, store: JobStore | None = None) -> list[dict[str, Any]]:
    """The versions of ``group``, newest first (ListModelPackages)."""
    store = store or JobStore()
    with store.engine.connect() as conn:
        if conn.execute(sa.select(package_groups_table.c.name)
                        .where(package_groups_table.c.name == group)).first() is None:
            raise ModelRegistryError(f"No model package group named {group!r} in {store.where()}; register a "
                                     f"bundle into it first: oculi models register BUNDLE --group {group}.")
        rows = conn.execute(packages_table.select().where(packages_table.c.group_name == group)
                            .order_by(packages_table.c.version.desc())).mappings().all()
    return [_describe(r) for r in rows]


def describe(group: str, version: int | None = None, store: JobStore | None = None) -> dict[str, Any]:
    """Version ``version`` of ``group`` (default: the newest), as DescribeModelPackage returns it."""
    found = versions(group, store)
    if not found:
        raise ModelRegistryError(f"model package group {group!r} has no versions yet.")
    if version is None:
        return found[0]
    for item in found:
        if item["ModelPackageVersion"] == version:
            return item
    raise ModelRegistryError(f"model package group {group!r} has no version {version}; its versions: "
                             f"{', '.join(str(v['ModelPackageVersion']) for v in reversed(found))}.")


def set_approval(group: str, version: int, status: str, description: str = "",
                 store: JobStore | None = None) -> dict[str, Any]:
    """Change a version's ModelApprovalStatus (compare-and-set, so two approvers never both win); a change
    :data:`APPROVAL_TRANSITIONS` does not allow raises :class:`ModelRegistryError`."""
    store = store or JobStore()
    current = describe(group, version, store)["ModelApprovalStatus"]
    if status not in APPROVAL_TRANSITIONS.get(current, set()):
        allowed = ", ".join(sorted(APPROVAL_TRANSITIONS[current])) or "none"
        raise ModelRegistryError(f"version {version} of {group!r} is {current}; it cannot become {status} (allowed: "
                                 f"{allowed}). A version never returns to {PENDING}; register a new version instead.")
    with store._tx() as conn:
        done = conn.execute(packages_table.update().where(
            packages_table.c.group_name == group, packages_table.c.version == version,
            packages_table.c.approval == current).values(approval=status, approval_description=description,
                                                         updated_at=time.time())).rowcount
    if not done:
        raise ModelRegistryError(f"version {version} of {group!r} was changed by someone else meanwhile; look at "
                                 f"`oculi models describe {group} --version {version}` and retry.")
    return describe(group, version, store)


def latest_approved(group: str, store: JobStore | None = None) -> dict[str, Any]:
    """The newest Approved version of ``group`` (what ``group:NAME`` serves)."""
    for item in versions(group, store):
        if item["ModelApprovalStatus"] == APPROVED:
            return item
    raise ModelRegistryError(f"model package group {group!r} has no Approved version to serve; approve one: "
                             f"oculi models approve {group} --version N.")


def resolve_model(model: str | Path) -> tuple[Path, str | None]:
    """A served model reference → (bundle path, ModelPackageArn or None): ``group:NAME`` is the group's latest
    approved version, ``group:NAME/VERSION`` that version (unless rejected); anything else is a path, returned
    unchanged."""
    text = str(model)
    if not text.startswith(GROUP_PREFIX):
        return Path(model), None
    group, _, version = text[len(GROUP_PREFIX):].partition("/")
    if not version:
        package = latest_approved(group)
    elif not version.isdigit():
        raise ModelRegistryError(f"{text!r}: the version after the / must be a number, e.g. group:{group}/2.")
    else:
        package = describe(group, int(version))
        if package["ModelApprovalStatus"] == REJECTED:
            raise ModelRegistryError(f"{text!r} is Rejected and is not served; approve it first (oculi models "
                                     f"approve {group} --version {version}) or serve group:{group}.")
    return Path(package["ModelDataUrl"]), package["ModelPackageArn"]


def record_deployment(endpoint: str, event: str, variants: Iterable[dict[str, Any]],
                      store: JobStore | None = None) -> None:
    """Record that ``endpoint`` was Deployed / had its WeightsChanged / Stopped, with what each variant served."""
    store = store or JobStore()
    with store._tx() as conn:
        conn.execute(deployments_table.insert().values(endpoint=endpoint, event=event, variants=list(variants),
                                                       time=time.time()))


def history(endpoint: str | None = None, store: JobStore | None = None) -> list[dict[str, Any]]:
    """Deployment events, oldest first (of one endpoint, or all)."""
    store = store or JobStore()
    query = deployments_table.select().order_by(deployments_table.c.time, deployments_table.c.id)
    if endpoint:
        query = query.where(deployments_table.c.endpoint == endpoint)
    with store.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [{"EndpointName": r["endpoint"], "Event": r["event"], "Time": iso(r["time"]), "Timestamp": r["time"],
             "ProductionVariants": r["variants"]} for r in rows]


def serving_at(endpoint: str, when: float | datetime, store: JobStore | None = None) -> list[dict[str, Any]]:
    """The variants ``endpoint`` served at ``when`` (UNIX seconds or an aware datetime): the last event at or
    before it, or ``[]`` if it was not deployed then (never, or stopped)."""
    t = when.timestamp() if isinstance(when, datetime) else float(when)
    last = [e for e in history(endpoint, store) if e["Timestamp"] <= t]
    if not last or last[-1]["Event"] == "Stopped":
        return []
    return last[-1]["ProductionVariants"]


class ModelPackage:
    """One version of a model package group, shaped like the SageMaker SDK's ``ModelPackage``: create one with
    :meth:`register` or look one up (``version=None``: the newest); :meth:`approve`, :meth:`reject` and
    :meth:`deploy` (a local endpoint) act on it."""

    def __init__(self, group: str, version: int | None = None, store: JobStore | None = None) -> None:
        self._store = store
        self.description = describe(group, version, store)
        self.group = group
        self.version: int = self.description["ModelPackageVersion"]

    @classmethod
    def register(cls, model_data: str | Path, group: str, description: str = "",
                 store: JobStore | None = None) -> ModelPackage:
        """Register a bundle folder as the next version of ``group``."""
        item = register(Path(model_data), group, description, store=store)
        return cls(group, item["ModelPackageVersion"], store)

    @property
    def model_package_arn(self) -> str:
        """SageMaker's ModelPackageArn (local form)."""
        return self.description["ModelPackageArn"]

    @property
    def approval_status(self) -> str:
        """ModelApprovalStatus as last read."""
        return self.description["ModelApprovalStatus"]

    def approve(self, description: str = "") -> ModelPackage:
        """Set ModelApprovalStatus to Approved."""
        self.description = set_approval(self.group, self.version, APPROVED, description, self._store)
        return self

    def reject(self, description: str = "") -> ModelPackage:
        """Set ModelApprovalStatus to Rejected."""
        self.description = set_approval(self.group, self.version, REJECTED, description, self._store)
        return self

    def deploy(self, **options: Any) -> Any:
        """Serve this version as a local endpoint (options as :meth:`oculi.Model.deploy`)."""
        from oculi.serving.sdk import Model

        return Model(f"{GROUP_PREFIX}{self.group}/{self.version}", name=self.group).deploy(**options)
