"""Process helpers shared by the engine and the jobs layer (standard library only, so that importing them is cheap
in a job worker that never imports torch)."""

from __future__ import annotations

import sys


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
