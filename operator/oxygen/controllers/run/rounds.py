"""Later rounds: retry failed items, promote the items a smoke test or dry run skipped.

Pure. reconcile.py pages the run's shards (observe.Reader) into `collect`, takes the credit decision
under the account's lock, and applies in the order that survives a crash at any point: the new
shards, then the old items marked superseded (`supersede`, one holder at a time), then the round
recorded in the status. An item superseded into a round still belongs to it when recomputed, so a
restart that finds the new shards but no recorded round moves exactly the same items again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from oxygen.api.run import Round, Run, RunSpec, RunStatus
from oxygen.api.runshard import ItemResult, RunShard, RunShardSpec, RunShardStatus, ShardItem
from oxygen.controllers.run import credits
from oxygen.controllers.run.jobs import NEVER_ATTEMPTED
from oxygen.controllers.run.plan import new_round
from oxygen.controllers.run.types import Event, Plan
from oxygen.credits import ledger
from oxygen.credits.gate import Decision
from oxygen.planning.items import PlannedItem
from oxygen.planning.names import round_of
from oxygen.planning.rounds import SKIP_DRY_RUN, SKIP_SMOKE, Group, Shape, shard_bodies
from oxygen.settings import OperatorSettings
from oxygen.status.shard import shard_phase, summarize

Reason = Literal["promotion", "retry"]
Wanted = Callable[[ItemResult, RunShard], bool]


def retryable(item: ItemResult, shard: RunShard) -> bool:
    """Failed items, and items skipped because no worker ever reached them (jobs.NEVER_ATTEMPTED); in
    a workflow also the steps skipped because an earlier one failed."""
    if item.status == "failed":
        return True
    if item.status == "skipped" and (item.error or "").startswith(NEVER_ATTEMPTED):
        return True
    return (
        shard.spec.sequence == "steps"
        and item.status == "skipped"
        and (item.error or "").startswith("skipped: step")
    )


def skipped_by_mode(item: ItemResult, shard: RunShard) -> bool:
    """Items a smoke test (outside its sample) or a dry run recorded skipped."""
    return (
        not shard.spec.execute
        and item.status == "skipped"
        and shard.spec.skip_reason in (SKIP_SMOKE, SKIP_DRY_RUN)
    )


def wants_retry(run: Run, status: RunStatus) -> bool:
    return status.phase in ("completed", "succeeded") and run.spec.retry_failed > status.observed_retry_failed


@dataclass
class Collected:
    """The items a new round takes over, and the shards that hold them now."""

    round: int
    moved: list[tuple[ItemResult, ShardItem]] = field(default_factory=list)
    holders: set[str] = field(default_factory=set)
    first: RunShardSpec | None = None
    # A workflow's succeeded steps, for the new round's templates.
    steps: dict[str, Any] = field(default_factory=dict)


def collect(status: RunStatus, shards: Iterable[RunShard], wanted: Wanted) -> Collected:
    """One pass over the run's shards (paged by the caller): what moves into round len(rounds)."""
    found = Collected(round=len(status.rounds))
    for shard in shards:
        found.first = found.first or shard.spec
        for item in shard.status.items:
            if item.step and item.status == "succeeded" and item.superseded_by is None:
                found.steps[item.step] = {"outputs": item.outputs}
        if shard.spec.round >= found.round:
            continue
        declared = {i.id: i for i in shard.spec.items}
        for item in shard.status.items:
            mine = item.superseded_by is not None and round_of(item.superseded_by) == found.round
            if mine or (item.superseded_by is None and wanted(item, shard)):
                # Pages found while running live only in the status, with their inputs.
                spec_item = declared.get(item.id) or ShardItem(
                    id=item.id,
                    row_id=item.row_id,
                    inputs=item.inputs if isinstance(item.inputs, dict) else {},
                )
                found.moved.append((item, spec_item))
                found.holders.add(shard.metadata.name)
    return found


def cost(run: Run, status: RunStatus, found: Collected) -> Decimal:
    return credits.unit_cost(run, status) * len(found.moved)


def later_shape(
    first: RunShardSpec,
    steps: dict[str, Any],
    spec: RunSpec | None = None,
    planned_provider: str | None = None,
) -> Shape:
    """A later round executes like the first; a workflow's also knows the steps that succeeded.

    A column run's inline producer is the spec's as it is now (fix the producer, then retry); one
    planned on a Provider (`planned_provider`), or that names one now, keeps the Provider as resolved
    at planning (its price is what the run holds): editing the spec to an inline producer later
    never changes what a started run calls, nor at what price."""
    if first.sequence == "independent":
        if provider_bound(spec, planned_provider):
            return Shape(producer=first.producer, retry=first.retry)
        return Shape()
    context: dict[str, Any] | None = None
    if first.sequence == "steps":
        context = {"inputs": (first.context or {}).get("inputs", {}), "steps": steps}
    return Shape(
        sequence=first.sequence,
        context=context,
        max_pages=first.max_pages,
        producer=first.producer,
        # A workflow's steps may name Providers: their retry stays as tightened at planning.
        retry=first.retry if first.sequence == "steps" else None,
    )


