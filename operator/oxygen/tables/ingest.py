"""Ingestion runs into a Table: each page's rows upserted by row id, and which run found which row
(`oxygen.ingested_rows`), so a page retried or re-read inserts its rows once and `table-ingestions
rows <run>` can list them.

A row's keys that are columns of the table are written (types converted by PostgreSQL's
jsonb_populate_record); other keys are ignored. The row id column needs a primary key or unique
constraint (the upsert's ON CONFLICT target).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from psycopg import sql

from oxygen.api.table import TablePostgres
from oxygen.tables import schema
from oxygen.tables.connect import connect, qualified
from oxygen.tables.describe import check_row_id, columns_of

_RECORD = """
insert into oxygen.ingested_rows (namespace, table_name, run_uid, row_id, run_name, item_id)
values (%s, %s, %s, %s, %s, %s) on conflict do nothing
"""


def upsert(
    dsn: str,
    namespace: str,
    name: str,
    postgres: TablePostgres,
    run_uid: str,
    run_name: str,
    pages: list[tuple[str, list[Any]]],
) -> int:
    """Upserts the rows of these pages ((item id, rows)); returns how many rows were written."""
    written = 0
    with connect(dsn) as conn:
        schema.ensure(conn, dsn)
        columns = columns_of(conn, postgres.table)
        check_row_id(columns, postgres)
        known = {c for c, _ in columns}
        rid = postgres.row_id_column
        by_shape: defaultdict[tuple[str, ...], list[tuple[str, str]]] = defaultdict(list)
        found: list[tuple[str, str]] = []
        for item_id, rows in pages:
            for row in rows:
                if not isinstance(row, dict) or row.get(rid) is None:
                    continue
                shape = tuple(sorted(k for k in row if k in known))
                by_shape[shape].append((json.dumps(row), str(row[rid])))
                found.append((str(row[rid]), item_id))
        with conn.transaction(), conn.cursor() as cur:
            for shape, rows_json in by_shape.items():
                cur.executemany(_statement(postgres, shape), [(r,) for r, _ in rows_json])
                written += len(rows_json)
            cur.executemany(
                _RECORD, [(namespace, name, run_uid, row_id, run_name, item) for row_id, item in found]
            )
    return written


def _statement(postgres: TablePostgres, shape: tuple[str, ...]) -> sql.Composed:
    table = qualified(postgres.table)
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in shape)
    others = [c for c in shape if c != postgres.row_id_column]
    update: sql.Composable = (
        sql.SQL("do update set ")
        + sql.SQL(", ").join(sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in others)
        if others
        else sql.SQL("do nothing")
    )
    return sql.SQL(
        "insert into {table} ({cols}) select {cols} from jsonb_populate_record(null::{table}, %s::jsonb) "
        "on conflict ({rid}) {update}"
    ).format(table=table, cols=cols, rid=sql.Identifier(postgres.row_id_column), update=update)


def rows_of_run(
    dsn: str, namespace: str, name: str, postgres: TablePostgres, run_uid: str, limit: int
) -> list[dict[str, Any]]:
    """The rows this run found, as the table has them now, in row id order."""
    with connect(dsn) as conn:
        if conn.execute("select to_regclass('oxygen.ingested_rows')").fetchone() in (None, (None,)):
            return []
        query = sql.SQL(
            "select row_to_json(t)::text from {table} t join oxygen.ingested_rows i "
            "on i.namespace = %s and i.table_name = %s and i.run_uid = %s and i.row_id = t.{rid}::text "
            "order by i.row_id limit %s"
        ).format(table=qualified(postgres.table), rid=sql.Identifier(postgres.row_id_column))
        return [json.loads(r[0]) for r in conn.execute(query, (namespace, name, run_uid, limit)).fetchall()]
