"""The operator's side tables in a Table's database (schema `oxygen`), created when first needed.

- `oxygen.cells`: one row per cell a run wrote (namespace, table, column, row id): its status, error,
  the run and item that wrote it, attempts, credits, inputs — what `cells inspect` shows and what
  `rows: empty` selects on (a cell that failed is not filled).
- `oxygen.cell_history`: one row per cell per run item that wrote it, so a cell's earlier runs stay
  visible; keyed by run and item, so a retried or re-executed item writes it once.
- `oxygen.call_cache`: successful calls by producer (cache.producer_identity) and inputs (never pay twice).
- `oxygen.ingested_rows`: which ingestion run found which row (ingest.py).
"""

from __future__ import annotations

import psycopg

SCHEMA = """
create schema if not exists oxygen;
create table if not exists oxygen.cells (
    namespace text not null,
    table_name text not null,
    column_name text not null,
    row_id text not null,
    status text not null,
    error text,
    error_class text,
    run_uid text not null,
    run_name text not null,
    item_id text not null,
    provider text,
    attempt_count int not null default 0,
    credits_used numeric not null default 0,
    inputs jsonb,
    cached bool not null default false,
    updated_at timestamptz not null default now(),
    primary key (namespace, table_name, column_name, row_id)
);
create table if not exists oxygen.cell_history (
    namespace text not null,
    table_name text not null,
    column_name text not null,
    row_id text not null,
    run_uid text not null,
    item_id text not null,
    run_name text not null,
    provider text,
    status text not null,
    error text,
    error_class text,
    attempt_count int not null default 0,
    credits_used numeric not null default 0,
    inputs jsonb,
    outputs jsonb,
    cached bool not null default false,
    written_at timestamptz not null default now(),
    primary key (namespace, table_name, column_name, row_id, run_uid, item_id)
);
create table if not exists oxygen.ingested_rows (
    namespace text not null,
    table_name text not null,
    run_uid text not null,
    row_id text not null,
    run_name text not null,
    item_id text not null,
    found_at timestamptz not null default now(),
    primary key (namespace, table_name, run_uid, row_id)
);
create table if not exists oxygen.call_cache (
    namespace text not null,
    provider text not null,
    key text not null,
    inputs jsonb,
    outputs jsonb,
    run_uid text not null,
    item_id text not null,
    called_at timestamptz not null default now(),
    primary key (namespace, provider, key)
);
"""

_ready: set[str] = set()


def ensure(conn: psycopg.Connection, dsn: str) -> None:
    """Creates the side tables once per database and process (idempotent; concurrent callers wait)."""
    if dsn in _ready:
        return
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('oxygen.cells schema'))")
        conn.execute(SCHEMA)
    _ready.add(dsn)
