"""A `command` step cannot read the worker's environment (every step's header Secret) from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SECRET = "s3cr3t-of-another-step"

# Runs as an unprivileged user (root may read any process's environ): the parent holds the secret in
# its environment, optionally becomes non-dumpable, then a child of the same user tries to read it.
PARENT = textwrap.dedent(
    """
    import ctypes, os, subprocess, sys
    from oxygen.execution.privacy import keep_environment_private
    os.setgid(65534); os.setuid(65534)
    # Changing user resets the flag to the system default: start from "dumpable", like a pod's process.
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)
    if sys.argv[1] == "private":
        assert keep_environment_private()
    # The step: a command of the same user reading its parent's environment.
    done = subprocess.run(["/bin/sh", "-c", "cat /proc/$PPID/environ"], capture_output=True, text=True)
    print(done.returncode, done.stdout, done.stderr)
    """
)


def _parent(mode: str) -> str:
    env = {**os.environ, "OXYGEN_STEP1_HEADER_Authorization": SECRET}
    done = subprocess.run(
        [sys.executable, "-c", PARENT, mode], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0, reason="needs Linux and root")
def test_a_child_reads_a_dumpable_parents_environment() -> None:
    # The control: without the worker's step, the attack works.
    assert SECRET in _parent("plain")


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0, reason="needs Linux and root")
def test_a_child_cannot_read_the_workers_environment() -> None:
    out = _parent("private")
    assert SECRET not in out
    assert "Permission denied" in out
