"""The initial round: resolve the run's items, group them, estimate their cost, plan round 0.

Pure. The sources (a ConfigMap's data, the Workflow) are read by observe.Reader; the credit
decision is taken under the account's lock by reconcile.py and handed in. With an item store a column
run's items are handed back unread (Resolved.source) for apply-side code to stream into the store; the
plan is then made from the observed count (Resolved.stored), never from a list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from oxygen.api.provider import Provider
from oxygen.api.run import Retry, Round, Run, RunStatus
from oxygen.api.runshard import RunShardSpec
from oxygen.api.workflow import Workflow
from oxygen.controllers.run import credits, jobs, preflight
from oxygen.controllers.run import status as run_status
from oxygen.controllers.run.types import Event, NewShard, Observed, Plan, Resolved, RunFailure
from oxygen.credits import ledger
from oxygen.credits.gate import Decision
from oxygen.execution.jobs import worker_identity
from oxygen.planning import rounds
from oxygen.planning.items import ItemsSourceError, PlannedItem, from_inline, parse_rows
from oxygen.planning.names import shard_name
from oxygen.planning.rounds import SKIP_CACHED, SKIP_DUPLICATE, Group, Shape, initial_groups, shard_bodies
from oxygen.settings import OperatorSettings
from oxygen.sources.ceiling import bounded
from oxygen.sources.errors import SourceError

# While queued, the available figure moves with every other run: rewrite it now and then, not on each move.
QUEUED_STATUS_INTERVAL = 10.0
# Without an item store every item's result lives in RunShards in etcd: a run of more items than this is
# refused (README: "The etcd ceiling"). With `--item-store` there is no such limit.
ETCD_ITEM_CEILING = 100_000


# Opens a streamed items source (oxygen.sources): nothing is read until its first item is asked for.
Stream = Callable[[], Iterator[PlannedItem]]


@dataclass(frozen=True)
class Sources:
    """What a run's items are read from (None: not found; only the one the run names is read)."""

    workflow: Workflow | None = None
    config_map: dict[str, str] | None = None
    # itemsFrom.postgres / itemsFrom.url: the opened source (observe.Reader.sources), and how many
    # items it may yield (None: no limit, the items go to the item store).
    stream: Stream | None = None
    ceiling: int | None = ETCD_ITEM_CEILING
    # The Providers the run names (None: not found), and whether each header Secret its pods will
    # reference exists (None: the operator may not tell; see observe.Reader.secret_exists).
    providers: Mapping[str, Provider | None] = field(default_factory=dict)
    secrets: Mapping[str, bool | None] = field(default_factory=dict)
    # A column run over a Table: its selected rows as items (read by controllers/run/tables.py),
    # and with a cache, the cached calls and duplicates among them (item id → outputs / first item).
    table_items: list[PlannedItem] | None = None
    cached: Mapping[str, Any] = field(default_factory=dict)
    followers: Mapping[str, str] = field(default_factory=dict)


def resolve(run: Run, sources: Sources, store: bool = False) -> Resolved:
    """A run's items, how its shards execute, and what each item holds in credits.

    With `store` (an item store), a column run's items come back unread, as `Resolved.source`: they go
    to the store one at a time (item_store.stage), never into a list. Runs with a cache (their hits and
    duplicates are decided over the whole list) and workflows and ingestions stay lists.

    Everything the run names must exist first (preflight.check): nothing is planned otherwise."""
    spec = run.spec
    if spec.kind == "workflow" and sources.workflow is None:
        assert spec.workflow_ref is not None
        raise RunFailure("WorkflowNotFound", f"Workflow {spec.workflow_ref.name!r} not found")
    declared = preflight.uses(run, sources.workflow)
    preflight.check(declared, sources.providers, sources.secrets)
    retry = preflight.retry(spec.retry, declared, sources.providers)
    unpriced = tuple(preflight.unpriced(declared))
    if spec.kind == "workflow":
        assert sources.workflow is not None
        return _resolve_workflow(run, sources.workflow, sources.providers, retry, unpriced)
    if spec.kind == "ingestion":
        assert spec.ingestion is not None
        ing = spec.ingestion
        first = PlannedItem(
            "0", None, {"query": ing.query, "pageSize": ing.page_size, "cursor": None, "page": 0}
        )
        shape = Shape(sequence="pages", max_pages=ing.max_pages, retry=retry)
        return Resolved([first], shape, ing.cost_per_page, ing.max_pages, unpriced)
    assert spec.producer is not None
    producer = preflight.resolve(spec.producer, sources.providers, retry)
    shape = Shape(producer=producer, retry=retry)
    if run.spec.rows_table is not None:
        if sources.table_items is None:
            raise RunFailure("TableNotFound", f"Table {run.spec.rows_table!r} could not be read")
        items = sources.table_items
    elif store and spec.items_from is not None and spec.items_from.streamed:
        return Resolved([], shape, producer.cost_per_item, 0, unpriced, source=streamed(sources.stream))
    else:
        items = _resolve_items(run, sources)
    if store and not (sources.cached or sources.followers):
        return Resolved([], shape, producer.cost_per_item, 0, unpriced, source=iter(items))
    return Resolved(
        items, shape, producer.cost_per_item, len(items), unpriced, sources.cached, sources.followers
    )


