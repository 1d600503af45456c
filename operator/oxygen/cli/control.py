"""Changing a run through its spec (what a GitOps commit would change), and waiting for the effect.

Each change is a merge patch conditional on the resourceVersion read just before, retried on a
conflict, so a concurrent edit is never lost and `retryFailed` is bumped exactly once per call.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from oxygen.api.run import TERMINAL_PHASES
from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_OK, CliError, NotFound
from oxygen.cli.resources import Resources
from oxygen.cli.runview import Shape, print_run
from oxygen.cli.shapes import run_shape
from oxygen.kube.errors import ApiError

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


HELP = {
    "pause": "suspend the run's Jobs (spec.paused: true)",
    "resume": "resume a paused run (spec.paused: false)",
    "cancel": "cancel the run (spec.cancel: true; unfinished items are skipped)",
    "retry-failed": "re-run only the failed items (bumps spec.retryFailed)",
}


def add_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    verbs: Sequence[str],
    kind: str | None = None,
    shape: Shape = run_shape,
) -> None:
    """`<group> <verb> <run> [--wait] [--timeout S]` for each verb; `kind`: only runs of that kind,
    `shape`: how the run is printed."""
    for verb in verbs:
        cmd = sub.add_parser(verb, parents=[common], help=HELP[verb])
        cmd.add_argument("run", help="the run's name or id (uid)")
        cmd.add_argument("--wait", action="store_true", help="block until the change took effect")
        cmd.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
        cmd.set_defaults(
            handler=cluster_command(control_command), change=CHANGES[verb], run_kind=kind, shape=shape
        )


def control_command(args: argparse.Namespace, session: Session) -> int:
    change: Change = args.change
    run = apply(session.api, args.run, change, getattr(args, "run_kind", None))
    if args.wait:
        run = wait(session.api, run, change, args.timeout)
    print_run(run, session.json, getattr(args, "shape", run_shape))
    return EXIT_OK


def run_kind(run: Obj) -> str:
    return str((run.get("status") or {}).get("kind") or (run.get("spec") or {}).get("kind") or "column")


def find_run_of_kind(api: Resources, ref: str, kind: str | None) -> Obj:
    """The run `ref`; NotFound when it is a run of another kind than `kind` (None: any kind)."""
    run = api.find_run(ref)
    if kind is not None and run_kind(run) != kind:
        raise NotFound(f'{kind} run "{ref}" not found: it is a {run_kind(run)} run')
    return run


def apply(api: Resources, ref: str, change: Change, kind: str | None = None) -> Obj:
    """Patch the run's spec; returns the patched Run."""
    run = find_run_of_kind(api, ref, kind)
    for _ in range(CONFLICT_ATTEMPTS):
        refusal = change.refuse(run)
        if refusal is not None:
            raise CliError(refusal)
        try:
            return api.patch_run_spec(run, change.spec(run))
        except ApiError as err:
            if not err.conflict:
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


def wait_finished(api: Resources, run: Obj, timeout: float) -> Obj:
    """Poll the run until its phase is terminal; returns the run as last read."""
    deadline = time.monotonic() + timeout
    while _phase(run) not in TERMINAL_PHASES:
        if time.monotonic() >= deadline:
            raise CliError(
                f'timed out after {timeout:g}s waiting for run "{run["metadata"]["name"]}" to finish '
                f"(phase is {_phase(run)})"
            )
        time.sleep(POLL_SECONDS)
        run = _reread(api, run)
    return run


def _reread(api: Resources, run: Obj) -> Obj:
    meta = run["metadata"]
    fresh = api.get_run(meta["namespace"], meta["name"])
    if fresh is None:
        raise NotFound(f'run "{meta["name"]}" was deleted from namespace "{meta["namespace"]}"')
    return fresh
