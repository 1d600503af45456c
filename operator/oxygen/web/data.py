"""What a run page shows, read from the API server with the operator's client (blocking calls)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from oxygen.api.labels import LABEL_RUN_UID
from oxygen.itemstore.lookup import failed_count, failed_sample, finishes_per_second
from oxygen.itemstore.store import ItemStore
from oxygen.kube.client import Kube
from oxygen.kube.failures import is_not_found
from oxygen.timefmt import rfc3339
from oxygen.web.page import MAX_FAILED_ROWS, EventRow, StoredItems
from oxygen.web.timeline import TIMELINE_STATUSES


@dataclass(frozen=True)
class RunPageData:
    run: dict[str, Any]
    shards: list[dict[str, Any]]
    events: list[EventRow]
    # The run's items are in the item store: what the page shows of them, read there.
    stored: StoredItems | None = None


def _stamp(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return str(value)


def event_rows(events: list[Any]) -> list[EventRow]:
    rows = []
    for ev in events:
        when = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
        rows.append(
            EventRow(
                time=_stamp(when),
                type=ev.type or "",
                reason=ev.reason or "",
                message=ev.message or "",
                count=int(ev.count or 1),
            )
        )
    return rows


SHARDS_PER_REQUEST = 5
_ITEM_FIELDS = ("id", "rowId", "status", "attemptCount", "error", "errorClass", "finishedAt", "supersededBy")


def slim(shard: dict[str, Any]) -> dict[str, Any]:
    """A shard without its items' inputs and outputs (the page never shows them)."""
    spec = shard.get("spec") or {}
    status = shard.get("status") or {}
    return {
        "metadata": {"name": shard["metadata"]["name"]},
        "spec": {
            "round": spec.get("round"),
            "index": spec.get("index"),
            "items": [{}] * len(spec.get("items") or []),
            **({"range": spec["range"]} if spec.get("range") else {}),
        },
        "status": {
            **{k: v for k, v in status.items() if k != "items"},
            "items": [{k: i[k] for k in _ITEM_FIELDS if k in i} for i in status.get("items") or []],
        },
    }


def stored_items(store: ItemStore, run_uid: str) -> StoredItems:
    """The failed items and the timeline of a run whose items are in the item store: a sample through
    the status index, a count, and finishes counted per second (never a row per item)."""
    sample = failed_sample(store, run_uid, MAX_FAILED_ROWS)
    return StoredItems(
        failed=[
            {
                "id": r.item_id,
                "rowId": r.row_id,
                "status": r.status,
                "attemptCount": r.attempt_count,
                "errorClass": r.error_class,
                "error": r.error,
            }
            for r in sample
        ],
        failed_total=failed_count(store, run_uid) if len(sample) >= MAX_FAILED_ROWS else len(sample),
        finishes=finishes_per_second(store, run_uid, TIMELINE_STATUSES),
    )


def load_run_page(
    api_client: Any, namespace: str, name: str, store: ItemStore | None = None
) -> RunPageData | None:
    """The Run, its shards and its Events; None when the Run does not exist. With an item store, a
    run whose shards name row ranges has its items read there."""
    kube = Kube(api_client)
    try:
        run: dict[str, Any] = kube.get("runs", namespace, name)
    except Exception as err:
        if is_not_found(err):
            return None
        raise
    uid = run["metadata"]["uid"]
    # Page through the shards and keep only what the page shows: never every input and output.
    selector = f"{LABEL_RUN_UID}={uid}"
    shards = [slim(shard) for shard in kube.pages("runshards", namespace, selector, SHARDS_PER_REQUEST)]
    events = kube.core.list_namespaced_event(namespace, field_selector=f"involvedObject.uid={uid}")
    stored = None
    if store is not None and any(s["spec"].get("range") for s in shards):
        stored = stored_items(store, uid)
    return RunPageData(run=run, shards=shards, events=event_rows(list(events.items or [])), stored=stored)
