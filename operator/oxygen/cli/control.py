"""Changing a run through its spec (what a GitOps commit would change), and waiting for the effect.

Each change is a merge patch conditional on the resourceVersion read just before, retried on a
conflict, so a concurrent edit is never lost and `retryFailed` is bumped exactly once per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from oxygen.api.run import TERMINAL_PHASES
from oxygen.cli.errors import CliError, NotFound
from oxygen.cli.resources import Resources

CONFLICT_ATTEMPTS = 5
POLL_SECONDS = 0.5

Obj = dict[str, Any]


@dataclass(frozen=True)
class Change:
    verb: str
    # The spec fields to set, computed from the run as last read.
    spec: Callable[[Obj], Obj]
    # Done when this holds for the run; raises CliError when it never will.
    took_effect: Callable[[Obj, Obj], bool]
    waiting_for: str
    # None when the change is allowed from the run's current state, else why not.
    refuse: Callable[[Obj], str | None] = lambda run: None


def _phase(run: Obj) -> str:
    return str((run.get("status") or {}).get("phase") or "queued")


def _paused(run: Obj, patched: Obj) -> bool:
    # A finished run cannot become paused: the pause took effect as far as it ever will.
    return _phase(run) == "paused" or _phase(run) in TERMINAL_PHASES


def _resumed(run: Obj, patched: Obj) -> bool:
    return _phase(run) == "running" or _phase(run) in TERMINAL_PHASES


def _canceled(run: Obj, patched: Obj) -> bool:
    if _phase(run) == "failed":
        raise CliError(f'run "{run["metadata"]["name"]}" failed before the cancel took effect')
    return _phase(run) == "canceled"


def _retried(run: Obj, patched: Obj) -> bool:
    wanted = int(patched["spec"].get("retryFailed", 0))
    observed = int((run.get("status") or {}).get("observedRetryFailed", 0))
    if observed >= wanted:
        return True
    if _phase(run) in ("failed", "canceled"):
        raise CliError(f'run "{run["metadata"]["name"]}" is {_phase(run)}: retryFailed will not be applied')
    return False


def _refuse_retry(run: Obj) -> str | None:
    phase = _phase(run)
    if phase in ("failed", "canceled"):
        return (
            f'run "{run["metadata"]["name"]}" is {phase}: only completed or succeeded runs retry failed items'
        )
    return None


def _refuse_after_cancel(run: Obj) -> str | None:
    if (run.get("spec") or {}).get("cancel") or _phase(run) == "canceled":
        return f'run "{run["metadata"]["name"]}" is canceled'
    return None


CHANGES = {
    "pause": Change("pause", lambda run: {"paused": True}, _paused, "paused", _refuse_after_cancel),
    "resume": Change("resume", lambda run: {"paused": False}, _resumed, "running", _refuse_after_cancel),
    "cancel": Change("cancel", lambda run: {"cancel": True}, _canceled, "canceled"),
    "retry-failed": Change(
        "retry-failed",
        lambda run: {"retryFailed": int((run.get("spec") or {}).get("retryFailed", 0)) + 1},
        _retried,
        "retrying its failed items",
        _refuse_retry,
    ),
}


def apply(api: Resources, ref: str, change: Change) -> Obj:
    """Patch the run's spec; returns the patched Run."""
    run = api.find_run(ref)
    for _ in range(CONFLICT_ATTEMPTS):
        refusal = change.refuse(run)
        if refusal is not None:
            raise CliError(refusal)
        try:
            return api.patch_run_spec(run, change.spec(run))
        except ApiException as err:
            if err.status != 409:
                raise
        run = _reread(api, run)
    raise CliError(f'run "{run["metadata"]["name"]}" kept changing under us: try again')


def wait(api: Resources, patched: Obj, change: Change, timeout: float) -> Obj:
    """Poll the run until the change took effect; returns the run as last read."""
    deadline = time.monotonic() + timeout
    run = patched
    while True:
        if change.took_effect(run, patched):
            return run
        if time.monotonic() >= deadline:
            raise CliError(
                f'timed out after {timeout:g}s waiting for run "{run["metadata"]["name"]}" to be '
                f"{change.waiting_for} (phase is {_phase(run)})"
            )
        time.sleep(POLL_SECONDS)
        run = _reread(api, run)


def _reread(api: Resources, run: Obj) -> Obj:
    meta = run["metadata"]
    fresh = api.get_run(meta["namespace"], meta["name"])
    if fresh is None:
        raise NotFound(f'run "{meta["name"]}" was deleted from namespace "{meta["namespace"]}"')
    return fresh
