"""The Run's status from its children: counts, phase, conditions, the write rate limit, phase Events.

Pure: given the observed snapshot and the status the pass worked on, it says what to write (or
nothing) and which Events to post once the write succeeded.
"""

from __future__ import annotations

from typing import Any

from oxygen.api.common import Condition
from oxygen.api.run import TERMINAL_PHASES, Run, RunPhase, RunStatus
from oxygen.controllers.run import credits
from oxygen.controllers.run.types import Event, EventType, Observed, Pending, Plan, RunFailure
from oxygen.status import run as aggregate
from oxygen.status.views import ShardView

# Status writes are rate-limited per run; phase changes are written at once.
MIN_STATUS_INTERVAL = 1.0
# A run over a Table whose finished items are not all written to it yet (the database's message).
CELLS_PENDING = "CellsPending"


def stamp(run: Run, status: RunStatus, web_base_url: str) -> None:
    """The fields every written status carries, from the spec and the operator's settings."""
    status.kind = run.spec.kind
    status.mode = run.spec.mode
    status.trigger = run.spec.trigger
    status.observed_generation = run.metadata.generation
    status.web_url = f"{web_base_url.rstrip('/')}/runs/{run.metadata.namespace}/{run.metadata.name}"


def comparable(status: RunStatus) -> dict[str, Any]:
    """The status without timestamps that change on every pass."""
    data = status.wire()
    data["conditions"] = [
        {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in data.get("conditions", [])
    ]
    return data


def failed(obs: Observed, status: RunStatus, failure: RunFailure, web_base_url: str) -> Plan:
    """The run cannot proceed: failed, with the reason on its conditions and a Warning Event."""
    run = obs.run
    stamp(run, status, web_base_url)
    return mark_failed(status, failure, obs.now, run.metadata.generation)


def mark_failed(status: RunStatus, failure: RunFailure, now: str, generation: int) -> Plan:
    """The failed status and its Warning Event; needs no Run model (a spec the models refuse fails too)."""
    status.phase = "failed"
    status.message = failure.message
    status.finished_at = now
    status.started_at = status.started_at or status.finished_at
    status.observed_generation = generation
    status.conditions = aggregate.conditions_for(
        "failed", aggregate.ItemCounts(), failure.message, status.conditions, now, generation
    )
    for cond in status.conditions:
        if cond.type in ("Failed", "Stalled", "Complete"):
            cond.reason = failure.reason
    return Plan(status=status, events=[Event(failure.reason, failure.message, "Warning")])


def observed(
    obs: Observed,
    status: RunStatus,
    cleaned_up: bool,
    round_waiting: bool,
    web_base_url: str,
    pending: list[Event] | None = None,
    unwritten: Pending | None = None,
) -> Plan:
    """The status derived from the children; written when it changed (phase changes at once, other
    changes at most every MIN_STATUS_INTERVAL). `pending` Events go out with the write, or not at all
    (the next pass decides them again from the status then written). `unwritten`: a run over a Table
    whose finished items' cells (or an ingestion's rows) the database did not take yet; it stays
    running, condition CellsPending, until they are written."""
    run = obs.run
    shards = list(obs.shards.values())
    if run.spec.kind == "ingestion":
        # Pages are found one by one: the total is what was found so far.
        status.items_total = max(status.items_total, aggregate.items_seen(shards))
    counts = aggregate.item_counts(shards, status.items_total)
    previous_phase = obs.written.phase
    if shards_went(previous_phase, shards, counts, status, obs.written):
        return Plan()
    phase = aggregate.derive_phase(run.spec, status, counts, obs.jobs, bool(status.rounds), cleaned_up)
    if (
        unwritten is not None
        and not unwritten.final
        and phase in ("succeeded", "completed")
        and previous_phase not in TERMINAL_PHASES
    ):
        phase = "running"  # a run that says it finished has its cells written
    if (
        phase == "running"
        and previous_phase == "queued"
        and not obs.jobs
        and not any(s.execute for s in shards)
    ):
        phase = "queued"
    status.phase = phase
    status.items_pending = counts.pending
    status.items_cached = sum(s.summary.cached for s in shards)
    status.items_running = counts.running
    status.items_retrying = counts.retrying
    status.items_succeeded = counts.succeeded
    status.items_failed = counts.failed
    status.items_skipped = counts.skipped
    credits.account(obs, status, counts, phase in TERMINAL_PHASES, round_waiting)
    status.shards = aggregate.shard_counts(shards, obs.jobs)
    status.failed_items = aggregate.failed_sample(shards) or list(obs.failed_sample)
    status.providers = aggregate.provider_summaries(shards)
    status.finished_at = (status.finished_at or obs.now) if phase in TERMINAL_PHASES else None
    # A worker that could not start says why on its shard; the Run carries it (else no message).
    status.message = aggregate.worker_problem(shards) or None
    status.conditions = aggregate.conditions_for(
        phase, counts, status.message or "", status.conditions, obs.now, run.metadata.generation
    )
    if previous_phase not in TERMINAL_PHASES:  # a finished run's cells are not looked at again
        status.conditions = cells_condition(status.conditions, unwritten, obs.now, run.metadata.generation)
    stamp(run, status, web_base_url)
    if comparable(status) == comparable(obs.written):
        return Plan()
    phase_changed = phase != previous_phase
    if not phase_changed and obs.clock - obs.last_write < MIN_STATUS_INTERVAL:
        return Plan()
    events = list(pending or [])
    if phase_changed:
        events.append(announce(previous_phase, phase, counts))
    return Plan(status=status, events=events)


def shards_went(
    previous: RunPhase,
    shards: list[ShardView],
    counts: aggregate.ItemCounts,
    status: RunStatus,
    written: RunStatus,
) -> bool:
    """A finished run whose shards (not its round) went: deleted by hand, or by the deletion of its
    namespace before the Run itself. The status written is the run's record; counting what is left
    would make it `running` again with its finished items pending."""
    return (
        previous in ("succeeded", "completed")
        and counts.unfinished > 0
        and len(status.rounds) == len(written.rounds)
        and not any(s.summary.pending or s.summary.running or s.summary.retrying for s in shards)
    )


def cells_condition(
    conditions: list[Condition], unwritten: Pending | None, now: str, generation: int
) -> list[Condition]:
    """CellsPending with the database's message while results wait to be written to the Table; False
    once they are (absent on runs that never waited)."""
    if unwritten is not None and unwritten.final:
        message = (
            "finished items could not be written to the Table, tried for about 20 minutes: "
            f"{unwritten.message}; their cells stay empty (a column run with rows: empty fills them)"
        )
        return aggregate.set_condition(
            conditions, CELLS_PENDING, True, "CellsNotWritten", message, now, generation
        )
    if unwritten is not None:
        message = f"finished items not yet written to the Table: {unwritten.message}"
        return aggregate.set_condition(
            conditions, CELLS_PENDING, True, unwritten.reason, message, now, generation
        )
    if any(c.type == CELLS_PENDING and c.status == "True" for c in conditions):
        written = "every finished item is written to the Table"
        return aggregate.set_condition(
            conditions, CELLS_PENDING, False, "CellsWritten", written, now, generation
        )
    return conditions


def announce(old: RunPhase, new: RunPhase, counts: aggregate.ItemCounts) -> Event:
    """The Event of a phase change."""
    totals = f"{counts.succeeded} succeeded, {counts.failed} failed, {counts.skipped} skipped"
    said: dict[str, tuple[str, str, EventType]] = {
        "running": (
            "Started" if old == "queued" else "Resumed",
            f"run is running ({totals} so far)",
            "Normal",
        ),
        "paused": ("Paused", f"run paused: no shard runs ({totals} so far)", "Normal"),
        "succeeded": ("Succeeded", f"run succeeded: {totals}", "Normal"),
        "completed": ("Completed", f"run completed with failed items: {totals}", "Warning"),
        "canceled": ("Canceled", f"run canceled: {totals}; unfinished items skipped", "Normal"),
        "queued": ("Queued", "run is queued", "Normal"),
        "failed": ("Failed", "run failed", "Warning"),
    }
    reason, message, type_ = said[new]
    return Event(reason, message, type_)
