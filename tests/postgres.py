"""A throw-away PostgreSQL server for the job-store tests and benches: made with initdb/pg_ctl in a temp folder on
a loopback port, removed afterwards. As root — CI — the server runs as the `postgres` (or `nobody`) user, since
initdb refuses to run as root."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import free_port


class PostgresUnavailable(Exception):
    """PostgreSQL cannot be started here; the message says why (a test skips with it)."""


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return candidates[-1] if candidates else None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """Start a PostgreSQL server for the block; yields its SQLAlchemy URL (``postgresql+psycopg://…``). Raises
    :class:`PostgresUnavailable` where the binaries (or, as root, a user to run them as) are absent, and
    RuntimeError with the server's message when it fails to start."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        raise PostgresUnavailable("PostgreSQL binaries (initdb, pg_ctl) are absent; `apt-get install postgresql` "
                                  "provides them")
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="oculi-pg-"))
    if os.geteuid() == 0:  # initdb refuses root: run the server as an unprivileged user
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        runuser = shutil.which("runuser")
        if user is None or runuser is None:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable("running as root without a `postgres`/`nobody` user and runuser to start "
                                      "PostgreSQL as")
        prefix = [runuser, "-u", user, "--"]
        entry = pwd.getpwnam(user)
        os.chmod(root, 0o755)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, port = root / "data", free_port()
    try:
        subprocess.run([*prefix, initdb, "-D", str(data), "-U", "oculi", "--auth=trust", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(root / "server.log"), "-w", "-t", "60", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=120)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {e.stderr.decode(errors='replace')}") from None
    try:
        yield f"postgresql+psycopg://oculi@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True,
                       timeout=60)
        shutil.rmtree(root, ignore_errors=True)
