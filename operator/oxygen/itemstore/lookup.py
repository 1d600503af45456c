"""Reads for the command line and the run page beyond the store's own (store.py): a row's rounds, and
the driver's failures as `ItemStoreError` (readers outside oxygen.itemstore never import psycopg)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from oxygen.itemstore.rows import ItemRow, select_columns, to_row
from oxygen.itemstore.store import ItemStore, ItemStoreError


@contextmanager
def reading() -> Iterator[None]:
    """A failed read (the database away, a role without rights) as ItemStoreError with its message."""
    try:
        yield
    except psycopg.Error as err:
        raise ItemStoreError(f"item store: {' '.join(str(err).split())}") from None


def rows_of_row_id(store: ItemStore, run_uid: str, row_id: str) -> list[ItemRow]:
    """Every round's row of the run's item(s) with this rowId, oldest first (the (run_uid, row_id)
    index): a cell's latest result and its history."""
    with reading():
        cur = store.conn().execute(
            f"select {select_columns()} from oxygen.items where run_uid = %s and row_id = %s"
            " order by round, ordinal",
            (run_uid, row_id),
        )
        return [to_row(r) for r in cur]
