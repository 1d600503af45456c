"""Keep the worker's environment from the processes it starts.

Every step's header Secret reaches the shard's pod through `envFrom`, so the worker's environment holds
all of them; a `command` step gets only its own in its process environment (headers.py). But a process
of the same user may read its parent's `/proc/<pid>/environ` (and memory) unless the parent is not
"dumpable": the kernel then owns those files by root and refuses ptrace-style access. So the worker
makes itself non-dumpable before it starts any step. Its children are dumpable as usual (exec resets
the flag), which only concerns their own environment.
"""

from __future__ import annotations

import ctypes
import sys

PR_SET_DUMPABLE = 4


def keep_environment_private() -> bool:
    """Make this process non-dumpable (Linux); False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False
