"""Tables in tests: a database of their own on the test PostgreSQL, its DSN in a Secret, a Table."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from kubernetes import client
from psycopg.conninfo import make_conninfo

from oxygen.api.common import GROUP, VERSION


def with_database(dsn: str, database: str) -> str:
    """The same server, another database."""
    return make_conninfo(dsn, dbname=database)


@contextmanager
def database(dsn: str) -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards; yields its DSN."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield with_database(dsn, name)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


def dsn_secret(api: client.ApiClient, ns: str, name: str, dsn: str, key: str = "dsn") -> None:
    data = {key: base64.b64encode(dsn.encode()).decode()}
    client.CoreV1Api(api).create_namespaced_secret(ns, {"metadata": {"name": name}, "data": data})


def table_manifest(name: str, table: str, secret: str = "crm-db", row_id: str = "id") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Table",
        "metadata": {"name": name},
        "spec": {
            "postgres": {"secretRef": {"name": secret, "key": "dsn"}, "table": table, "rowIdColumn": row_id}
        },
    }


def create_table(api: client.ApiClient, ns: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "tables", body)


def get_table(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "tables", name
    )
    return found


def ready(body: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)


def leads(dsn: str, rows: int, table: str = "public.leads", distinct: int | None = None) -> None:
    """`rows` leads: id (text, r000000…), website (site<i>.example; `distinct` of them, repeating)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"create table {table} (id text primary key, website text)")
        with conn.cursor().copy(f"copy {table} (id, website) from stdin") as copy:
            for i in range(rows):
                copy.write_row((f"r{i:06d}", f"site{i % (distinct or rows)}.example"))
