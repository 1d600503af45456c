"""The worker's side of the item store: its shard's rows by ordinal range, and its results in batches.

Sync on purpose: the worker writes from the thread that writes its status (never on the event loop that
makes the calls), once per status write, every changed row of the snapshot in one statement per
`WRITE_BATCH` rows. It connects with its run's own role (row-level security: its run's rows only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from oxygen.itemstore.results import WRITE_BATCH, write_results
from oxygen.itemstore.rows import ItemRow, Result, select_columns, to_row
from oxygen.itemstore.store import ItemStoreError, with_keepalives


class WorkerStore:
    def __init__(self, dsn: str, connect_timeout: int = 10) -> None:
        self._dsn = dsn
        self._timeout = connect_timeout
        self._conn: psycopg.Connection[Any] | None = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = psycopg.connect(
                    with_keepalives(self._dsn), autocommit=True, connect_timeout=self._timeout
                )
            except psycopg.Error as exc:
                raise ItemStoreError(f"item store: {exc}") from exc
        return self._conn

    def read_range(self, run_uid: str, round_: int, start: int, end: int) -> list[ItemRow]:
        try:
            cur = self._connection().execute(
                f"select {select_columns()} from oxygen.items where run_uid = %s and round = %s"
                " and ordinal >= %s and ordinal < %s order by ordinal",
                (run_uid, round_, start, end),
            )
            return [to_row(r) for r in cur]
        except psycopg.Error as exc:
            raise ItemStoreError(f"item store: reading rows {start}-{end}: {exc}") from exc

    def write(self, run_uid: str, round_: int, results: Sequence[Result], batch: int = WRITE_BATCH) -> int:
        """One UPDATE per `batch` rows; a dropped connection is reconnected once (the UPDATE is
        idempotent: it sets the same values again)."""
        for attempt in (1, 2):
            try:
                return write_results(self._connection(), run_uid, round_, results, batch=batch)
            except psycopg.OperationalError as exc:
                if attempt == 2:
                    raise ItemStoreError(f"item store: writing {len(results)} results: {exc}") from exc
                self.close()
            except psycopg.Error as exc:
                raise ItemStoreError(f"item store: writing {len(results)} results: {exc}") from exc
        return 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
