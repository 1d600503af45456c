"""What an error in a Run's pass means: the run's own fault (it fails, once), or ours (retry, slowly).

A Run is user input. Whatever the API server accepts must end as a phase or a condition with a
message on that Run, never as a crash, a traceback every two seconds, or a daemon that stops:
- an input error (a spec the models refuse, inputs nested too deep, a number the arithmetic cannot
  hold, an object the API server refuses to create for the run) fails the run with a condition and
  one Warning Event; a failed run is not reconciled again;
- anything else (the API server away, a bug) is retried with exponential backoff, one log line per
  attempt (the traceback only at the first), and a `Stalled` condition saying what is wrong.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from oxygen.api.nesting import deep_input, run_inputs
from oxygen.api.run import Run, RunStatus
from oxygen.controllers.run.apply import ObjectRefused, server_message
from oxygen.controllers.run.types import RunFailure, RunState
from oxygen.kube.client import ApiException

log = logging.getLogger("oxygen.controllers.run")

FIRST_BACKOFF = 2.0
MAX_BACKOFF = 60.0
MAX_MESSAGE = 1024

# Errors whose cause is the Run's content: the same spec fails the same way on every pass.
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValidationError,
    RecursionError,
    ArithmeticError,  # decimal.InvalidOperation, Overflow: NaN, 1e999, …
    ValueError,
    UnicodeError,
)


@dataclass
class DaemonMemory:
    """What one Run's daemon keeps between passes, beside the RunState."""

    state: RunState | None = None
    errors: int = 0  # unexpected errors in a row
    retry_at: float = 0.0
    stalled_message: str | None = None  # the Stalled condition last written
    # A planned run that must fail: it is stopped first (Jobs deleted, items settled, credits
    # accounted), over as many passes as that takes, from the last body a pass accepted (without
    # its inputs: a planned run's shards carry them).
    failure: RunFailure | None = None
    last_good: dict[str, Any] | None = None
    logged: set[str] = field(default_factory=set)  # error kinds whose traceback was logged


def describe(err: BaseException) -> str:
    """A short, user-facing text of an input error (no input values: they may be large or secret)."""
    if isinstance(err, ValidationError):
        parts = []
        for e in err.errors(include_url=False, include_input=False)[:3]:
            where = ".".join(str(p) for p in e.get("loc", ()))
            parts.append(f"{where}: {e.get('msg', '')}" if where else str(e.get("msg", "")))
        more = err.error_count() - len(parts)
        text = "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
        return f"the spec is invalid: {text}"[:MAX_MESSAGE]
    if isinstance(err, RecursionError):
        return "the spec nests too deep for the operator to process"
    if isinstance(err, ArithmeticError):
        return f"a number in the spec cannot be computed with ({type(err).__name__})"
    return f"the spec is invalid: {err}"[:MAX_MESSAGE]


def as_failure(err: BaseException) -> RunFailure | None:
    """The run's failure when `err` is the run's own fault, else None."""
    if isinstance(err, RunFailure):
        return err
    if isinstance(err, ObjectRefused):
        return RunFailure("ObjectRefused", str(err)[:MAX_MESSAGE])
    if isinstance(err, INPUT_ERRORS):
        reason = "InputsTooDeep" if isinstance(err, RecursionError) else "InvalidSpec"
        return RunFailure(reason, describe(err))
    return None


def snapshot(body: dict[str, Any], planned: bool = False) -> dict[str, Any] | RunFailure:
    """A private copy of the Run's body for one pass, or the failure of a body too deep to copy.

    The inputs' depth fails a run only until it is planned: from then on its shards carry the
    inputs, and an edit of `spec.items` must not fail (and so orphan) a run whose Jobs are working;
    the pass gets the body without the spec's inputs instead."""
    message = deep_input(run_inputs(body))
    if message is not None:
        if not planned:
            return RunFailure("InputsTooDeep", message)
        body = without_inputs(body)
    try:
        return copy.deepcopy(body)
    except RecursionError:
        return RunFailure("InputsTooDeep", describe(RecursionError()))


def without_inputs(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with the spec's free-form inputs emptied (no walk into them: they may nest deep)."""
    spec = dict(body.get("spec") or {})
    if "inputs" in spec:
        spec["inputs"] = {}
    items = spec.get("items")
    if isinstance(items, list):
        spec["items"] = [
            {**item, "inputs": {}} if isinstance(item, dict) and "inputs" in item else item for item in items
        ]
    return {**body, "spec": spec}


def parseable(body: dict[str, Any]) -> dict[str, Any] | None:
    """A copy of a planned run's `body` when the Run model takes it, else None."""
    taken = snapshot(body, planned=True)
    if isinstance(taken, RunFailure):
        return None
    try:
        Run.model_validate(taken)
    except INPUT_ERRORS:
        return None
    return taken


def state_of(body: dict[str, Any]) -> RunState:
    """The daemon's memory rebuilt from the stored status (a status it cannot read starts empty)."""
    try:
        return RunState.from_body(body)
    except ValidationError:
        return RunState(status=RunStatus())


def backoff(memory: DaemonMemory, err: BaseException, where: str) -> float:
    """Count an unexpected error; log it (the traceback once per kind); how long to wait."""
    memory.errors += 1
    delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2.0 ** min(memory.errors - 1, 16))
    memory.retry_at = time.monotonic() + delay
    kind = short(err)
    first = kind not in memory.logged
    memory.logged.add(kind)
    log.warning(
        "%s: reconcile failed (%s); attempt %d, next in %.0f s",
        where,
        kind,
        memory.errors,
        delay,
        exc_info=err if first else None,
    )
    return delay


def run_gone(err: BaseException, name: str) -> bool:
    """The API server answered that this Run no longer exists (deleted while a queued or running pass
    was about it): nothing to reconcile, retry or log; its DELETED event forgets it."""
    if not isinstance(err, ApiException) or err.status != 404:
        return False
    try:
        details = json.loads(err.body or "{}").get("details") or {}
    except (TypeError, ValueError):
        return False
    return details.get("kind") == "runs" and details.get("name") == name


def short(err: BaseException) -> str:
    """One line naming the error (an ApiException's text holds every response header)."""
    if isinstance(err, ApiException):
        return f"ApiException: {err.status} {err.reason}: {server_message(err)}"[:MAX_MESSAGE]
    first = str(err).splitlines()[0] if str(err) else ""
    return f"{type(err).__name__}: {first}"[:300]


def stalled_message(err: BaseException) -> str:
    return f"the operator cannot reconcile this run and keeps retrying ({short(err)})"
