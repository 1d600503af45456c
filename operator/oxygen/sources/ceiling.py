"""Without an item store: how many streamed items a run may hold in its RunShards (etcd)."""

from __future__ import annotations

from collections.abc import Iterable

from oxygen.planning.items import PlannedItem
from oxygen.sources.errors import TOO_LARGE, SourceError

# Without an item store, a streamed source's items go into RunShard specs (inputs) and statuses
# (outputs) in etcd, like a ConfigMap's rows: as many as a 1 MiB ConfigMap of small rows holds. A run
# with more is refused, naming the limit and the fix (`oxygen operator --item-store`).
MAX_ITEMS_WITHOUT_STORE = 100_000


def bounded(items: Iterable[PlannedItem], limit: int = MAX_ITEMS_WITHOUT_STORE) -> list[PlannedItem]:
    """All the items, for a run whose items live in its RunShards; refused past `limit`, stopping the
    stream at the first item over it."""
    out: list[PlannedItem] = []
    for item in items:
        if len(out) >= limit:
            raise SourceError(
                TOO_LARGE,
                f"the items source has more than {limit:,} items, the most a run holds without an item "
                "store; run the operator with an item store (`oxygen operator --item-store DSN`) "
                "or split the run",
            )
        out.append(item)
    return out