def _resolve_workflow(
    run: Run,
    workflow: Workflow,
    providers: Mapping[str, Provider | None],
    retry: Retry,
    unpriced: tuple[str, ...],
) -> Resolved:
    steps = [(s, preflight.resolve(s.producer, providers)) for s in workflow.spec.steps]
    items = [
        PlannedItem(str(k), None, {}, step=s.name, producer=producer, inputs_template=s.inputs)
        for k, (s, producer) in enumerate(steps)
    ]
    context = {"inputs": {**workflow.spec.inputs, **(run.spec.inputs or {})}, "steps": {}}
    # Steps differ in cost; each unfinished step holds the most expensive one's (never too little).
    unit = max(producer.cost_per_item for _, producer in steps)
    shape = Shape(sequence="steps", context=context, retry=retry)
    return Resolved(items, shape, unit, len(items), unpriced)


def streamed(stream: Stream | None) -> Iterator[PlannedItem]:
    """A streamed source's items one at a time; what stops it fails the run with the source's message."""
    if stream is None:
        raise RunFailure("ItemsSourceNotFound", "the run's items source could not be opened")
    try:
        yield from stream()
    except SourceError as err:
        raise RunFailure(err.reason, err.message) from None


def _resolve_items(run: Run, sources: Sources) -> list[PlannedItem]:
    spec = run.spec
    if spec.items is not None:
        return from_inline(spec.items)
    assert spec.items_from is not None
    if spec.items_from.streamed:
        # Without an item store the items go into the RunShards: up to the ceiling, then refused.
        if sources.ceiling is None:
            return list(streamed(sources.stream))
        try:
            return bounded(streamed(sources.stream), sources.ceiling)
        except SourceError as err:
            raise RunFailure(err.reason, err.message) from None
    data = sources.config_map
    ref = spec.items_from.config_map_key_ref
    assert ref is not None
    if data is None:
        raise RunFailure("ItemsSourceNotFound", f"ConfigMap {ref.name!r} not found")
    if ref.key not in data:
        raise RunFailure("ItemsSourceNotFound", f"ConfigMap {ref.name!r} has no key {ref.key!r}")
    try:
        return parse_rows(data[ref.key], ref.key)
    except ItemsSourceError as err:
        raise RunFailure("ItemsSourceMalformed", f"ConfigMap {ref.name!r}: {err}") from None


def within_ceiling(items: int, item_store: bool) -> None:
    """Refuse a run too big to keep its results in etcd when the operator has no item store."""
    if item_store or items <= ETCD_ITEM_CEILING:
        return
    raise RunFailure(
        "ItemStoreRequired",
        f"the run has {items} items; without an item store a Run holds at most {ETCD_ITEM_CEILING} "
        "(their results live in RunShards in etcd): start the operator with --item-store "
        "(a PostgreSQL item store)",
    )


def stored(resolved: Resolved, count: int) -> Resolved:
    """A resolved run whose round 0 is in the item store, `count` items (item_store.stage)."""
    return replace(resolved, source=None, stored=count, in_scope=count)


def estimate(run: Run, resolved: Resolved) -> Decimal:
    """What the account must cover for round 0."""
    if resolved.stored is None:
        return scope(run, resolved)[1]
    # A dry run estimates what the live run would cost; other modes what they will execute.
    if run.spec.mode == "dry_run":
        return resolved.unit_cost * resolved.stored
    spans = rounds.stored_spans(run.spec, resolved.stored)
    return resolved.unit_cost * sum(end - start for group, start, end in spans if group.execute)


def scope(run: Run, resolved: Resolved) -> tuple[list[Group], Decimal]:
    """Round 0's groups, and the estimate the account must cover."""
    items = resolved.items
    spec = run.spec
    groups = (
        initial_groups(spec, items) if spec.kind == "column" or spec.mode == "dry_run" else [Group(items)]
    )
    if spec.mode == "live" and (resolved.cached or resolved.followers):
        groups = never_pay_twice(items, resolved)
    # A dry run estimates what the live run would cost; other modes what they will execute.
    dry = spec.mode == "dry_run"
    in_scope = (
        resolved.in_scope if dry or spec.kind != "column" else sum(len(g.items) for g in groups if g.execute)
    )
    return groups, resolved.unit_cost * in_scope


