"""A run's items, streamed from its RunShards a page of shards at a time.

Memory is bounded by one page of shards, never by the run. The page is sized in items, not shards:
the run's status says how many items and shards it has, so a run of big shards is read a shard or
two at a time and a run of small shards in fewer requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from oxygen.cli.resources import Resources
from oxygen.cli.shapes import shard_items

# About this many items per request (a few MiB of JSON); the limit/continue pair is fixed per listing.
ITEMS_PER_PAGE = 2000
MAX_SHARDS_PER_PAGE = 50


def shards_per_page(run: dict[str, Any]) -> int:
    status = run.get("status") or {}
    items = int(status.get("itemsTotal") or 0)
    # Retry rounds add shards holding few items, so the mean only over-estimates a shard's size.
    shards = int((status.get("shards") or {}).get("total") or 0)
    if not items or not shards:
        return 1
    return max(1, min(MAX_SHARDS_PER_PAGE, ITEMS_PER_PAGE * shards // items))


def item_pages(
    api: Resources,
    run: dict[str, Any],
    *,
    status: str | None = None,
    limit: int | None = None,
    page: int | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Lists of item shapes, one per page of shards; stops asking the server once `limit` is met."""
    remaining = limit
    for shards in api.shard_pages(run, page or shards_per_page(run)):
        batch: list[dict[str, Any]] = []
        for shard in shards:
            for item in shard_items(shard, status):
                if remaining is not None and remaining <= 0:
                    break
                batch.append(item)
                if remaining is not None:
                    remaining -= 1
        # Drop this page's objects before the next request: only one page is ever alive.
        del shards
        yield batch
        del batch
        if remaining is not None and remaining <= 0:
            return
