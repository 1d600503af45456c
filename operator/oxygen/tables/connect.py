"""Connections to a Table's database: short timeouts, and every failure a TableError with its message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql

from oxygen.sources.tenant_dsn import TenantDsnError, tenant_conninfo
from oxygen.tables.errors import TableError

CONNECT_TIMEOUT_SECONDS = 5
# A probe or a page of rows that takes longer is a database in trouble: it is reported, not waited on.
STATEMENT_TIMEOUT_MS = 60_000


@contextmanager
def connect(dsn: str, autocommit: bool = True) -> Iterator[psycopg.Connection]:
    try:
        conninfo = tenant_conninfo(dsn)
    except TenantDsnError as err:
        raise TableError(
            "DatabaseUnreachable", f"the Table's connection string (from its Secret): {err}"
        ) from None
    try:
        conn = psycopg.connect(
            conninfo,
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            application_name="oxygen-operator",
        )
    except psycopg.Error as err:
        raise TableError("DatabaseUnreachable", _message(err)) from None
    try:
        yield conn
    except psycopg.Error as err:
        raise TableError("DatabaseError", _message(err)) from None
    finally:
        conn.close()


def _message(err: psycopg.Error) -> str:
    text = str(err).strip() or type(err).__name__
    return " ".join(text.split())[:900]


def qualified(name: str) -> sql.Composed:
    """`public.leads` → "public"."leads" (names are checked identifiers, never SQL)."""
    return sql.SQL(".").join(sql.Identifier(part) for part in name.split("."))
