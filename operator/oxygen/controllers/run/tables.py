"""A column run over a Table: its rows become the items at planning, and its cells are written as
its items finish (every pass, from the shards whose counts moved since the last write).

The Table and its Secret's DSN are read by the operator (never copied into the run, its shards or
its pods); the database's failures fail planning with the database's message (`RunFailure`), and
make a cell write wait for a later pass, never stop the run: the sync's memory says what is pending
(`Pending`), and the run holds its terminal phase until every finished item's cell is written (an
ingestion's rows alike).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from oxygen.api.provider import Provider
from oxygen.api.run import Run
from oxygen.api.runshard import ItemResult, RunShard
from oxygen.api.table import COLUMN_NAME_PATTERN, Table
from oxygen.controllers.run import item_store
from oxygen.controllers.run.types import Pending, RunFailure
from oxygen.controllers.table.observe import dsn_of
from oxygen.execution.templates import TemplateError, render
from oxygen.itemstore.store import ItemStore
from oxygen.kube.client import ApiException, Kube
from oxygen.planning.items import PlannedItem, item_id
from oxygen.planning.rounds import SKIP_DUPLICATE
from oxygen.status.shard import shard_phase, summarize
from oxygen.status.views import ShardView
from oxygen.tables import cache, cells, ingest, rows
from oxygen.tables.errors import TableError

log = logging.getLogger("oxygen.controllers.run")


def table_of(kube: Kube, namespace: str, name: str) -> tuple[str, Table]:
    """The Table and its DSN; RunFailure when either cannot be read."""
    try:
        body = kube.get("tables", namespace, name)
    except ApiException as err:
        if err.status != 404:
            raise
        raise RunFailure("TableNotFound", f'tables.oxygen.dev "{name}" not found (spec.table)') from None
    table = Table.model_validate(body)
    try:
        return dsn_of(kube, table), table
    except TableError as err:
        raise RunFailure(err.reason, err.message) from None


def target(kube: Kube, run: Run) -> tuple[str, rows.TableRef]:
    """The DSN and the cells' place of a run over a Table; RunFailure when they cannot be used."""
    name, ns = run.spec.rows_table, run.metadata.namespace
    assert name is not None
    column = run.spec.column
    if column is None or not re.fullmatch(COLUMN_NAME_PATTERN, column):
        raise RunFailure("ColumnInvalid", f"a run over Table {name!r} needs spec.column, a plain column name")
    dsn, table = table_of(kube, ns, name)
    return dsn, rows.TableRef(ns, name, table.spec.postgres, column)


def planned_items(kube: Kube, run: Run) -> list[PlannedItem]:
    """The selected rows, each an item whose inputs are spec.inputs templated from `${row.<column>}`."""
    try:
        selection = rows.selection_of(run.spec.rows)
    except ValueError as err:
        raise RunFailure("RowsInvalid", str(err)) from None
    dsn, ref = target(kube, run)
    template = run.spec.inputs or {}
    items: list[PlannedItem] = []
    try:
        for row_id, row in rows.stream(dsn, ref, selection):
            inputs = render(template, {"row": row})
            items.append(PlannedItem(item_id(len(items)), row_id, inputs))
    except TableError as err:
        raise RunFailure(err.reason, f"Table {ref.name!r} ({ref.postgres.table}): {err.message}") from None
    except TemplateError as err:
        raise RunFailure("InputsTemplateInvalid", f"spec.inputs: {err}") from None
    return items


def cache_ttl(run: Run, providers: Mapping[str, Provider | None]) -> int | None:
    """The run's cache TTL: its producer's, else its Provider's; None: no cache."""
    producer = run.spec.producer
    if producer is None:
        return None
    if producer.cache is not None:
        return producer.cache.ttl_seconds
    found = providers.get(producer.provider_ref.name) if producer.provider_ref is not None else None
    return found.spec.cache.ttl_seconds if found is not None and found.spec.cache is not None else None