def provider_bound(spec: RunSpec | None, planned_provider: str | None) -> bool:
    """Whether a column run's later rounds keep the producer resolved at planning."""
    named = spec is not None and spec.producer is not None and spec.producer.provider_ref is not None
    return named or planned_provider is not None


def unpriced(run: Run, status: RunStatus, first: RunShardSpec | None) -> list[str]:
    """Where a later round would call out at a price the run sets itself: a column run's producer
    taken from the spec as it is now (not a Provider's). Other kinds reuse what planning checked."""
    spec = run.spec
    if first is None or first.sequence != "independent" or provider_bound(spec, status.planned_provider):
        return []
    producer = spec.producer
    if producer is None or (producer.http is None and producer.command is None):
        return []
    return ["spec.producer"]


@dataclass
class NewRound:
    """The shards of a new round (apply first), where each moved item goes, and the status that
    records the round (apply after every holder is superseded)."""

    shards: Plan
    new_home: dict[str, str]
    commit: RunStatus


def start(
    run_body: dict[str, Any],
    run: Run,
    status: RunStatus,
    found: Collected,
    reason: Reason,
    settings: OperatorSettings,
    now: str,
) -> NewRound:
    """The round that re-executes `found.moved` (non-empty; credits already admitted)."""
    assert found.first is not None
    amount = cost(run, status, found)
    moved = sorted(found.moved, key=lambda pair: int(pair[0].id) if pair[0].id.isdigit() else pair[0].id)
    planned = [
        PlannedItem(
            item.id,
            item.row_id,
            spec_item.inputs,
            step=spec_item.step,
            producer=spec_item.producer,
            inputs_template=spec_item.inputs_template,
        )
        for item, spec_item in moved
    ]
    attempts = {item.id: item.attempt_count for item, _ in moved}
    shape = later_shape(found.first, found.steps, run.spec, status.planned_provider)
    bodies = shard_bodies(run_body, run.spec, found.round, [Group(planned, attempts=attempts)], shape)
    shards = new_round(run_body, status, bodies, settings)
    new_home = {item["id"]: b["metadata"]["name"] for b in bodies for item in b["spec"]["items"]}
    status.rounds.append(
        Round(round=found.round, reason=reason, items=len(moved), shards=len(bodies), started_at=now)
    )
    if status.metered:
        status.ledger = ledger.reserve(status.ledger, amount, now, found.round)
        status.credits_reserved = amount
    status.phase = "running"
    status.finished_at = None
    return NewRound(shards, new_home, status)


def supersede(shard: RunShard, new_home: dict[str, str], round_: int) -> RunShardStatus | None:
    """The holder's status with its moved items pointing at their new shard (None: nothing to change)."""
    if shard.spec.round >= round_:
        return None
    changed = False
    for item in shard.status.items:
        if item.id in new_home and item.superseded_by is None:
            item.superseded_by = new_home[item.id]
            changed = True
    if not changed:
        return None
    return shard.status.model_copy(
        update={"summary": summarize(shard.status.items), "phase": shard_phase(shard.status.items)}
    )


def restore(shard: RunShard, round_: int) -> RunShardStatus | None:
    """The holder's status with the items it gave to `round_` its own again (that round was never
    recorded and will not be: its credit decision refused it); None when nothing changes."""
    changed = False
    for item in shard.status.items:
        if item.superseded_by is not None and round_of(item.superseded_by) == round_:
            item.superseded_by = None
            changed = True
    if not changed:
        return None
    return shard.status.model_copy(
        update={"summary": summarize(shard.status.items), "phase": shard_phase(shard.status.items)}
    )


def retry_events(run: Run, count: int, decision: Decision | None) -> list[Event]:
    """What a retry says once recorded: refused (account says fail), started, or nothing to retry."""
    if decision is not None and not decision.allowed:
        return [Event("InsufficientCredits", f"retry refused: {decision.message}", "Warning")]
    if count:
        return [Event("Retrying", f"retrying {count} failed items (retryFailed={run.spec.retry_failed})")]
    return [Event("NothingToRetry", "retryFailed was bumped but the run has no failed items")]


def promotion_events(count: int) -> list[Event]:
    return (
        [Event("Promoted", f"mode is live: executing the {count} items that were skipped")] if count else []
    )
