"""The operator's side of the item store (sync; the Run controller's passes run in threads).

Each thread gets a connection of its own (autocommit; multi-statement steps in explicit transactions).
Nothing here holds a whole round in memory: rounds are appended by COPY from an iterator, later rounds
are made with one INSERT … SELECT, readers page with keysets, a run's rows are deleted in bounded batches.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from oxygen.itemstore.migrations import WORKER_GROUP, migrate
from oxygen.itemstore.results import write_results
from oxygen.itemstore.rows import ItemRow, NewItem, Result, select_columns, to_row

log = logging.getLogger("oxygen.itemstore")

DELETE_BATCH: Final = 5000
# What a later round takes over. Retry: failed items, and the items no worker ever reached (`skipped`
# with this error prefix, controllers/run/jobs.py NEVER_ATTEMPTED). Promotion: the items a smoke test or
# dry run recorded skipped (no error: a cancel's and a dead Job's skipped items carry theirs).
NEVER_ATTEMPTED_PREFIX: Final = "never attempted"
TAKES: Final = {
    "retry": "status = 'failed' or (status = 'skipped' and error like %(never)s)",
    "promotion": "status = 'skipped' and error is null",
}


class ItemStoreError(RuntimeError):
    """The item store cannot be reached or refused a statement; the message is the database's."""


# A database that vanished without closing its connections (a failed-over host, a dropped network) is
# noticed within about a minute instead of a statement hanging on a dead socket until the kernel's
# two-hour default. No statement timeout: a round's COPY of a million rows is one long statement.
KEEPALIVES: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


def with_keepalives(dsn: str) -> str:
    return make_conninfo(dsn, **KEEPALIVES)


def worker_role(run_uid: str) -> str:
    """The login role of a run's workers: `oxygen_w_` and the uid's hex digits (≤ 63 characters)."""
    return "oxygen_w_" + re.sub(r"[^0-9a-f]", "", run_uid.lower())[:48]


