"""The Run controller and the item store: what `apply` writes there and what `Reader` reads back.

With an item store a column run's shards carry a range of rows (`spec.range`) instead of their items,
and their status a summary only. The decisions stay as they are: a shard read for one (settle,
supersede, a dead Job's items) is *hydrated* — its rows become its spec and status items again — and
a shard status a decision wrote goes back as rows (batched) plus the summary-only status.

Ordinals: a round's items are numbered 0… in the order its shards were planned (round 0: the items'
positions), each shard holding a contiguous range. A round's rows are written by one COPY before its
first shard is created; a pass that dies before or during it writes the same round again, whole, once.
Round 0 of a column run is not even planned as shards first: its source streams straight into that
COPY (`stage`, before the credit decision), and the plan is made from the count (planning/rounds.py
stored_spans), so a million-item source never sits in the operator's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from oxygen.api.runshard import ItemResult, RunShard, RunShardStatus, ShardItem
from oxygen.controllers.run.types import NewShard
from oxygen.execution.jobs import ITEM_STORE_SECRET_KEY, item_store_secret
from oxygen.execution.store_shard import as_result
from oxygen.itemstore.rows import ItemRow, NewItem
from oxygen.itemstore.store import ItemStore
from oxygen.planning.items import PlannedItem
from oxygen.planning.rounds import SKIP_CACHED, SKIP_DUPLICATE

# On a Run whose rows are in the store, until they are deleted (store_cleanup.py).
FINALIZER: Final = "oxygen.dev/item-store"


def stored(body: dict[str, Any]) -> bool:
    """Whether a shard body keeps its items in the store."""
    return bool((body.get("spec") or {}).get("range"))


def eligible(body: dict[str, Any]) -> bool:
    """Column runs' shards (independent items) go to the store; workflow steps and ingestion pages,
    a handful of items that grow or depend on each other, stay inline."""
    spec = body.get("spec") or {}
    # Cache hits (their outputs) and duplicates (the item they wait for) stay inline too: the
    # operator writes them (controllers/run/tables.py).
    if spec.get("skipReason") in (SKIP_CACHED, SKIP_DUPLICATE):
        return False
    return spec.get("sequence", "independent") == "independent" and not spec.get("range")


def to_store(store: ItemStore, run_body: dict[str, Any], shards: list[NewShard]) -> list[NewShard]:
    """Write the rows of the round(s) these new shards make, and return the shards with ranges."""
    meta = run_body["metadata"]
    uid, ns = str(meta["uid"]), str(meta["namespace"])
    out: list[NewShard] = []
    by_round: dict[int, list[NewShard]] = {}
    for shard in shards:
        if eligible(shard.body):
            by_round.setdefault(int(shard.body["spec"]["round"]), []).append(shard)
        else:
            out.append(shard)
    for round_, members in sorted(by_round.items()):
        members.sort(key=lambda s: int(s.body["spec"]["index"]))
        store.append_round(uid, ns, round_, _rows(members))
        start = 0
        for shard in members:
            spec = dict(shard.body["spec"])
            count = len(spec.pop("items", []) or [])
            spec["range"] = {"start": start, "end": start + count}
            start += count
            initial = None
            if shard.initial_status is not None:
                initial = {**shard.initial_status, "items": []}
            out.append(NewShard({**shard.body, "spec": spec}, initial))
    return out


def stage(
    store: ItemStore, run_body: dict[str, Any], items: Iterator[PlannedItem], status_of: Callable[[int], str]
) -> int:
    """Round 0 streamed into the store: each item becomes a row (ordinal = its position, status
    `status_of(ordinal)`) as the source yields it, in one COPY, and is then forgotten; returns how many.

    Idempotent as append_round: a source that fails mid-way leaves no row (the transaction rolls back,
    the error goes on), and a round already stored is counted, its source not even opened."""
    meta = run_body["metadata"]
    uid, ns = str(meta["uid"]), str(meta["namespace"])
    written = 0

    def rows() -> Iterator[NewItem]:
        nonlocal written
        for ordinal, item in enumerate(items):
            yield NewItem(
                ordinal=ordinal,
                item_id=str(item.id),
                row_id=item.row_id,
                inputs=item.inputs or {},
                status=status_of(ordinal),
            )
            written = ordinal + 1

    if store.append_round(uid, ns, 0, rows()):
        return written
    return store.round_count(uid, 0)


def _rows(members: list[NewShard]) -> Iterator[NewItem]:
    ordinal = 0
    for shard in members:
        initial = {i["id"]: i for i in (shard.initial_status or {}).get("items") or []}
        for item in shard.body["spec"].get("items") or []:
            first = initial.get(item["id"]) or {}
            yield NewItem(
                ordinal=ordinal,
                item_id=str(item["id"]),
                row_id=item.get("rowId"),
                inputs=item.get("inputs") or {},
                status=str(first.get("status") or "pending"),
                attempt_count=int(item.get("attemptCount") or 0),
            )
            ordinal += 1


def hydrate(store: ItemStore, body: dict[str, Any]) -> dict[str, Any]:
    """A stored shard's body with its rows as spec items and status items (others as they are)."""
    if not stored(body):
        return body
    spec, status = body["spec"], dict(body.get("status") or {})
    rows = store.read_range(
        str(spec["runUid"]), int(spec["round"]), spec["range"]["start"], spec["range"]["end"]
    )
    items = [ShardItem(id=r.item_id, row_id=r.row_id, inputs=r.inputs, attempt_count=_prior(r)) for r in rows]
    status["items"] = [_result(r).wire() for r in rows]
    return {**body, "spec": {**spec, "items": [i.wire() for i in items]}, "status": status}


def _prior(row: ItemRow) -> int:
    # Attempts of earlier rounds: what a row of this round was created with (see execution/store_shard.py).
    if row.round == 0:
        return 0
    return row.attempt_count if row.started_at is None else max(0, row.attempt_count - 1)


def _result(row: ItemRow) -> ItemResult:
    return ItemResult.model_validate(
        {
            "id": row.item_id,
            "rowId": row.row_id,
            "status": row.status,
            "attemptCount": row.attempt_count,
            "outputs": row.outputs,
            "error": row.error,
            "errorClass": row.error_class,
            "creditsUsed": str(row.credits_used),
            "startedAt": row.started_at,
            "finishedAt": row.finished_at,
            "latencySeconds": row.latency_seconds,
            "supersededBy": row.superseded_by,
        }
    )


def write_status(store: ItemStore, shard_body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """A decision's status of a stored shard: its items as rows (one batched write), and the status
    to patch (summary only)."""
    spec = shard_body["spec"]
    start = int(spec["range"]["start"])
    model = RunShardStatus.model_validate(status)
    results = [as_result(start + i, item) for i, item in enumerate(model.items)]
    store.write_results(str(spec["runUid"]), int(spec["round"]), results)
    return {**status, "items": []}


def worker_secret(store: ItemStore, run_body: dict[str, Any], owner: dict[str, Any]) -> dict[str, Any]:
    """The Secret of the run's workers: a DSN of their own role (scoped to the run's rows), owned by
    the Run (it goes with it)."""
    meta = run_body["metadata"]
    dsn = store.grant_worker(str(meta["uid"]))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": item_store_secret(str(meta["name"])),
            "namespace": meta["namespace"],
            "ownerReferences": [owner],
            "labels": {"app.kubernetes.io/managed-by": "oxygen-operator"},
        },
        "type": "Opaque",
        "stringData": {ITEM_STORE_SECRET_KEY: dsn},
    }


def shard_of(body: dict[str, Any]) -> RunShard:
    return RunShard.model_validate(body)