def never_pay_twice(items: list[PlannedItem], resolved: Resolved) -> list[Group]:
    """Round 0 of a live run with a cache: the items to call, the cache hits (recorded succeeded at
    once) and the duplicates (waiting for the first item with their inputs)."""
    called = [i for i in items if i.id not in resolved.cached and i.id not in resolved.followers]
    hits = [i for i in items if i.id in resolved.cached]
    repeats = [i for i in items if i.id in resolved.followers]
    groups = [Group(called)] if called else []
    if hits:
        groups.append(Group(hits, execute=False, skip_reason=SKIP_CACHED))
    if repeats:
        groups.append(
            Group(repeats, execute=False, skip_reason=SKIP_DUPLICATE, cached_from=dict(resolved.followers))
        )
    return groups


def initial(
    obs: Observed,
    status: RunStatus,
    resolved: Resolved,
    decision: Decision,
    settings: OperatorSettings,
) -> Plan:
    """Round 0, held against the account; or wait `queued` (or fail, if the account says so).

    A planned round is recorded in the status at once (the Plan's status): it makes the plan durable.
    """
    run = obs.run
    cost = estimate(run, resolved)
    dry = run.spec.mode == "dry_run"
    status.items_total = resolved.count
    status.credits_estimated = cost
    status.credits_per_item = resolved.unit_cost
    ref = run.spec.producer.provider_ref if run.spec.producer is not None else None
    status.planned_provider = ref.name if ref is not None and run.spec.kind == "column" else None
    credits.note(run, status, decision, obs.now)
    if not decision.allowed and not dry:
        if decision.on_insufficient == "fail" and decision.reason == "InsufficientCredits":
            raise RunFailure("InsufficientCredits", decision.message)
        return wait(obs, status, decision, settings.web_base_url)
    if resolved.stored is not None:
        spans = rounds.stored_spans(run.spec, resolved.stored)
        bodies = rounds.stored_bodies(obs.body, run.spec, 0, spans, resolved.shape)
    else:
        bodies = shard_bodies(obs.body, run.spec, 0, scope(run, resolved)[0], resolved.shape)
    plan = new_round(obs.body, status, bodies, settings, resolved.cached)
    status.rounds = [
        Round(round=0, reason="initial", items=resolved.count, shards=len(bodies), started_at=obs.now)
    ]
    status.started_at = status.started_at or obs.now
    if decision.metered and not dry:
        status.ledger = ledger.reserve(status.ledger, cost, obs.now, 0)
        status.credits_reserved = cost
    status.observed_generation = run.metadata.generation
    plan.status = status
    parallelism = jobs.parallelism(run, settings.max_parallelism)
    plan.events.append(
        Event(
            "Planned",
            f"{resolved.count} items in {len(bodies)} shards (mode {run.spec.mode}, "
            f"batchSize {run.spec.batch_size}, parallelism {parallelism}); {decision.message}",
        )
    )
    if parallelism < run.spec.parallelism:
        plan.events.append(Event("ParallelismCapped", jobs.capped_message(run, parallelism), "Warning"))
    return plan


def wait(obs: Observed, status: RunStatus, decision: Decision, web_base_url: str) -> Plan:
    """Stay queued; the Event is posted once per wait, the status says why."""
    first = not credits.waiting(obs.written)
    status.phase = "queued"
    status.message = decision.message
    run_status.stamp(obs.run, status, web_base_url)
    stale = obs.clock - obs.last_write > QUEUED_STATUS_INTERVAL
    if not (first or (stale and run_status.comparable(status) != run_status.comparable(obs.written))):
        return Plan()
    events = [
        Event(
            decision.reason or "InsufficientCredits", f"run waits for credits: {decision.message}", "Warning"
        )
    ]
    return Plan(status=status, events=events if first else [])


def new_round(
    run_body: dict[str, Any],
    status: RunStatus,
    bodies: list[dict[str, Any]],
    settings: OperatorSettings,
    cached: Mapping[str, Any] | None = None,
) -> Plan:
    """A round's shards, and the worker identity that may read them (applied first: see apply.py)."""
    identity: list[tuple[str, dict[str, Any]]] = []
    if settings.worker.service_account is None:
        # The Role names every shard of the run, earlier rounds' too: names are derived, not listed.
        name = run_body["metadata"]["name"]
        recorded = {shard_name(name, r.round, i) for r in status.rounds for i in range(r.shards)}
        identity = worker_identity(run_body, sorted({b["metadata"]["name"] for b in bodies} | recorded))
    shards = []
    for body in bodies:
        spec = RunShardSpec.model_validate(body["spec"])
        initial_status = rounds.initial_status(spec, cached or {})
        shards.append(NewShard(body, None if initial_status is None else initial_status.wire()))
    return Plan(worker_identity=identity, shards=shards)
