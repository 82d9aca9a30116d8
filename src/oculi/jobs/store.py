"""The job store: every job's record, its status transitions and its per-epoch metrics, through SQLAlchemy.

SQLite at ``$OCULI_HOME/oculi.db`` by default; ``OCULI_DATABASE_URL`` (e.g. ``postgresql+psycopg://user@host/db``)
selects another database. Several processes (the CLI, detached workers, the control-plane server) share one
store: status changes are compare-and-set updates (``UPDATE … WHERE secondary_status = <what we read>``), so two
writers never both win, and the status machine in :mod:`oculi.jobs.status` is checked on every change.

Times are UNIX seconds (float) in the database and ISO 8601 (UTC) in what :func:`describe` returns.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from oculi.errors import JobError
from oculi.jobs.status import ACTIVE, PENDING, PRIMARY, check_transition
from oculi.settings import oculi_home, settings

NAME_RULE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # SageMaker's TrainingJobName pattern

metadata = sa.MetaData()
jobs_table = sa.Table(
    "jobs", metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False, default="training"),
    sa.Column("algorithm", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("secondary_status", sa.String(32), nullable=False),
    sa.Column("spec", sa.JSON, nullable=False),  # what was asked: channels, hyperparameters, output, entry point …
    sa.Column("hyperparameters", sa.JSON),  # resolved (auto values filled in) once training starts
    sa.Column("job_dir", sa.Text, nullable=False),
    sa.Column("model_dir", sa.Text, nullable=False),
    sa.Column("log_path", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("training_start", sa.Float),
    sa.Column("training_end", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("failure_reason", sa.Text),
    sa.Column("pid", sa.Integer),  # the worker (or attached CLI) process, while one owns the job
    sa.Column("host", sa.String(255)),
    sa.Column("process_token", sa.String(128)),  # boot id + process start time: tells a reused pid apart
    sa.Column("checkpoint", sa.JSON),  # {"path", "epoch", "step", "time"} of the last checkpoint written
    sa.Column("final_metrics", sa.JSON),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
)
transitions_table = sa.Table(
    "job_transitions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(63), sa.ForeignKey("jobs.name", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("secondary_status", sa.String(32), nullable=False),
    sa.Column("time", sa.Float, nullable=False),
    sa.Column("message", sa.Text, nullable=False, default=""),
)
metrics_table = sa.Table(
    "job_metrics", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(63), sa.ForeignKey("jobs.name", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("epoch", sa.Integer),
    sa.Column("step", sa.Integer),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("time", sa.Float, nullable=False),
)
# What a user registers besides jobs (the console's datasets, models and endpoints): one row per (kind, name).
catalog_table = sa.Table(
    "catalog", metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # dataset, model, endpoint
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("location", sa.Text, nullable=False),  # a path (dataset, model) or a URL (endpoint)
    sa.Column("info", sa.JSON),  # what was recognised at registration: task, format, classes …
    sa.Column("created_at", sa.Float, nullable=False),
)
# Labeling jobs (Ground Truth's CreateLabelingJob shapes, :mod:`oculi.labeling`) and their items: one row per image,
# with its label, where it came from (human / machine) and the lease of the person it is handed to.
labeling_jobs_table = sa.Table(
    "labeling_jobs", metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("label_attribute", sa.String(127), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # InProgress, Completed, Stopping, Stopped, Failed
    sa.Column("spec", sa.JSON, nullable=False),  # input, output, categories, multi_label, instructions, automation
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("failure_reason", sa.Text),
    sa.Column("stats", sa.JSON),  # automated labeling's rounds: threshold, measured accuracy, training job …
)
labeling_items_table = sa.Table(
    "labeling_items", metadata,
    sa.Column("job", sa.String(63), sa.ForeignKey("labeling_jobs.name", ondelete="CASCADE"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True),  # the input manifest's line order, from 0
    sa.Column("source", sa.JSON, nullable=False),  # the input line ({"source-ref": …, …}), copied to the output
    sa.Column("state", sa.String(16), nullable=False),  # unlabeled, human, machine, failed
    sa.Column("label", sa.JSON),  # the annotation kind's label JSON (see oculi.labeling.kinds)
    sa.Column("confidence", sa.Float),
    sa.Column("proposal", sa.JSON),  # a model's or an input file's pre-label, shown as an editable proposal
    sa.Column("priority", sa.Float, nullable=False, default=0.0),  # uncertainty: higher is handed out first
    sa.Column("worker", sa.String(64)),  # who holds the lease (a browser's labeler id) / who labeled it
    sa.Column("lease_until", sa.Float, nullable=False, default=0.0),
    sa.Column("labeled_at", sa.Float),
)
# The model registry (:mod:`oculi.model_registry`): SageMaker's model package groups, their numbered versions
# (ModelPackage) with their approval status, and every deployment or weight change of an endpoint.
package_groups_table = sa.Table(
    "model_package_groups", metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)
packages_table = sa.Table(
    "model_packages", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_name", sa.String(63), sa.ForeignKey("model_package_groups.name", ondelete="CASCADE"),
              nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("approval", sa.String(32), nullable=False),  # PendingManualApproval | Approved | Rejected
    sa.Column("approval_description", sa.Text, nullable=False, default=""),
    sa.Column("location", sa.Text, nullable=False),  # the bundle folder (absolute)
    sa.Column("weights_sha256", sa.String(64), nullable=False),
    sa.Column("description", sa.Text, nullable=False, default=""),
    sa.Column("info", sa.JSON, nullable=False),  # algorithm, task, classes, metrics, dataset fingerprint, job
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.UniqueConstraint("group_name", "version", name="uq_model_packages_version"),
)
deployments_table = sa.Table(
    "endpoint_deployments", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.String(63), nullable=False, index=True),
    sa.Column("event", sa.String(16), nullable=False),  # Deployed | WeightsChanged | Stopped
    sa.Column("variants", sa.JSON, nullable=False),  # [{VariantName, ModelDataUrl, ModelPackageArn, Weight}]
    sa.Column("time", sa.Float, nullable=False),
)
# The jobs list pages through thousands of jobs newest first, by status or kind; indexes created on old stores too.
INDEXES = (
    sa.Index("ix_jobs_created", jobs_table.c.created_at, jobs_table.c.name),
    sa.Index("ix_jobs_status_created", jobs_table.c.status, jobs_table.c.created_at),
    sa.Index("ix_jobs_kind_created", jobs_table.c.kind, jobs_table.c.created_at),
    sa.Index("ix_labeling_queue", labeling_items_table.c.job, labeling_items_table.c.state,
             labeling_items_table.c.priority.desc(), labeling_items_table.c.idx),
)
# mon-schedule and mon-execution: oculi.monitoring; audit: a data audit's output (oculi.labeling.audits)
CATALOG_KINDS = ("dataset", "model", "endpoint", "mon-schedule", "mon-execution", "audit")


def default_url() -> str:
    """``$OCULI_DATABASE_URL`` or SQLite at ``$OCULI_HOME/oculi.db``."""
    return settings().database_url or f"sqlite:///{oculi_home() / 'oculi.db'}"


def iso(t: float | None) -> str | None:
    """UNIX seconds → ISO 8601 UTC (None stays None)."""
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def generate_name(base: str) -> str:
    """SageMaker's default job name: ``<base>-YYYY-MM-DD-HH-MM-SS-mmm`` (UTC)."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    base = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-")[: 63 - len(stamp) - 1] or "job"
    return f"{base}-{stamp}"


