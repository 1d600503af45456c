"""Cells written as a column run's items finish: the value into the user's column (jsonb), the status,
error, run and item into `oxygen.cells`, and one `oxygen.cell_history` row per run item.

Idempotent: a cell is rewritten only by a newer result (a later finish, or more attempts of the same
item), and its history row is keyed by run and item, so writing the same results twice (an operator
restart, a re-read shard) changes nothing, and a retried item leaves one history row.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from oxygen.tables import cache, schema
from oxygen.tables.connect import connect, qualified
from oxygen.tables.describe import columns_of
from oxygen.tables.rows import TableRef, add_column


@dataclass(frozen=True)
class CellResult:
    """One finished item of a column run."""

    row_id: str
    item_id: str
    status: str  # succeeded | failed
    attempt_count: int
    credits_used: Decimal
    inputs: dict[str, Any]
    outputs: Any
    error: str | None
    error_class: str | None
    finished_at: str | None
    provider: str | None = None
    cached: bool = False


_UPSERT_CELL = """
with up as (
    insert into oxygen.cells as c (namespace, table_name, column_name, row_id, status, error, error_class,
        run_uid, run_name, item_id, provider, attempt_count, credits_used, inputs, cached, updated_at)
    values (%(ns)s, %(name)s, %(column)s, %(row_id)s, %(status)s, %(error)s, %(error_class)s,
        %(run_uid)s, %(run_name)s, %(item_id)s, %(provider)s, %(attempts)s, %(credits)s, %(inputs)s,
        %(cached)s,
        coalesce(%(finished)s::timestamptz, now()))
    on conflict (namespace, table_name, column_name, row_id) do update set
        status = excluded.status, error = excluded.error, error_class = excluded.error_class,
        run_uid = excluded.run_uid, run_name = excluded.run_name, item_id = excluded.item_id,
        provider = excluded.provider,
        attempt_count = excluded.attempt_count, credits_used = excluded.credits_used,
        inputs = excluded.inputs, cached = excluded.cached, updated_at = excluded.updated_at
    where (c.run_uid, c.item_id, c.status, c.attempt_count)
            is distinct from (excluded.run_uid, excluded.item_id, excluded.status, excluded.attempt_count)
        and (c.updated_at <= excluded.updated_at
             or (c.run_uid = excluded.run_uid and c.item_id = excluded.item_id))
    returning 1
)
update {table} set {column} = %(outputs)s
where {rid} = %(row_id)s::text::{rid_type} and %(status)s = 'succeeded' and exists (select 1 from up)
"""

_UPSERT_HISTORY = """
insert into oxygen.cell_history as h (namespace, table_name, column_name, row_id, run_uid, item_id, run_name,
    provider, status, error, error_class, attempt_count, credits_used, inputs, outputs, cached, written_at)
values (%(ns)s, %(name)s, %(column)s, %(row_id)s, %(run_uid)s, %(item_id)s, %(run_name)s, %(provider)s,
    %(status)s, %(error)s, %(error_class)s, %(attempts)s, %(credits)s, %(inputs)s, %(outputs)s, %(cached)s,
    coalesce(%(finished)s::timestamptz, now()))
on conflict (namespace, table_name, column_name, row_id, run_uid, item_id) do update set
    status = excluded.status, error = excluded.error, error_class = excluded.error_class,
    attempt_count = excluded.attempt_count,
    credits_used = excluded.credits_used, outputs = excluded.outputs, cached = excluded.cached,
    written_at = excluded.written_at
where (h.status, h.attempt_count) is distinct from (excluded.status, excluded.attempt_count)
"""

# (dsn, table, column) → the row id column's type, once the column is known to exist.
_columns_ready: dict[tuple[str, str, str], str] = {}


def write(
    dsn: str,
    ref: TableRef,
    run_uid: str,
    run_name: str,
    results: list[CellResult],
    provider: str | None = None,
) -> None:
    """Writes these results in one transaction (a few statements pipelined, not a round trip per cell),
    and remembers the successful calls among them for `provider`'s cache."""
    if not results:
        return
    with connect(dsn) as conn:
        schema.ensure(conn, dsn)
        key = (dsn, ref.postgres.table, ref.column)
        if key not in _columns_ready:
            add_column(conn, ref)
            types = dict(columns_of(conn, ref.postgres.table))
            _columns_ready[key] = types[ref.postgres.row_id_column]
        cell = sql.SQL(_UPSERT_CELL).format(
            table=qualified(ref.postgres.table),
            column=sql.Identifier(ref.column),
            rid=sql.Identifier(ref.postgres.row_id_column),
            # The type as the catalog names it (format_type), never user text.
            rid_type=sql.SQL(_columns_ready[key]),
        )
        rows = [
            {
                "ns": ref.namespace,
                "name": ref.name,
                "column": ref.column,
                "row_id": r.row_id,
                "status": r.status,
                "error": r.error,
                "error_class": r.error_class,
                "run_uid": run_uid,
                "run_name": run_name,
                "item_id": r.item_id,
                "provider": r.provider,
                "attempts": r.attempt_count,
                "credits": r.credits_used,
                "inputs": Jsonb(r.inputs),
                "outputs": Jsonb(r.outputs) if r.status == "succeeded" else None,
                "cached": r.cached,
                "finished": r.finished_at,
            }
            for r in results
        ]
        calls = [
            cache.Call(r.inputs, r.outputs, run_uid, r.item_id, r.finished_at)
            for r in results
            if r.status == "succeeded" and not r.cached
        ]
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_UPSERT_HISTORY, rows)
            cur.executemany(cell, rows)
            if provider is not None:
                cache.remember(conn, ref.namespace, provider, calls)


def read(dsn: str, ref: TableRef, row_id: str) -> tuple[dict[str, Any] | None, Any, list[dict[str, Any]]]:
    """A cell as `cells inspect` shows it: its side-table row (None: no run wrote it), its value in the
    user's column, and every run item that wrote it, newest first."""
    with connect(dsn) as conn:
        if conn.execute("select to_regclass('oxygen.cells')").fetchone() in (None, (None,)):
            return None, None, []
        key = {"ns": ref.namespace, "name": ref.name, "column": ref.column, "row_id": row_id}
        where = (
            "namespace = %(ns)s and table_name = %(name)s and column_name = %(column)s "
            "and row_id = %(row_id)s"
        )
        cur = conn.cursor(row_factory=dict_row)
        cell = cur.execute(
            f"select status, error, error_class, run_uid, run_name, item_id, provider, attempt_count, "
            f"credits_used, inputs, cached, updated_at from oxygen.cells where {where}",
            key,
        ).fetchone()
        history = cur.execute(
            f"select run_uid, run_name, item_id, provider, status, error, error_class, attempt_count, "
            f"credits_used, inputs, outputs, cached, written_at from oxygen.cell_history where {where} "
            "order by written_at desc, run_uid, item_id",
            key,
        ).fetchall()
        value = None
        columns = dict(columns_of(conn, ref.postgres.table))
        if ref.column in columns:
            found = conn.execute(
                sql.SQL("select {} from {} where {}::text = %s limit 1").format(
                    sql.Identifier(ref.column),
                    qualified(ref.postgres.table),
                    sql.Identifier(ref.postgres.row_id_column),
                ),
                (row_id,),
            ).fetchone()
            value = None if found is None else found[0]
    return cell, value, history
