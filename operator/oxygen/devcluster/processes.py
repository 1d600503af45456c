"""Child processes that cannot outlive the process that started them."""

from __future__ import annotations

import ctypes
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _resolve_prctl() -> Callable[..., int] | None:
    # Resolved once, in the parent: the forked child only calls it (no dlopen between fork and exec).
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


_prctl = _resolve_prctl()


def die_with_parent() -> None:
    """For Popen(preexec_fn=…): the kernel SIGKILLs the child when the thread that started it dies,
    however it dies (a SIGKILLed test harness leaves no etcd, apiserver or pod process behind)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
