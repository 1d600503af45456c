"""Without an item store: a streamed source is read up to the etcd ceiling, and refused past it."""

from __future__ import annotations

from collections.abc import Iterable

from oxygen.planning.items import PlannedItem
from oxygen.sources.errors import TOO_LARGE, SourceError


def bounded(items: Iterable[PlannedItem], limit: int) -> list[PlannedItem]:
    """All the items, for a run whose items live in its RunShards (etcd); refused past `limit`
    (controllers/run/plan.py ETCD_ITEM_CEILING), the stream stopped at the first item over it."""
    out: list[PlannedItem] = []
    for item in items:
        if len(out) >= limit:
            raise SourceError(
                TOO_LARGE,
                f"the items source has more than {limit} items; without an item store a Run holds at most "
                f"{limit} (their results live in RunShards in etcd): start the operator with --item-store "
                "(a PostgreSQL item store)",
            )
        out.append(item)
    return out
