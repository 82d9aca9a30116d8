"""Process helpers shared by the engine, the jobs layer and the console (standard library only, so that importing
them is cheap in a job worker that never imports torch): who is alive (:func:`process_token`, :func:`is_alive`) and
background processes (:func:`start_background`, :func:`start_recorded`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``); a no-op elsewhere.
    Used as ``preexec_fn`` for children that must not outlive a killed job worker (torchrun, a user's script),
    and by each torchrun rank for torchrun."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def process_token(pid: int) -> str | None:
    """Boot id + start time of process ``pid`` (None if it does not exist): a pid reused after the worker died,
    or after a reboot, gives another token."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "unknown"
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # a zombie has finished: its parent just has not collected it yet
        return None
    return f"{_boot_id()}:{fields[19]}"


def is_alive(pid: int | None, token: str | None) -> bool:
    """Whether process ``pid`` still runs and is the one whose :func:`process_token` was ``token`` (None: any
    process with that pid)."""
    if not pid:
        return False
    if Path("/proc").is_dir() and Path("/proc/self/stat").exists():
        now = process_token(pid)
        return now is not None and (token is None or now == token or now == "unknown")
    try:  # no /proc (macOS): existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_children: list = []  # background processes this process started (subprocess.Popen), collected by reap_children


def start_background(args: list[str], log: Path, **env: str) -> subprocess.Popen:
    """Start ``python -m <args…>`` in its own session (it outlives this process and a Ctrl-C here), stdin closed,
    stdout and stderr appended to ``log`` (its folder made), unbuffered; ``env`` adds variables. Returns the child,
    which :func:`reap_children` collects once it has ended."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen([sys.executable, "-m", *args], stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1", **env})
    _children.append(child)
    return child


def reap_children() -> None:
    """Collect the background processes that have ended, so none lingers as a zombie."""
    for child in list(_children):
        if child.poll() is not None:
            _children.remove(child)


def start_recorded(args: list[str], log: Path, record: Path, **info: object) -> dict:
    """:func:`start_background` a long task a page or command follows later: its pid, process token, log and
    ``info`` are written to the JSON file ``record`` (read back by :func:`read_recorded`). Returns what was written."""
    import json
    import time

    child = start_background(args, log)
    written = {"pid": child.pid, "process_token": process_token(child.pid), "log": str(log),
               "started_at": time.time(), **info}
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(written), encoding="utf-8")
    return written


def read_recorded(record: Path, lines: int = 12) -> dict | None:
    """A :func:`start_recorded` task: its record with ``running`` (whether its process lives) and ``tail`` (the
    last ``lines`` lines of its log); None when there is no (readable) record."""
    import json

    reap_children()
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
        text = Path(info["log"]).read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {**info, "running": is_alive(info.get("pid"), info.get("process_token")),
            "tail": "\n".join(text.replace("\r", "\n").splitlines()[-lines:])}
