"""A worker whose shard names a range of rows in the item store instead of carrying its items.

The pod reads its rows once (`hydrate`: the RunShard it executes, as if the items were inline, so the
executor is the same), and each status snapshot goes out in two writes (`StoreFlush`): the rows that
changed since the last one, in batched UPDATEs (`oxygen.itemstore.results`), then the RunShard's status
with the summary only (counts, credits, error classes, latency buckets; no item array). A restarted pod
reads what the store holds: items finished there are never called again, only those in flight.

The database credentials are the run's worker role (`OXYGEN_ITEM_STORE_DSN`, from the Secret the
operator made for the run): row-level security shows it its run's rows only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

from oxygen.api.runshard import ItemResult, RunShard, RunShardStatus, ShardItem
from oxygen.execution.jobs import ITEM_STORE_DSN_ENV
from oxygen.itemstore.rows import ItemRow, Result
from oxygen.itemstore.store import ItemStoreError
from oxygen.itemstore.worker import WorkerStore

log = logging.getLogger("oxygen.worker")

DSN_ENV: Final = ITEM_STORE_DSN_ENV
# A status budget no store-backed shard reaches: its results live in rows, not in the RunShard.
UNBOUNDED_STATUS_BYTES: Final = 1 << 50


def open_store(env: Mapping[str, str]) -> WorkerStore:
    dsn = env.get(DSN_ENV)
    if not dsn:
        raise ItemStoreError(f"the shard names a range of the item store but {DSN_ENV} is not set")
    return WorkerStore(dsn)


def read_rows(store: WorkerStore, shard: RunShard) -> list[ItemRow]:
    spec = shard.spec
    assert spec.range is not None
    return store.read_range(spec.run_uid, spec.round, spec.range.start, spec.range.end)


def prior_attempts(row: ItemRow) -> int:
    """Attempts made before this round: a row no pod of this round started still holds the count it
    was created with; one a dead pod was working on counts its last attempt as this round's."""
    if row.started_at is None or row.round == 0:
        return 0 if row.round == 0 else row.attempt_count
    return max(0, row.attempt_count - 1)


def hydrate(shard: RunShard, rows: list[ItemRow]) -> RunShard:
    """The shard with its rows as spec items and status items (in ordinal order)."""
    items = [
        ShardItem(
            id=r.item_id, row_id=r.row_id, inputs=r.inputs, attempt_count=prior_attempts(r), step=r.step
        )
        for r in rows
    ]
    results = [result_of(r) for r in rows]
    spec = shard.spec.model_copy(update={"items": items})
    status = shard.status.model_copy(update={"items": results})
    return shard.model_copy(update={"spec": spec, "status": status})


def result_of(row: ItemRow) -> ItemResult:
    return ItemResult(
        id=row.item_id,
        row_id=row.row_id,
        step=row.step,
        status=row.status,
        attempt_count=row.attempt_count,
        outputs=row.outputs,
        error=row.error,
        error_class=row.error_class,
        credits_used=row.credits_used,
        started_at=row.started_at,
        finished_at=row.finished_at,
        latency_seconds=row.latency_seconds,
        superseded_by=row.superseded_by,
    )


def as_result(ordinal: int, item: ItemResult) -> Result:
    return Result(
        ordinal=ordinal,
        status=item.status,
        attempt_count=item.attempt_count,
        outputs=item.outputs,
        error=item.error,
        error_class=item.error_class,
        credits_used=item.credits_used,
        started_at=item.started_at,
        finished_at=item.finished_at,
        latency_seconds=item.latency_seconds,
        superseded_by=item.superseded_by,
    )


class StoreFlush:
    """The executor's `flush`: changed rows to the store, then the summary-only status to the RunShard."""

    def __init__(
        self, store: WorkerStore, shard: RunShard, patch_status: Callable[[RunShardStatus], None]
    ) -> None:
        assert shard.spec.range is not None
        self._store = store
        self._uid = shard.spec.run_uid
        self._round = shard.spec.round
        self._start = shard.spec.range.start
        self._patch = patch_status
        self._written: list[ItemResult] = list(shard.status.items)
        self.rows_written = 0

    def __call__(self, status: RunShardStatus) -> None:
        # Column runs only: a store-backed shard's items never grow while it runs.
        changed = [(i, item) for i, item in enumerate(status.items) if item != self._written[i]]
        if changed:
            self._store.write(
                self._uid, self._round, [as_result(self._start + i, item) for i, item in changed]
            )
            for i, item in changed:
                self._written[i] = item
            self.rows_written += len(changed)
        self._patch(status.model_copy(update={"items": []}))


def load(
    shard: RunShard, env: Mapping[str, str], patch_status: Callable[[RunShardStatus], None]
) -> tuple[RunShard, Callable[[RunShardStatus], None], int | None]:
    """The shard to execute, where its status goes, and its status byte budget (None: the default).
    A shard with inline items is returned as it is, its status patched whole."""
    if shard.spec.range is None:
        return shard, patch_status, None
    store = open_store(env)
    hydrated = hydrate(shard, read_rows(store, shard))
    return hydrated, StoreFlush(store, hydrated, patch_status), UNBOUNDED_STATUS_BYTES
