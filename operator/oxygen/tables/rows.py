"""The rows a column run fills: selected from the Table, keyset-paged, in one read-only snapshot.

`rows`: "empty" (the default: the cell is empty, or its last write failed), "all", or
{"where": "<SQL boolean on the row>"}. The user's SQL runs inside a READ ONLY transaction with the
Table's own credentials, as one statement: it can select, never write. Pages of `PAGE_ROWS` rows are
read by row id (`where id > last order by id`), so a million-row table is never one query's result.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from oxygen.api.table import TablePostgres
from oxygen.tables import schema
from oxygen.tables.connect import connect, qualified
from oxygen.tables.describe import check_row_id, columns_of
from oxygen.tables.errors import TableError

PAGE_ROWS = 5000


@dataclass(frozen=True)
class Selection:
    kind: Literal["empty", "all", "where"] = "empty"
    where: str | None = None


def selection_of(rows: Any) -> Selection:
    """spec.rows as written; ValueError with what is accepted otherwise."""
    if rows is None or rows == "empty":
        return Selection("empty")
    if rows == "all":
        return Selection("all")
    if (
        isinstance(rows, dict)
        and set(rows) == {"where"}
        and isinstance(rows["where"], str)
        and rows["where"].strip()
    ):
        return Selection("where", rows["where"])
    raise ValueError(
        f'spec.rows must be "empty", "all" or {{where: "<SQL boolean>"}}, not {json.dumps(rows)}'
    )


@dataclass(frozen=True)
class TableRef:
    """Where a run's cells are: the Table resource (namespace, name) and its database table."""

    namespace: str
    name: str
    postgres: TablePostgres
    column: str


def add_column(conn: psycopg.Connection, ref: TableRef) -> None:
    """The run's column, as jsonb, if the table lacks it."""
    conn.execute(
        sql.SQL("alter table {} add column if not exists {} jsonb").format(
            qualified(ref.postgres.table), sql.Identifier(ref.column)
        )
    )


def _page_query(ref: TableRef, selection: Selection, first: bool) -> sql.Composed:
    rid = sql.Identifier(ref.postgres.row_id_column)
    table = qualified(ref.postgres.table)
    joins: sql.Composable = sql.SQL("")
    if selection.kind == "empty":
        joins = sql.SQL(
            " left join oxygen.cells c on c.namespace = %(ns)s and c.table_name = %(name)s "
            "and c.column_name = %(column)s and c.row_id = t.{}::text"
        ).format(rid)
        where: sql.Composable = sql.SQL("(t.{} is null or c.status = 'failed')").format(
            sql.Identifier(ref.column)
        )
    elif selection.kind == "where":
        assert selection.where is not None
        # The statement runs with named parameters: a literal % of the user's SQL (like '%.com') is doubled.
        where = sql.SQL("({})").format(sql.SQL(selection.where.replace("%", "%%")))
    else:
        where = sql.SQL("true")
    after = sql.SQL("") if first else sql.SQL(" and t.{} > %(last)s").format(rid)
    return sql.SQL(
        "select t.{rid}, row_to_json(t)::text from {table} t{joins} where {where}{after} "
        "order by t.{rid} limit %(limit)s"
    ).format(rid=rid, table=table, joins=joins, where=where, after=after)


def stream(dsn: str, ref: TableRef, selection: Selection) -> Iterator[tuple[str, dict[str, Any]]]:
    """(row id, row as JSON) of every selected row, in row id order."""
    with connect(dsn) as conn:
        check_row_id(columns_of(conn, ref.postgres.table), ref.postgres)
        add_column(conn, ref)
        schema.ensure(conn, dsn)
        params: dict[str, Any] = {
            "ns": ref.namespace,
            "name": ref.name,
            "column": ref.column,
            "limit": PAGE_ROWS,
        }
        with conn.transaction():
            conn.execute("set transaction isolation level repeatable read, read only")
            last: Any = None
            first = True
            while True:
                try:
                    page = conn.execute(
                        _page_query(ref, selection, first), {**params, "last": last}
                    ).fetchall()
                except psycopg.Error as err:
                    raise TableError("RowsQueryFailed", " ".join(str(err).split())[:900]) from None
                for row_id, row in page:
                    yield str(row_id), json.loads(row)
                if len(page) < PAGE_ROWS:
                    return
                last, first = page[-1][0], False