def check_name(name: str) -> str:
    """Raise a JobError unless ``name`` is a valid SageMaker job name (it also names the job's folder)."""
    if not NAME_RULE.match(name):
        raise JobError(f"Job name {name!r} is not valid: use 1–63 letters, digits and hyphens, starting with a "
                       "letter or digit (SageMaker's rule), e.g. --name ants-bees-1.")
    return name


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (jobs list, the server) run while a worker writes; foreign keys for the cascades.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


SCHEMA_ATTEMPTS = 10


class JobStore:
    """Jobs, their transitions and metrics in one database. Cheap to create; connects on first use."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            url = sa.make_url(self.url)
            if url.get_backend_name() == "sqlite":
                if url.database and url.database != ":memory:":
                    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
                engine = sa.create_engine(url, connect_args={"timeout": 60})
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = sa.create_engine(url, pool_pre_ping=True)
            for attempt in range(SCHEMA_ATTEMPTS):
                # Processes or threads creating the tables at once each check, then create, table by table:
                # one may find a table that another has just made. Each retry sees more of them in place.
                try:
                    with engine.begin() as conn:
                        metadata.create_all(conn, checkfirst=True)
                        for index in INDEXES:  # create_all skips the indexes of tables that already exist
                            index.create(conn, checkfirst=True)
                    break
                except (OperationalError, IntegrityError, sa.exc.ProgrammingError):
                    if attempt == SCHEMA_ATTEMPTS - 1:
                        raise
                    time.sleep(0.02 * (attempt + 1))
            self._engine = engine
        return self._engine

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        """A transaction, retried for a while when SQLite says another process holds the write lock."""
        for attempt in range(200):
            try:
                with self.engine.begin() as conn:
                    yield conn
                return
            except OperationalError as e:
                if "locked" not in str(e) or attempt == 199:
                    raise
                time.sleep(0.05)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    # ---- jobs ---------------------------------------------------------------------------------------------
    def create(self, record: dict[str, Any], message: str = "job created; waiting for a slot") -> dict[str, Any]:
        """Insert a new job (status InProgress/Pending). ``record`` holds the columns; ``name`` must be unique."""
        check_transition(None, PENDING, record["name"])
        now = time.time()
        row = {"kind": "training", "attempts": 0, **record, "status": PRIMARY[PENDING],
               "secondary_status": PENDING, "created_at": now, "updated_at": now}
        try:
            with self.engine.begin() as conn:
                conn.execute(jobs_table.insert().values(**row))
                conn.execute(transitions_table.insert().values(job=row["name"], status=row["status"],
                                                               secondary_status=PENDING, time=now, message=message))
        except IntegrityError as e:
            raise JobError(f"A job named {row['name']!r} already exists; pick another --name (job names are "
                           "unique, as on SageMaker).") from e
        return self.get(row["name"])

    def find(self, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(jobs_table.select().where(jobs_table.c.name == name)).mappings().first()
        return dict(row) if row else None

    def get(self, name: str) -> dict[str, Any]:
        job = self.find(name)
        if job is None:
            raise JobError(f"No job named {name!r} in {self.where()}. See `oculi jobs list`.")
        return job

    def where(self) -> str:
        """The database, for messages (no password)."""
        return sa.make_url(self.url).render_as_string(hide_password=True)

    def list(self, status: str | None = None, algorithm: str | None = None,
             secondary: tuple[str, ...] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Jobs, newest first, optionally filtered by primary status, algorithm, or secondary statuses."""
        query = jobs_table.select().order_by(jobs_table.c.created_at.desc(), jobs_table.c.name.desc())
        if status:
            query = query.where(jobs_table.c.status == status)
        if algorithm:
            query = query.where(jobs_table.c.algorithm == algorithm)
        if secondary:
            query = query.where(jobs_table.c.secondary_status.in_(secondary))
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def page(self, *, status: str | None = None, kind: str | None = None, name: str | None = None,
             secondary: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of jobs, newest first, and how many match: ``status`` (primary), ``secondary`` (secondary
        status, e.g. MaxRuntimeExceeded), ``kind`` (training, transform), ``name`` (a case-insensitive part of the
        name). Reads the ``spec`` column too (small)."""
        where = []
        if status:
            where.append(jobs_table.c.status == status)
        if secondary:
            where.append(jobs_table.c.secondary_status == secondary)
        if kind:
            where.append(jobs_table.c.kind == kind)
        if name:
            escaped = name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            where.append(sa.func.lower(jobs_table.c.name).like(f"%{escaped}%", escape="\\"))
        query = (jobs_table.select().where(*where).order_by(jobs_table.c.created_at.desc(), jobs_table.c.name.desc())
                 .offset(offset).limit(limit))
        with self.engine.connect() as conn:
            total = int(conn.execute(sa.select(sa.func.count()).select_from(jobs_table).where(*where)).scalar_one())
            return [dict(r) for r in conn.execute(query).mappings()], total

    def update(self, name: str, **fields: Any) -> None:
        """Set plain fields (not the status: use :meth:`transition`)."""
        assert "status" not in fields and "secondary_status" not in fields
        with self._tx() as conn:
            conn.execute(jobs_table.update().where(jobs_table.c.name == name)
                         .values(**fields, updated_at=time.time()))

    def transition(self, name: str, new: str, message: str = "", *, expect: str | tuple[str, ...] | None = None,
                   **fields: Any) -> dict[str, Any]:
        """Move job ``name`` to secondary status ``new`` (its primary status follows), recording the transition
        and setting ``fields`` in the same transaction. ``expect``: the status(es) the caller believes the job
        is in; if it is elsewhere (another process moved it), raise. Illegal changes raise IllegalTransition."""
        expected = (expect,) if isinstance(expect, str) else expect
        for _ in range(50):
            job = self.get(name)
            current = job["secondary_status"]
            if expected is not None and current not in expected:
                raise JobError(f"Job {name!r} is {job['status']}/{current}, not {'/'.join(expected)}; "
                               "it was changed by another process.")
            check_transition(current, new, f"job {name!r}")
            now = time.time()
            with self._tx() as conn:
                done = conn.execute(
                    jobs_table.update()
                    .where(jobs_table.c.name == name, jobs_table.c.secondary_status == current)
                    .values(status=PRIMARY[new], secondary_status=new, updated_at=now, **fields)).rowcount
                if done:
                    conn.execute(transitions_table.insert().values(job=name, status=PRIMARY[new],
                                                                   secondary_status=new, time=now, message=message))
            if done:
                return {**job, **fields, "status": PRIMARY[new], "secondary_status": new, "updated_at": now}
        raise JobError(f"Job {name!r} kept changing while moving it to {new}; try again.")

    def claim(self, name: str, max_active: int, message: str, **fields: Any) -> bool:
        """Pending → Starting if fewer than ``max_active`` jobs are active; the count and the change happen in
        one transaction under the queue lock the caller holds (see :mod:`oculi.jobs.runner`)."""
        if self.count_active() >= max_active:
            return False
        try:
            self.transition(name, "Starting", message, expect=PENDING, **fields)
        except JobError:
            return False
        return True

    def count_active(self) -> int:
        """Active jobs that hold a queue slot (a tuning job holds none: its trials do)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(jobs_table)
                                    .where(jobs_table.c.secondary_status.in_(sorted(ACTIVE)),
                                           jobs_table.c.kind != "tuning")).scalar_one())

    def transitions(self, name: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(transitions_table.select().where(transitions_table.c.job == name)
                                .order_by(transitions_table.c.id)).mappings()
            return [dict(r) for r in rows]

    # ---- metrics ------------------------------------------------------------------------------------------
    def add_metrics(self, name: str, values: dict[str, float], *, epoch: int | None = None,
                    step: int | None = None) -> None:
        now = time.time()
        rows = [{"job": name, "epoch": epoch, "step": step, "name": k, "value": float(v), "time": now}
                for k, v in values.items()]
        if rows:
            with self._tx() as conn:
                conn.execute(metrics_table.insert(), rows)

    def metrics_after(self, name: str, after: int = 0) -> list[dict[str, Any]]:
        """Rows ``{id, epoch, step, name, value, time}`` recorded after row ``after`` (0: all), oldest first —
        what a live view polls for."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(metrics_table.c.id, metrics_table.c.epoch, metrics_table.c.step,
                                          metrics_table.c.name, metrics_table.c.value, metrics_table.c.time)
                                .where(metrics_table.c.job == name, metrics_table.c.id > after)
                                .order_by(metrics_table.c.id)).mappings()
            return [dict(r) for r in rows]

    def latest_metrics(self, names: list[str]) -> dict[str, dict[str, float]]:
        """The last value of each metric of each job in ``names`` (one query, for a page of jobs)."""
        if not names:
            return {}
        last = (sa.select(sa.func.max(metrics_table.c.id)).where(metrics_table.c.job.in_(names))
                .group_by(metrics_table.c.job, metrics_table.c.name))
        out: dict[str, dict[str, float]] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(sa.select(metrics_table.c.job, metrics_table.c.name, metrics_table.c.value)
                                  .where(metrics_table.c.id.in_(last))):
                out.setdefault(r.job, {})[r.name] = r.value
        return out

    # ---- catalog (registered datasets, models, endpoints) ------------------------------------------------------
    def register(self, kind: str, name: str, location: str, info: dict[str, Any] | None = None) -> dict[str, Any]:
        """Record a dataset / model / endpoint under ``name`` (unique per kind); a taken name is a JobError."""
        assert kind in CATALOG_KINDS
        row = {"kind": kind, "name": name, "location": location, "info": info or {}, "created_at": time.time()}
        try:
            with self._tx() as conn:
                conn.execute(catalog_table.insert().values(**row))
        except IntegrityError:
            raise JobError(f"A {kind} named {name!r} is already registered; pick another name or remove it "
                           "first.") from None
        return row

    def unregister(self, kind: str, name: str) -> None:
        """Forget a registered item (its files stay)."""
        with self._tx() as conn:
            conn.execute(catalog_table.delete().where(catalog_table.c.kind == kind, catalog_table.c.name == name))

    def registered(self, kind: str) -> list[dict[str, Any]]:
        """Every registered item of ``kind``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(catalog_table.select().where(catalog_table.c.kind == kind)
                                .order_by(catalog_table.c.created_at)).mappings()
            return [dict(r) for r in rows]

    def lookup(self, kind: str, name: str) -> dict[str, Any]:
        """The registered item ``name`` of ``kind``, or a JobError saying where to register it."""
        with self.engine.connect() as conn:
            row = conn.execute(catalog_table.select().where(catalog_table.c.kind == kind,
                                                            catalog_table.c.name == name)).mappings().first()
        if row is None:
            raise JobError(f"No {kind} named {name!r} is registered in {self.where()}; register it on the console's "
                           f"{kind}s page.")
        return dict(row)

    def drop_metrics_after(self, name: str, epoch: int) -> None:
        """Forget metrics of epochs after ``epoch`` (a resumed job redoes them)."""
        with self._tx() as conn:
            conn.execute(metrics_table.delete().where(metrics_table.c.job == name, metrics_table.c.epoch > epoch))

    def metrics(self, name: str) -> list[dict[str, Any]]:
        """Rows ``{epoch, step, name, value, time}`` in the order they were recorded."""
        with self.engine.connect() as conn:
            rows = conn.execute(metrics_table.select().where(metrics_table.c.job == name)
                                .order_by(metrics_table.c.id)).mappings()
            return [{k: r[k] for k in ("epoch", "step", "name", "value", "time")} for r in rows]

    # ---- labeling jobs (oculi.labeling) ------------------------------------------------------------------------
    def create_labeling(self, record: dict[str, Any], sources: list[dict[str, Any]],
                        proposals: list[dict[str, Any] | None] | None = None) -> dict[str, Any]:
        """Insert labeling job ``record`` (name, task, label_attribute, spec) InProgress with one unlabeled item per
        input line in ``sources`` (and its pre-label in ``proposals``), in one transaction."""
        now = time.time()
        row = {**record, "status": "InProgress", "created_at": now, "updated_at": now, "stats": {}}
        items = [{"job": row["name"], "idx": i, "source": source, "state": "unlabeled", "priority": 0.0,
                  "lease_until": 0.0, "proposal": proposals[i] if proposals else None}
                 for i, source in enumerate(sources)]
        try:
            with self._tx() as conn:
                conn.execute(labeling_jobs_table.insert().values(**row))
                for start in range(0, len(items), 2000):
                    conn.execute(labeling_items_table.insert(), items[start:start + 2000])
        except IntegrityError as e:
            raise JobError(f"A labeling job named {row['name']!r} already exists; pick another name (labeling job "
                           "names are unique, as on Ground Truth).") from e
        return self.labeling_job(row["name"])

    def add_labeling_items(self, name: str, sources: list[dict[str, Any]],
                           proposals: list[dict[str, Any] | None]) -> int:
        """Append one unlabeled item per input line in ``sources`` (with its pre-label in ``proposals``) to
        labeling job ``name``, numbered on from its last item, in one transaction; returns the first new index."""
        items = labeling_items_table
        with self._tx() as conn:
            last = conn.execute(sa.select(sa.func.max(items.c.idx)).where(items.c.job == name)).scalar()
            first = 0 if last is None else int(last) + 1
            rows = [{"job": name, "idx": first + i, "source": source, "state": "unlabeled", "priority": 0.0,
                     "lease_until": 0.0, "proposal": proposal}
                    for i, (source, proposal) in enumerate(zip(sources, proposals, strict=True))]
            for start in range(0, len(rows), 2000):
                conn.execute(items.insert(), rows[start:start + 2000])
        return first

    def labeling_job(self, name: str) -> dict[str, Any]:
        """The labeling job ``name``'s row, or a JobError pointing at ``oculi label list``."""
        with self.engine.connect() as conn:
            row = conn.execute(labeling_jobs_table.select()
                               .where(labeling_jobs_table.c.name == name)).mappings().first()
        if row is None:
            raise JobError(f"No labeling job named {name!r} in {self.where()}. See `oculi label list`.")
        return dict(row)

    def labeling_jobs(self) -> list[dict[str, Any]]:
        """Every labeling job, newest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(labeling_jobs_table.select().order_by(labeling_jobs_table.c.created_at.desc()))
            return [dict(r) for r in rows.mappings()]

    def update_labeling(self, name: str, **fields: Any) -> None:
        """Set fields of labeling job ``name`` (status, spec, stats, failure_reason)."""
        with self._tx() as conn:
            conn.execute(labeling_jobs_table.update().where(labeling_jobs_table.c.name == name)
                         .values(**fields, updated_at=time.time()))

    def lease_item(self, name: str, worker: str, seconds: float,
                   exclude: tuple[int, ...] = ()) -> dict[str, Any] | None:
        """Hand an unlabeled item of job ``name`` to ``worker`` for ``seconds``: the one it already holds (oldest
        lease first and not extended, so a reload shows the same image), else the free item of highest priority
        (lowest index among equals). The lease is a compare-and-set update, so two workers never get the same
        item. None: none left."""
        items = labeling_items_table
        for _ in range(20):
            now = time.time()
            free = sa.or_(items.c.lease_until < now, items.c.worker == worker)
            base = items.select().where(items.c.job == name, items.c.state == "unlabeled")
            if exclude:
                base = base.where(items.c.idx.not_in(exclude))
            with self.engine.connect() as conn:
                held = conn.execute(base.where(items.c.worker == worker, items.c.lease_until >= now)
                                    .order_by(items.c.lease_until, items.c.idx).limit(1)).mappings().first()
                if held is not None:  # kept as it is: re-leasing would reorder what a reload shows
                    return dict(held)
                row = conn.execute(base.where(free).order_by(items.c.priority.desc(), items.c.idx)
                                   .limit(1)).mappings().first()
            if row is None:
                return None
            with self._tx() as conn:
                done = conn.execute(items.update().where(items.c.job == name, items.c.idx == row["idx"],
                                                         items.c.state == "unlabeled", free)
                                    .values(worker=worker, lease_until=now + seconds)).rowcount
            if done:
                return {**row, "worker": worker, "lease_until": now + seconds}
        return None

    def release_item(self, name: str, idx: int, worker: str) -> None:
        """Give back ``worker``'s lease on item ``idx`` (a skipped image goes back to the queue)."""
        items = labeling_items_table
        with self._tx() as conn:
            conn.execute(items.update().where(items.c.job == name, items.c.idx == idx, items.c.worker == worker,
                                              items.c.state == "unlabeled").values(lease_until=0.0))

    def labeling_item(self, name: str, idx: int) -> dict[str, Any]:
        """Item ``idx`` of labeling job ``name``, or a JobError."""
        items = labeling_items_table
        with self.engine.connect() as conn:
            row = conn.execute(items.select().where(items.c.job == name, items.c.idx == idx)).mappings().first()
        if row is None:
            raise JobError(f"Labeling job {name!r} has no item {idx}.")
        return dict(row)

    def labeling_items(self, name: str, states: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The items of job ``name`` in index order, optionally only those in ``states``."""
        items = labeling_items_table
        query = items.select().where(items.c.job == name).order_by(items.c.idx)
        if states:
            query = query.where(items.c.state.in_(states))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def set_label(self, name: str, idx: int, label: Any, state: str, *, confidence: float | None = None,
                  worker: str | None = None) -> None:
        """Save item ``idx``'s ``label`` as ``state`` (human, machine, unlabeled to clear) at once (autosave)."""
        items = labeling_items_table
        values: dict[str, Any] = {"label": label, "state": state, "confidence": confidence, "labeled_at": time.time()}
        if worker is not None:
            values.update(worker=worker, lease_until=0.0)
        with self._tx() as conn:
            conn.execute(items.update().where(items.c.job == name, items.c.idx == idx).values(**values))

    def set_labels(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Update many items of job ``name`` at once: each row ``{"idx", …fields}`` (machine labels, proposals,
        priorities)."""
        items = labeling_items_table
        with self._tx() as conn:
            for row in rows:
                fields = {k: v for k, v in row.items() if k != "idx"}
                conn.execute(items.update().where(items.c.job == name, items.c.idx == row["idx"]).values(**fields))

    def label_counts(self, name: str) -> dict[str, int]:
        """How many items of job ``name`` are in each state."""
        items = labeling_items_table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(items.c.state, sa.func.count()).where(items.c.job == name)
                                .group_by(items.c.state))
            return {state: int(n) for state, n in rows}

    def labeled_by(self, name: str, worker: str, limit: int = 500) -> list[int]:
        """The items of job ``name`` that ``worker`` labeled, oldest first (at most the last ``limit``)."""
        items = labeling_items_table
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(items.c.idx).where(items.c.job == name, items.c.worker == worker,
                                                             items.c.state == "human")
                                .order_by(items.c.labeled_at.desc()).limit(limit))
            return [int(r.idx) for r in rows][::-1]
