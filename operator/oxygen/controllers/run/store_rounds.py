"""Later rounds of a run whose items are rows of the item store: made in the store, not from its shards.

A retry or a promotion counts what it takes over with one indexed query (`ItemStore.round_size`), takes
the credit decision on that count, then makes the round with one INSERT … SELECT
(`ItemStore.next_round_from`: the new round's rows, the old ones marked superseded), creates the round's
shards as ranges of those rows, puts the holders' summaries right (their superseded items no longer
count), and records the round. No shard is read for its items and no item passes through the operator.

Crash-safe in the same order as rounds.py: a pass that dies after making the round's rows finds them
again (`round_size` counts the stored round, `next_round_from` leaves it as it is) and goes on; a round
refused for good after its rows were made is undone (`ItemStore.abandon_round`) with its never-run shards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from oxygen.api.run import Round, RunStatus
from oxygen.api.runshard import RunShardSpec
from oxygen.controllers.run import credits, rounds
from oxygen.controllers.run.plan import new_round
from oxygen.controllers.run.types import Event, Observed, Plan, RunState
from oxygen.credits import ledger
from oxygen.credits.gate import decide
from oxygen.itemstore.store import ItemStore
from oxygen.planning.names import shard_name
from oxygen.planning.rounds import range_bodies
from oxygen.status.shard import shard_phase, summarize

if TYPE_CHECKING:
    from oxygen.controllers.run.reconcile import RunController


def applies(store: ItemStore | None, obs: Observed) -> bool:
    """The run keeps its items in the store (its round 0 shards are ranges)."""
    return store is not None and any(v.stored for v in obs.shards.values() if v.round == 0)


def start(
    ctl: RunController,
    obs: Observed,
    status: RunStatus,
    state: RunState,
    pending: list[Event],
    reason: rounds.Reason,
) -> bool:
    """A retry (`reason` "retry") or promotion round; True when it waits (credits, an unpriced producer)."""
    store = ctl.read.store
    assert store is not None
    run = obs.run
    uid, ns = run.metadata.uid, run.metadata.namespace
    takes = "retry" if reason == "retry" else "promotion"
    with ctl.locks.hold(ns, run.spec.credit_account):
        round_ = len(status.rounds)
        count = store.round_size(uid, round_, takes)
        first, _ = ctl.read.shard(run, shard_name(run.metadata.name, 0, 0), rows=False)
        decision = None
        if count:
            snapshot = ctl.read.credits(run)
            refusal = credits.refuse_unpriced(
                obs, status, snapshot, rounds.unpriced(run, status, first.spec), takes
            )
            if refusal is not None:
                pending += refusal
                return True
            if status.metered:
                decision = decide(snapshot, uid, credits.unit_cost(run, status) * count)
        if decision is not None and not decision.allowed:
            if reason == "promotion" or decision.on_insufficient == "queue":
                pending += credits.refused(obs, status, decision, takes)
                return True
            _abandon(ctl, store, obs, state, round_)
            count = 0
        elif count:
            count = _make(ctl, store, obs, status, state, round_, reason, first.spec)
        if reason == "retry":
            status.observed_retry_failed = run.spec.retry_failed
            events = rounds.retry_events(run, count, decision)
        else:
            status.credits_estimated += credits.unit_cost(run, status) * count
            events = rounds.promotion_events(count)
            if not count:
                return False
        status.observed_generation = run.metadata.generation
        ctl.applier.apply(Plan(status=status, events=events), obs.body, state)
    return False


def _make(
    ctl: RunController,
    store: ItemStore,
    obs: Observed,
    status: RunStatus,
    state: RunState,
    round_: int,
    reason: rounds.Reason,
    first: RunShardSpec,
) -> int:
    """The round's rows, its shards, the holders' summaries; the round in `status` (written by the
    caller). Returns how many items it has."""
    run = obs.run
    count = store.next_round_from(run.metadata.uid, round_, "retry" if reason == "retry" else "promotion")
    shape = rounds.later_shape(first, {}, run.spec, status.planned_provider)
    bodies = range_bodies(obs.body, run.spec, round_, count, shape)
    ctl.applier.apply(new_round(obs.body, status, bodies, ctl.settings), obs.body, state)
    _fix_holders(ctl, obs, state, round_, every=False)
    status.rounds.append(
        Round(round=round_, reason=reason, items=count, shards=len(bodies), started_at=obs.now)
    )
    if status.metered:
        amount = credits.unit_cost(run, status) * count
        status.ledger = ledger.reserve(status.ledger, amount, obs.now, round_)
        status.credits_reserved = amount
    status.phase = "running"
    status.finished_at = None
    return count


def _abandon(ctl: RunController, store: ItemStore, obs: Observed, state: RunState, round_: int) -> None:
    """A round refused for good whose rows (and maybe shards) an earlier pass made: undone."""
    store.abandon_round(obs.run.metadata.uid, round_)
    _fix_holders(ctl, obs, state, round_, every=True)
    orphans = [(v.name, v.uid) for v in obs.shards.values() if v.round >= round_]
    if orphans:
        ctl.applier.apply(Plan(delete_shards=sorted(orphans)), obs.body, state)


def _fix_holders(ctl: RunController, obs: Observed, state: RunState, round_: int, every: bool) -> None:
    """The summaries of the earlier rounds' shards as their rows say now (items taken over no longer
    count; given back, they count again). Without `every`, only shards that held failed or skipped items."""
    run = obs.run
    for view in sorted(obs.shards.values(), key=lambda v: (v.round, v.index)):
        if view.round >= round_ or not (every or view.summary.failed or view.summary.skipped):
            continue
        shard, _ = ctl.read.shard(run, view.name)
        summary = summarize(shard.status.items)
        if summary == view.summary:
            continue
        fixed = shard.status.model_copy(
            update={"items": [], "summary": summary, "phase": shard_phase(shard.status.items)}
        )
        ctl.applier.apply(Plan(shard_status=[(view.name, fixed.wire())]), obs.body, state)