def never_pay_twice(
    kube: Kube, run: Run, items: list[PlannedItem], ttl: int
) -> tuple[dict[str, Any], dict[str, str]]:
    """(item id → cached outputs, item id → the run's first item with the same inputs)."""
    assert run.spec.producer is not None
    dsn, ref = target(kube, run)
    keys = {item.id: cache.key_of(item.inputs) for item in items}
    try:
        hits = cache.lookup(
            dsn, ref.namespace, cache.producer_identity(run.spec.producer), keys.values(), ttl
        )
    except TableError as err:
        raise RunFailure(err.reason, f"Table {ref.name!r} ({ref.postgres.table}): {err.message}") from None
    cached: dict[str, Any] = {}
    followers: dict[str, str] = {}
    first: dict[str, str] = {}
    for item in items:
        key = keys[item.id]
        if key in hits:
            cached[item.id] = hits[key]
        elif key in first:
            followers[item.id] = first[key]
        else:
            first[key] = item.id
    return cached, followers


# The longest wait between two attempts at writing pending cells (doubling from 1 s).
MAX_BACKOFF = 30.0
# Passes in a row that could not write before the run finishes without those cells (about 20 minutes
# at MAX_BACKOFF): a refusal that does not go away (a deleted Table, a value the column type rejects)
# must not hold a run `running` forever.
GIVE_UP_AFTER = 45


@dataclass
class _Sync:
    # What the last pass could not write (None: everything finished so far is written), and how many
    # passes in a row could not.
    pending: Pending | None = None
    failures: int = 0

    def succeeded(self) -> None:
        self.pending, self.failures = None, 0

    def failed(self, reason: str, message: str) -> None:
        self.failures += 1
        self.pending = Pending(reason, message, final=self.failures >= GIVE_UP_AFTER)

    @property
    def backoff(self) -> float:
        """When to try the pending writes again."""
        return min(MAX_BACKOFF, 2.0 ** max(self.failures - 1, 0))


@dataclass
class CellSync(_Sync):
    """What one run's daemon wrote: per shard, the counts its results were written at."""

    written: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    # Per item id, the (status, attempts) last written: a pass writes only results that are new.
    items: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Results of the items duplicates wait for (item id → its result), kept until they are copied.
    results: dict[str, ItemResult] = field(default_factory=dict)
    target: tuple[str, rows.TableRef] | None = None


def results_of(shard: RunShard) -> list[cells.CellResult]:
    inputs = {item.id: item.inputs for item in shard.spec.items}
    out = []
    for item in shard.status.items:
        if item.status not in ("succeeded", "failed") or item.superseded_by or item.row_id is None:
            continue
        out.append(
            cells.CellResult(
                row_id=item.row_id,
                item_id=item.id,
                status=item.status,
                attempt_count=item.attempt_count,
                credits_used=Decimal(item.credits_used),
                inputs=inputs.get(item.id) or {},
                outputs=item.outputs,
                error=item.error,
                error_class=item.error_class,
                finished_at=item.finished_at,
                provider=item.provider,
                cached=bool(getattr(item, "cached", False)),
            )
        )
    return out


def copied(item: ItemResult, leader: ItemResult) -> ItemResult:
    """A duplicate's result from its first item's: its outputs (cached, uncharged) or its error."""
    if leader.status == "succeeded":
        return item.model_copy(update={"status": "succeeded", "outputs": leader.outputs, "cached": True})
    message = f"the item with the same inputs ({leader.id}) failed: {leader.error or ''}"
    return item.model_copy(update={"status": "failed", "error": message, "error_class": leader.error_class})


def fill_duplicates(kube: Kube, run: Run, shards: dict[str, ShardView], memory: CellSync) -> None:
    """Duplicates whose first item has a result take it (the operator writes their shard's status)."""
    for name, view in sorted(shards.items()):
        if view.execute or view.done:
            continue
        shard = RunShard.model_validate(kube.get("runshards", run.metadata.namespace, name))
        if shard.spec.skip_reason != SKIP_DUPLICATE or shard.spec.run_uid != run.metadata.uid:
            continue
        leaders = {item.id: item.cached_from for item in shard.spec.items}
        items, changed = [], False
        for item in shard.status.items:
            leader = memory.results.get(leaders.get(item.id) or "")
            if item.status == "pending" and leader is not None:
                item, changed = copied(item, leader), True
            items.append(item)
        if changed:
            status = {
                "items": [i.wire() for i in items],
                "summary": summarize(items).wire(),
                "phase": shard_phase(items),
            }
            kube.patch_status("runshards", run.metadata.namespace, name, status)


