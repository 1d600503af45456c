"""The item store's schema: versioned migrations, applied in order, each once, under an advisory lock.

`migrate(conn)` is idempotent (the operator calls it on every start, replicas at once too): the lock
serialises concurrent callers and `oxygen.schema_migrations` records what was applied. A migration is
never edited once released; a change is a new entry at the end of MIGRATIONS.
"""

from __future__ import annotations

from typing import Any

import psycopg

# pg_advisory_xact_lock key: "oxygen items" (any constant our tables' users do not use).
LOCK_KEY = 0x6F78_6974

WORKER_GROUP = "oxygen_worker"

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        create table oxygen.items (
            run_uid text not null,
            round int not null,
            ordinal bigint not null,
            namespace text not null,
            item_id text not null,
            row_id text,
            step text,
            status text not null,
            attempt_count int not null default 0,
            inputs jsonb,
            outputs jsonb,
            error text,
            error_class text,
            credits_used numeric,
            started_at timestamptz,
            finished_at timestamptz,
            latency_seconds float8,
            superseded_by text,
            cached bool not null default false,
            primary key (run_uid, round, ordinal)
        );
        create index items_run_status on oxygen.items (run_uid, status);
        create index items_run_row on oxygen.items (run_uid, row_id);
        """,
    ),
    (
        2,
        # Workers: one login role per run, member of oxygen_worker, sees and updates only its run's rows
        # (row-level security through oxygen.worker_runs; the operator's superuser bypasses it).
        f"""
        create table oxygen.worker_runs (
            role_name text primary key,
            run_uid text not null
        );
        do $$ begin
            if not exists (select from pg_roles where rolname = '{WORKER_GROUP}') then
                create role {WORKER_GROUP} nologin;
            end if;
        end $$;
        create function oxygen.worker_run_uid() returns text
            language sql stable security definer set search_path = pg_catalog, oxygen
            as $f$ select run_uid from oxygen.worker_runs where role_name = session_user $f$;
        revoke all on function oxygen.worker_run_uid() from public;
        grant execute on function oxygen.worker_run_uid() to {WORKER_GROUP};
        grant usage on schema oxygen to {WORKER_GROUP};
        grant select on oxygen.items to {WORKER_GROUP};
        grant update (status, attempt_count, outputs, error, error_class, credits_used, started_at,
                      finished_at, latency_seconds) on oxygen.items to {WORKER_GROUP};
        alter table oxygen.items enable row level security;
        create policy items_of_own_run on oxygen.items to {WORKER_GROUP}
            using (run_uid = oxygen.worker_run_uid())
            with check (run_uid = oxygen.worker_run_uid());
        """,
    ),
)


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply what is missing; returns the versions applied now (empty when up to date)."""
    applied_now: list[int] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute("create schema if not exists oxygen")
        conn.execute(
            "create table if not exists oxygen.schema_migrations ("
            " version int primary key, applied_at timestamptz not null default now())"
        )
        done = {int(row[0]) for row in conn.execute("select version from oxygen.schema_migrations")}
        for version, sql in MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql.encode())
            conn.execute("insert into oxygen.schema_migrations (version) values (%s)", (version,))
            applied_now.append(version)
    return applied_now


def current_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("select coalesce(max(version), 0) from oxygen.schema_migrations").fetchone()
    return int(row[0]) if row else 0
