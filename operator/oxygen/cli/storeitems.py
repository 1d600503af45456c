"""A run's items from the item store, for runs whose shards name row ranges instead of items.

How the command line reaches the store, first found wins:
1. `--item-store DSN` or `$OXYGEN_ITEM_STORE`: a connection string the user holds (an operator's
   or a reader role's); it reads any run's rows.
2. The run's own worker credentials: the Secret `<run>-item-store` (key `dsn`) the operator made for
   the run's pods. Reading it takes `get` on that Secret in the run's namespace, the same permission
   a user needs to see what the run's workers see; its role is scoped by row-level security to that
   run's rows, so it can show nothing else.
The rows come a keyset page at a time (round, ordinal), `--status` through the (run_uid, status) index;
only one page is in memory at once.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import os
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from oxygen.cli.errors import CliError
from oxygen.cli.resources import Resources
from oxygen.execution.jobs import ITEM_STORE_SECRET_KEY, item_store_secret
from oxygen.itemstore.lookup import reading
from oxygen.itemstore.rows import ItemRow
from oxygen.itemstore.store import ItemStore, ItemStoreError

ENV = "OXYGEN_ITEM_STORE"
SECRET_KEY = ITEM_STORE_SECRET_KEY
ROWS_PER_PAGE = 1000
SHARDS_PER_PAGE = 500


def worker_secret_name(run_name: str) -> str:
    """The Secret holding the run's worker DSN, which the operator made for its pods."""
    return item_store_secret(run_name)


def stored(shard: Mapping[str, Any]) -> bool:
    return bool((shard.get("spec") or {}).get("range"))


def store_backed(api: Resources, run: dict[str, Any]) -> bool:
    """Whether the run's items live in the item store: its shards name ranges (one shard is read)."""
    for shards in api.shard_pages(run, 1):
        return any(stored(s) for s in shards)
    return False


def dsn_for(api: Resources, run: dict[str, Any], explicit: str | None) -> str:
    dsn = explicit or os.environ.get(ENV)
    if dsn:
        return dsn
    meta = run["metadata"]
    name = worker_secret_name(meta["name"])
    data = api.secret_data(meta["namespace"], name) or {}
    if SECRET_KEY in data:
        try:
            return base64.b64decode(data[SECRET_KEY]).decode()
        except (binascii.Error, UnicodeDecodeError):
            pass
    raise CliError(
        f"the items of run {meta['name']} are in the item store: pass --item-store DSN or set {ENV} "
        f"(the run's worker Secret {name} is not readable)"
    )


def open_store(api: Resources, run: dict[str, Any], explicit: str | None) -> ItemStore:
    return ItemStore(dsn_for(api, run, explicit))


class ShardNames:
    """Which shard holds a row: the run's shard ranges, listed once (small objects: no items)."""

    def __init__(self, api: Resources, run: dict[str, Any]) -> None:
        starts: dict[int, list[tuple[int, int, str]]] = {}
        for shards in api.shard_pages(run, SHARDS_PER_PAGE):
            for shard in shards:
                spec = shard.get("spec") or {}
                bounds = spec.get("range") or {}
                if bounds:
                    entry = (int(bounds["start"]), int(bounds["end"]), shard["metadata"]["name"])
                    starts.setdefault(int(spec.get("round", 0)), []).append(entry)
        self._rounds = {r: sorted(v) for r, v in starts.items()}
        self._keys = {r: [s for s, _, _ in v] for r, v in self._rounds.items()}

    def of(self, round_: int, ordinal: int) -> str | None:
        ranges = self._rounds.get(round_)
        if not ranges:
            return None
        k = bisect.bisect_right(self._keys[round_], ordinal) - 1
        if k < 0:
            return None
        start, end, name = ranges[k]
        return name if start <= ordinal < end else None


def provider_of(run: dict[str, Any]) -> str | None:
    status = run.get("status") or {}
    producer = (run.get("spec") or {}).get("producer") or {}
    planned: str | None = status.get("plannedProvider")
    return planned or producer.get("provider") or (producer.get("providerRef") or {}).get("name")


def credits_text(value: Decimal) -> str:
    """As the shard status writes credits: "0", "2", "0.25" (no exponent, no trailing zeros)."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def row_shape(row: ItemRow, *, shard: str | None = None, provider: str | None = None) -> dict[str, Any]:
    """A stored row in the item shape of DESIGN.md (the same keys as cli.shapes.item_shape)."""
    shape: dict[str, Any] = {
        "id": row.item_id,
        "row_id": row.row_id,
        "status": row.status,
        "attempt_count": row.attempt_count,
        "inputs": row.inputs or {},
        "outputs": row.outputs,
        "error": row.error,
        "credits_used": credits_text(row.credits_used),
        "error_class": row.error_class,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
        "latency_seconds": row.latency_seconds,
        "shard": shard,
        "provider": provider,
    }
    if row.step is not None:
        shape["step"] = row.step
    return shape


def history_shape(row: ItemRow, shard: str | None) -> dict[str, Any]:
    """A superseded round's row, as cli.shapes.superseded_results gives it."""
    return {
        "round": row.round,
        "shard": shard,
        "status": row.status,
        "attempt_count": row.attempt_count,
        "error": row.error,
        "superseded_by": row.superseded_by,
        "finished_at": row.finished_at,
    }


def item_pages(
    api: Resources,
    run: dict[str, Any],
    explicit: str | None,
    *,
    status: str | None = None,
    limit: int | None = None,
    page: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The run's latest rows, a keyset page at a time, in item order (round, ordinal)."""
    store = open_store(api, run, explicit)
    names = ShardNames(api, run)
    provider = provider_of(run)
    uid = run["metadata"]["uid"]
    size = page or ROWS_PER_PAGE
    remaining = limit
    after: tuple[int, int] | None = None
    try:
        while remaining is None or remaining > 0:
            want = size if remaining is None else min(size, remaining)
            with reading():
                rows = store.page(uid, after=after, status=status, limit=want)
            yield [row_shape(r, shard=names.of(r.round, r.ordinal), provider=provider) for r in rows]
            if remaining is not None:
                remaining -= len(rows)
            if len(rows) < want:
                return
            after = (rows[-1].round, rows[-1].ordinal)
    except ItemStoreError as err:
        raise CliError(str(err)) from None
    finally:
        store.close()