def sync(
    kube: Kube, run: Run, shards: dict[str, ShardView], memory: CellSync, store: ItemStore | None = None
) -> None:
    """Writes the cells of every shard whose finished counts moved since it was last written, then
    gives waiting duplicates their first item's result; `memory.pending` says what could not be."""
    moved = {
        name: (view.summary.succeeded, view.summary.failed, view.phase)
        for name, view in shards.items()
        if memory.written.get(name) != (view.summary.succeeded, view.summary.failed, view.phase)
    }
    if not moved and memory.pending is None:
        return
    try:
        if memory.target is None:
            memory.target = target(kube, run)
        dsn, ref = memory.target
        # Earlier rounds first: a retried item's later result is the cell's.
        for name in sorted(moved, key=lambda n: (shards[n].round, shards[n].index)):
            body: dict[str, Any] = kube.get("runshards", run.metadata.namespace, name)
            if store is not None:
                body = item_store.hydrate(store, body)  # a stored shard's items are rows of the store
            shard = RunShard.model_validate(body)
            if shard.spec.run_uid != run.metadata.uid:
                continue
            new = [r for r in results_of(shard) if memory.items.get(r.item_id) != (r.status, r.attempt_count)]
            producer = run.spec.producer
            provider = cache.producer_identity(producer) if producer is not None else None
            cells.write(dsn, ref, run.metadata.uid, run.metadata.name, new, provider)
            if shard.spec.execute:
                memory.results.update(
                    {
                        i.id: i
                        for i in shard.status.items
                        if i.status in ("succeeded", "failed") and not i.superseded_by
                    }
                )
            memory.items.update({r.item_id: (r.status, r.attempt_count) for r in new})
            memory.written[name] = moved[name]
        fill_duplicates(kube, run, shards, memory)
    except (TableError, RunFailure) as err:
        memory.target = None
        memory.failed(err.reason, err.message)
        log.warning("run %s/%s: cells not written yet: %s", run.metadata.namespace, run.metadata.name, err)
    else:
        memory.succeeded()


@dataclass
class IngestSync(_Sync):
    """What an ingestion run's daemon upserted: per shard, the counts its pages were written at."""

    written: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    pages: set[str] = field(default_factory=set)
    # (DSN, Table), or None while unread; an ingestion run whose spec.table names no Table keeps its
    # rows in the run only, as before Tables existed.
    target: tuple[str, Table] | None = None
    no_table: bool = False


def sync_ingestion(kube: Kube, run: Run, shards: dict[str, ShardView], memory: IngestSync) -> None:
    """Upserts the rows of the pages that succeeded since the last pass into the run's Table;
    `memory.pending` says what could not be."""
    moved = {
        name: (view.summary.succeeded, view.summary.failed, view.phase)
        for name, view in shards.items()
        if memory.written.get(name) != (view.summary.succeeded, view.summary.failed, view.phase)
    }
    if not moved or memory.no_table or run.spec.table is None:
        memory.succeeded()  # a shard not upserted stays moved: nothing is pending
        return
    ns = run.metadata.namespace
    try:
        if memory.target is None:
            try:
                memory.target = table_of(kube, ns, run.spec.table)
            except RunFailure as failure:
                if failure.reason == "TableNotFound":
                    memory.no_table = True
                    memory.succeeded()
                    return
                raise
        dsn, table = memory.target
        for name in sorted(moved, key=lambda n: (shards[n].round, shards[n].index)):
            shard = RunShard.model_validate(kube.get("runshards", ns, name))
            if shard.spec.run_uid != run.metadata.uid:
                continue
            pages = [
                (item.id, list((item.outputs or {}).get("rows") or []))
                for item in shard.status.items
                if item.status == "succeeded"
                and isinstance(item.outputs, dict)
                and item.id not in memory.pages
            ]
            ingest.upsert(
                dsn, ns, table.metadata.name, table.spec.postgres, run.metadata.uid, run.metadata.name, pages
            )
            memory.pages.update(page for page, _ in pages)
            memory.written[name] = moved[name]
    except (TableError, RunFailure) as err:
        memory.target = None
        memory.failed(err.reason, err.message)
        log.warning("run %s/%s: rows not ingested yet: %s", ns, run.metadata.name, err)
    else:
        memory.succeeded()
