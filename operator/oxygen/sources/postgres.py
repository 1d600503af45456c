"""`spec.itemsFrom.postgres`: every row of a query is an item, read through a server-side cursor.

The query runs in a read-only transaction with the credentials of the run's own Secret (never the
operator's item store), under `DECLARE … CURSOR`, and rows come `chunk` at a time: the result is never
held whole, whatever its size. `rowIdColumn` gives each row's rowId (as text; NULL: none), every other
column an input of the same name. Values become JSON: numbers and text as they are, `numeric` as its
exact decimal text, dates and times in ISO 8601, uuid as text, bytea as hex, json/jsonb as parsed.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import psycopg

from oxygen.planning.items import PlannedItem, item_id
from oxygen.sources.errors import MALFORMED, QUERY_FAILED, UNREACHABLE, SourceError, one_line
from oxygen.sources.tenant_dsn import TenantDsnError, tenant_conninfo

CHUNK = 2000
CONNECT_TIMEOUT_SECONDS = 10


def json_value(value: Any) -> Any:
    """A column's value as an input (JSON)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID | dt.timedelta):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)


def _query(text: str) -> str:
    # DECLARE takes one statement without its terminator.
    return text.strip().rstrip(";").rstrip()


def stream(dsn: str, query: str, row_id_column: str = "row_id", chunk: int = CHUNK) -> Iterator[PlannedItem]:
    """The query's rows as items, in the query's order (ids "0", "1", … by position)."""
    try:
        conninfo = tenant_conninfo(dsn)
    except TenantDsnError as err:
        raise SourceError(
            UNREACHABLE, f"the items database's connection string (from the Secret): {err}"
        ) from None
    try:
        conn = psycopg.connect(
            conninfo, connect_timeout=CONNECT_TIMEOUT_SECONDS, application_name="oxygen-items"
        )
    except psycopg.Error as err:
        raise SourceError(
            UNREACHABLE, f"cannot connect to the items database: {one_line(str(err))}"
        ) from None
    except Exception as err:  # a DSN libpq cannot parse is a ProgrammingError; anything else too
        raise SourceError(
            UNREACHABLE, f"cannot connect to the items database: {one_line(str(err))}"
        ) from None
    with conn:
        try:
            conn.read_only = True
            with conn.cursor(name="oxygen_items") as cur:
                cur.itersize = chunk
                cur.execute(_query(query))
                names = [c.name for c in cur.description or []]
                position = _row_id_position(names, row_id_column)
                count = 0
                while True:
                    rows = cur.fetchmany(chunk)
                    if not rows:
                        break
                    for row in rows:
                        row_id = row[position]
                        inputs = {n: json_value(v) for k, (n, v) in enumerate(zip(names, row, strict=True))
                                  if k != position}  # fmt: skip
                        yield PlannedItem(item_id(count), None if row_id is None else str(row_id), inputs)
                        count += 1
        except psycopg.OperationalError as err:
            if conn.closed:
                raise SourceError(
                    UNREACHABLE, f"the items database went away: {one_line(str(err))}"
                ) from None
            raise SourceError(QUERY_FAILED, f"the items query failed: {one_line(str(err))}") from None
        except psycopg.Error as err:
            raise SourceError(QUERY_FAILED, f"the items query failed: {one_line(str(err))}") from None


def _row_id_position(names: list[str], row_id_column: str) -> int:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SourceError(
            MALFORMED, f"the items query returns column(s) {', '.join(duplicates)} more than once"
        )
    if row_id_column not in names:
        raise SourceError(
            MALFORMED,
            f"the items query has no column {row_id_column!r} (rowIdColumn); its columns: {', '.join(names)}",
        )
    return names.index(row_id_column)
