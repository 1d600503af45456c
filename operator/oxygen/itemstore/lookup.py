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


def failed_count(store: ItemStore, run_uid: str) -> int:
    """The run's live failed items (the (run_uid, status) index)."""
    with reading():
        row = (
            store.conn()
            .execute(
                "select count(*) from oxygen.items"
                " where run_uid = %s and status = 'failed' and superseded_by is null",
                (run_uid,),
            )
            .fetchone()
        )
    return int(row[0]) if row else 0


def failed_sample(store: ItemStore, run_uid: str, limit: int) -> list[ItemRow]:
    """The run's first live failed items, in item order."""
    with reading():
        return store.page(run_uid, status="failed", limit=limit)


def finishes_per_second(
    store: ItemStore, run_uid: str, statuses: tuple[str, ...]
) -> list[tuple[float, str, int]]:
    """(second, status, items) of the run's live finished items: a timeline without a row per item."""
    with reading():
        cur = store.conn().execute(
            "select floor(extract(epoch from finished_at))::float8, status, count(*) from oxygen.items"
            " where run_uid = %s and superseded_by is null and status = any(%s) and finished_at is not null"
            " group by 1, 2 order by 1",
            (run_uid, list(statuses)),
        )
        return [(float(at), str(status), int(n)) for at, status, n in cur]
