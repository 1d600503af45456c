"""One entry point: the items a run's streamed `itemsFrom` yields."""

from __future__ import annotations

from collections.abc import Iterator

from oxygen.api.run import ItemsFrom
from oxygen.planning.items import PlannedItem
from oxygen.sources import postgres, url
from oxygen.sources.errors import NOT_FOUND, SourceError


def open_items(items_from: ItemsFrom, dsn: str | None = None) -> Iterator[PlannedItem]:
    """The run's items, one at a time (nothing is read until the first is asked for).

    `dsn`: the connection string from the Secret `itemsFrom.postgres.secretRef` names."""
    if items_from.postgres is not None:
        if dsn is None:
            raise SourceError(
                NOT_FOUND, f"Secret {items_from.postgres.secret_ref.name!r} holds no connection"
            )
        pg = items_from.postgres
        return postgres.stream(dsn, pg.query, pg.row_id_column)
    if items_from.url is not None:
        return url.stream(items_from.url.url, items_from.url.row_format())
    raise ValueError("itemsFrom names no streamed source")