class ItemStore:
    def __init__(self, dsn: str, connect_timeout: float = 10.0) -> None:
        self.dsn = dsn
        self._timeout = connect_timeout
        self._local = threading.local()

    # -- connections --------------------------------------------------------------------------

    def conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = psycopg.connect(
                    with_keepalives(self.dsn), autocommit=True, connect_timeout=int(self._timeout)
                )
            except psycopg.Error as exc:
                raise ItemStoreError(f"item store: {exc}") from exc
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def migrate(self) -> list[int]:
        return migrate(self.conn())

    # -- rounds ---------------------------------------------------------------------------------

    def has_round(self, run_uid: str, round_: int) -> bool:
        row = (
            self.conn()
            .execute(
                "select exists (select 1 from oxygen.items where run_uid = %s and round = %s)",
                (run_uid, round_),
            )
            .fetchone()
        )
        return bool(row and row[0])

    def append_round(self, run_uid: str, namespace: str, round_: int, items: Iterable[NewItem]) -> bool:
        """COPY a round's items in one transaction; False (nothing written) when the round is already
        stored. A pass that died mid-COPY left nothing (its transaction never committed), so a retry
        of the same round writes it whole, once."""
        conn = self.conn()
        with conn.transaction():
            # One writer per (run, round) at a time: a second one waits, then sees the rows.
            conn.execute("select pg_advisory_xact_lock(hashtext(%s), %s)", (run_uid, round_))
            if self.has_round(run_uid, round_):
                return False
            columns = (
                "run_uid, round, ordinal, namespace, item_id, row_id, status, attempt_count, inputs, error"
            )
            with conn.cursor().copy(f"copy oxygen.items ({columns}) from stdin") as copy:
                for item in items:
                    copy.write_row(
                        (
                            run_uid,
                            round_,
                            item.ordinal,
                            namespace,
                            item.item_id,
                            item.row_id,
                            item.status,
                            item.attempt_count,
                            json.dumps(item.inputs),
                            item.error,
                        )
                    )
        # Statistics before the workers write back: without them (a table never analyzed yet) the
        # planner takes a run's rows for one, and once the workers' statements are prepared their
        # generic plan scans all of them per result written (a 300-row write to a 50,000-row run took
        # 20 s until autovacuum's first analyze). A sample, so about a second at a million rows.
        conn.execute("analyze oxygen.items")
        return True

    def round_count(self, run_uid: str, round_: int) -> int:
        """How many rows round `round_` has (one indexed count)."""
        row = (
            self.conn()
            .execute("select count(*) from oxygen.items where run_uid = %s and round = %s", (run_uid, round_))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def round_size(self, run_uid: str, round_: int, takes: str) -> int:
        """How many items round `round_` has (already stored: a pass died after making it) or would take
        over: `takes` is "retry" or "promotion" (see TAKES). One indexed count."""
        conn = self.conn()
        row = conn.execute(
            "select count(*) from oxygen.items where run_uid = %s and round = %s", (run_uid, round_)
        ).fetchone()
        if row and row[0]:
            return int(row[0])
        row = conn.execute(
            f"select count(*) from oxygen.items where run_uid = %(uid)s and round < %(round)s"
            f" and superseded_by is null and ({TAKES[takes]})",
            {"uid": run_uid, "round": round_, "never": NEVER_ATTEMPTED_PREFIX + "%"},
        ).fetchone()
        return int(row[0]) if row else 0

    def next_round_from(self, run_uid: str, round_: int, takes: str) -> int:
        """A retry or promotion round made with one INSERT … SELECT over the run's live rows (its
        status index): every unsuperseded row that `takes` selects becomes a pending row of `round_`,
        numbered in item order, attempts continued; the old rows point at the new round (its number).
        Idempotent: a round already stored is left as it is. Returns the number of items in the round."""
        conn = self.conn()
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext(%s), %s)", (run_uid, round_))
            existing = conn.execute(
                "select count(*) from oxygen.items where run_uid = %s and round = %s", (run_uid, round_)
            ).fetchone()
            if existing and existing[0]:
                return int(existing[0])
            inserted = conn.execute(
                f"""
                with moved as (
                    update oxygen.items set superseded_by = %(round_text)s
                    where run_uid = %(uid)s and round < %(round)s and superseded_by is null
                      and ({TAKES[takes]})
                    returning namespace, item_id, row_id, step, inputs, attempt_count, round, ordinal
                )
                insert into oxygen.items (run_uid, round, ordinal, namespace, item_id, row_id, step,
                                          status, attempt_count, inputs)
                select %(uid)s, %(round)s, row_number() over (order by round, ordinal) - 1, namespace,
                       item_id, row_id, step, 'pending', attempt_count, inputs
                from moved
                """,
                {
                    "uid": run_uid,
                    "round": round_,
                    "round_text": str(round_),
                    "never": NEVER_ATTEMPTED_PREFIX + "%",
                },
            )
            return inserted.rowcount

    def abandon_round(self, run_uid: str, round_: int) -> None:
        """Undo a round that will never be recorded (its credits refused for good): its rows go, the rows
        it took over are their own again."""
        conn = self.conn()
        with conn.transaction():
            conn.execute(
                "update oxygen.items set superseded_by = null where run_uid = %s and superseded_by = %s",
                (run_uid, str(round_)),
            )
            conn.execute("delete from oxygen.items where run_uid = %s and round = %s", (run_uid, round_))

    def write_results(self, run_uid: str, round_: int, results: Sequence[Result]) -> None:
        """The operator's writes of a round's rows (settled, superseded): batched, never per row."""
        write_results(self.conn(), run_uid, round_, results, with_superseded=True)

    # -- readers --------------------------------------------------------------------------------

    def read_range(self, run_uid: str, round_: int, start: int, end: int) -> list[ItemRow]:
        cur = self.conn().execute(
            f"select {select_columns()} from oxygen.items where run_uid = %s and round = %s"
            " and ordinal >= %s and ordinal < %s order by ordinal",
            (run_uid, round_, start, end),
        )
        return [to_row(r) for r in cur]

    def page(
        self,
        run_uid: str,
        *,
        after: tuple[int, int] | None = None,
        status: str | None = None,
        limit: int = 500,
        latest_only: bool = True,
    ) -> list[ItemRow]:
        """Up to `limit` rows after the keyset `after` = (round, ordinal), in that order; `status`
        filters through the (run_uid, status) index; `latest_only` leaves out superseded rows."""
        where = ["run_uid = %(uid)s"]
        if after is not None:
            where.append("(round, ordinal) > (%(round)s, %(ordinal)s)")
        if status is not None:
            where.append("status = %(status)s")
        if latest_only:
            where.append("superseded_by is null")
        query = (
            f"select {select_columns()} from oxygen.items where {' and '.join(where)}"
            " order by round, ordinal limit %(limit)s"
        )
        params = {
            "uid": run_uid,
            "round": after[0] if after else 0,
            "ordinal": after[1] if after else 0,
            "status": status,
            "limit": limit,
        }
        return [to_row(r) for r in self.conn().execute(query, params)]

    def iterate(self, run_uid: str, status: str | None = None, page_size: int = 1000) -> Iterator[ItemRow]:
        after: tuple[int, int] | None = None
        while True:
            rows = self.page(run_uid, after=after, status=status, limit=page_size)
            yield from rows
            if len(rows) < page_size:
                return
            after = (rows[-1].round, rows[-1].ordinal)

    def item(self, run_uid: str, item_id: str) -> list[ItemRow]:
        """Every round's row of one item, oldest first (its history)."""
        cur = self.conn().execute(
            f"select {select_columns()} from oxygen.items where run_uid = %s and item_id = %s order by round",
            (run_uid, item_id),
        )
        return [to_row(r) for r in cur]

    def first_failed(self, run_uid: str, limit: int = 20) -> list[ItemRow]:
        """The run's first failed items (the Run status's sample), through the status index."""
        return self.page(run_uid, status="failed", limit=limit)

    def counts(self, run_uid: str) -> dict[str, int]:
        cur = self.conn().execute(
            "select status, count(*) from oxygen.items where run_uid = %s and superseded_by is null"
            " group by status",
            (run_uid,),
        )
        return {str(s): int(n) for s, n in cur}

    # -- deletion -------------------------------------------------------------------------------

    def delete_run(self, run_uid: str, batch: int = DELETE_BATCH) -> int:
        """Delete a run's rows `batch` at a time (short transactions: a 1M-row run never holds a long
        lock); returns how many went."""
        total = 0
        while True:
            cur = self.conn().execute(
                "delete from oxygen.items where ctid in (select ctid from oxygen.items where run_uid = %s"
                " limit %s)",
                (run_uid, batch),
            )
            total += cur.rowcount
            if cur.rowcount < batch:
                return total

    # -- worker credentials ---------------------------------------------------------------------

    def grant_worker(self, run_uid: str) -> str:
        """A login role for the run's workers (a new password each call), scoped by row-level security to
        the run's rows; returns the DSN the workers use."""
        role = worker_role(run_uid)
        password = secrets.token_urlsafe(24)
        conn = self.conn()
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (role,))
            exists = conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone()
            verb = sql.SQL("alter role" if exists else "create role")
            conn.execute(
                sql.SQL("{} {} login password {} in role {}").format(
                    verb, sql.Identifier(role), sql.Literal(password), sql.Identifier(WORKER_GROUP)
                )
                if not exists
                else sql.SQL("{} {} login password {}").format(
                    verb, sql.Identifier(role), sql.Literal(password)
                )
            )
            conn.execute(
                "insert into oxygen.worker_runs (role_name, run_uid) values (%s, %s)"
                " on conflict (role_name) do update set run_uid = excluded.run_uid",
                (role, run_uid),
            )
        params = conninfo_to_dict(self.dsn)
        params.update(user=role, password=password)
        return make_conninfo("", **{k: v for k, v in params.items() if v is not None})

    def revoke_worker(self, run_uid: str) -> None:
        role = worker_role(run_uid)
        conn = self.conn()
        with conn.transaction():
            conn.execute("delete from oxygen.worker_runs where role_name = %s", (role,))
            if conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


__all__ = ["ItemRow", "ItemStore", "ItemStoreError", "NewItem", "Result", "worker_role"]
