"""What a Table's database holds now: its rows, its columns and how filled each one is."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from oxygen.api.table import TablePostgres
from oxygen.tables.connect import connect, qualified
from oxygen.tables.errors import TableError


@dataclass(frozen=True)
class ColumnFacts:
    name: str
    type: str
    filled: int = 0
    failed: int = 0
    empty: int = 0
    filled_by: str | None = None


@dataclass(frozen=True)
class TableFacts:
    rows: int
    columns: list[ColumnFacts] = field(default_factory=list)


def columns_of(conn: psycopg.Connection, table: str) -> list[tuple[str, str]]:
    """(name, type) of the table's columns in order; TableError when the table does not exist."""
    found = conn.execute("select to_regclass(%s)::oid", (table,)).fetchone()
    if found is None or found[0] is None:
        raise TableError("TableNotFound", f'relation "{table}" does not exist')
    rows = conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = %s and attnum > 0 and not attisdropped order by attnum",
        (found[0],),
    ).fetchall()
    return [(str(name), str(kind)) for name, kind in rows]


def check_row_id(columns: list[tuple[str, str]], spec: TablePostgres) -> None:
    if spec.row_id_column not in {name for name, _ in columns}:
        raise TableError(
            "RowIdColumnNotFound", f'column "{spec.row_id_column}" (rowIdColumn) not found in {spec.table}'
        )


def describe(dsn: str, spec: TablePostgres, namespace: str, name: str) -> TableFacts:
    with connect(dsn) as conn:
        columns = columns_of(conn, spec.table)
        check_row_id(columns, spec)
        counts = sql.SQL(", ").join(
            [sql.SQL("count(*)")] + [sql.SQL("count({})").format(sql.Identifier(c)) for c, _ in columns]
        )
        row = conn.execute(sql.SQL("select {} from {}").format(counts, qualified(spec.table))).fetchone()
        assert row is not None
        total, filled = int(row[0]), [int(n) for n in row[1:]]
        cells: dict[str, tuple[int, str | None]] = {}
        if conn.execute("select to_regclass('oxygen.cells')").fetchone() not in (None, (None,)):
            for column, failed, last in conn.execute(
                "select column_name, count(*) filter (where status = 'failed'), "
                "(array_agg(run_name order by updated_at desc))[1] "
                "from oxygen.cells where namespace = %s and table_name = %s group by column_name",
                (namespace, name),
            ):
                cells[str(column)] = (int(failed), None if last is None else str(last))
    out = []
    for (column, kind), count in zip(columns, filled, strict=True):
        failed, last = cells.get(column, (0, None))
        out.append(
            ColumnFacts(
                name=column,
                type=kind,
                filled=count,
                failed=failed,
                empty=max(0, total - count - failed),
                filled_by=last,
            )
        )
    return TableFacts(rows=total, columns=out)
