"""Streamed sources into the item store, and the command line reading a store-backed run, against the
real control plane, a real PostgreSQL and a real provider on loopback."""

from __future__ import annotations

import base64
import functools
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from oxygen.itemstore.store import ItemStore
from oxygen.web.data import load_run_page
from oxygen.web.page import render
from tests.integration.test_credits import account, settled
from tests.support.item_store import StoreRuns
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, Reply, echo, inputs_of, with_credits

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
ECHO = {"provider": "echo", "builtin": "echo"}


def secret(runs: StoreRuns, name: str, dsn: str) -> None:
    data = {"dsn": base64.b64encode(dsn.encode()).decode()}
    runs.core.create_namespaced_secret(runs.ns, {"metadata": {"name": name}, "data": data})


@pytest.fixture
def table(postgres: str) -> Iterator[str]:
    name = f"rows_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"drop table if exists {name}")


def fill(dsn: str, table: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"create table {table} (id int primary key, n int, word text)")
        conn.execute(f"insert into {table} select i, i, 'w' || i from generate_series(1, {rows}) i")


def oxygen(cluster: LocalCluster, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "oxygen", *args, "--kubeconfig", str(cluster.kubeconfig), "-n", ns],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.mark.slow
def test_200000_items_from_postgres(store_runs: StoreRuns, postgres: str, table: str) -> None:
    """Acceptance 1 of issue 16: a 200,000-row query into the store; every object stays small."""
    fill(postgres, table, 200_000)
    secret(store_runs, "db", postgres)
    source = {
        "secretRef": {"name": "db", "key": "dsn"},
        "query": f"select id, n from {table}",
        "rowIdColumn": "id",
    }
    started = time.monotonic()
    store_runs.create(
        "big",
        {
            "itemsFrom": {"postgres": source},
            "producer": {**ECHO, "concurrency": 4},
            "batchSize": 10000,
            "parallelism": 10,
        },
    )
    status = store_runs.wait_phase("big", timeout=480)
    took = time.monotonic() - started
    assert status["phase"] == "succeeded", status
    assert (status["itemsTotal"], status["itemsSucceeded"]) == (200_000, 200_000)
    run_bytes = len(json.dumps(store_runs.get("big")))
    shards = store_runs.shards("big")
    assert len(shards) == 20  # batchSize ranges: no split by the inputs' bytes
    shard_bytes = max(len(json.dumps(s)) for s in shards)
    assert run_bytes < 64 * 1024 and shard_bytes < 64 * 1024, (run_bytes, shard_bytes)
    with psycopg.connect(postgres) as conn:
        counted = conn.execute(
            "select count(*), count(*) filter (where status = 'succeeded' and attempt_count = 1),"
            " count(distinct row_id) from oxygen.items where run_uid = %s",
            (store_runs.uid("big"),),
        ).fetchone()
    assert counted == (200_000, 200_000, 200_000)
    print(f"200,000 items from postgres: {took:.0f} s, Run {run_bytes} B, largest RunShard {shard_bytes} B")


def test_round_zero_streams_into_batch_size_ranges(store_runs: StoreRuns, postgres: str, table: str) -> None:
    """25,000 rows of ~250 bytes (a byte split would make 25+ shards) as a dry run: one COPY of skipped
    rows, ceil(25,000 / 10,000) = 3 shards of ranges, nothing called."""
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"create table {table} (id int primary key, pad text)")
        conn.execute(f"insert into {table} select i, repeat('x', 250) from generate_series(1, 25000) i")
    secret(store_runs, "db", postgres)
    source = {"secretRef": {"name": "db", "key": "dsn"}, "query": f"select id, pad from {table}"}
    store_runs.create(
        "wide",
        {
            "itemsFrom": {"postgres": {**source, "rowIdColumn": "id"}},
            "producer": ECHO,
            "mode": "dry_run",
            "batchSize": 10000,
        },
    )
    status = store_runs.wait_phase("wide", timeout=120)
    assert status["phase"] == "succeeded", status
    assert (status["itemsTotal"], status["itemsSkipped"]) == (25_000, 25_000)
    shards = store_runs.shards("wide")
    assert sorted((s["spec"]["range"]["start"], s["spec"]["range"]["end"]) for s in shards) == [
        (0, 10_000),
        (10_000, 20_000),
        (20_000, 25_000),
    ]
    assert all(not s["spec"].get("items") and s["status"]["summary"]["skipped"] for s in shards)
    with psycopg.connect(postgres) as conn:
        counted = conn.execute(
            "select count(*), count(*) filter (where status = 'skipped'), count(distinct ordinal)"
            " from oxygen.items where run_uid = %s and round = 0",
            (store_runs.uid("wide"),),
        ).fetchone()
    assert counted == (25_000, 25_000, 25_000)


def copy_fill(dsn: str, table: str, rows: int) -> None:
    """`table(id, n)` with ids 1..rows, written with COPY."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"create table {table} (id int primary key, n int)")
        with conn.cursor().copy(f"copy {table} (id, n) from stdin") as copy:
            for i in range(1, rows + 1):
                copy.write_row((i, i))


@pytest.mark.slow
def test_operator_sigkilled_ten_times_in_50000_items_from_postgres_loses_and_doubles_nothing(
    store_runs: StoreRuns, store_operator: OperatorProcess, postgres: str, table: str
) -> None:
    """Acceptance 3 of issue 16: 50,000 metered items from `itemsFrom.postgres`, the operator SIGKILLed
    ten times, spread over the run (once the provider has seen its first call, then each time another
    tenth of the items has been called). Nothing lost: every item called successfully and its row
    `succeeded`. Nothing called twice, strictly (at most one successful call per item, no bound above
    one): a SIGKILL ends the operator only, the workers' calls in flight finish and are recorded by
    their workers, so an item is never called again by a restarted operator. Credits exact: 0.5 per
    call, `creditsUsed` 25,000, the account captures exactly that and holds no reservation."""
    total = 50_000
    copy_fill(postgres, table, total)
    secret(store_runs, "db", postgres)
    account(store_runs, grants=[{"id": "g", "amount": "60000"}])
    source = {
        "secretRef": {"name": "db", "key": "dsn"},
        "query": f"select id, n from {table}",
        "rowIdColumn": "id",
    }
    started = time.monotonic()
    kills: list[tuple[int, float]] = []
    with Provider(with_credits("0.5", echo())) as provider:

        def called() -> int:
            return sum(1 for c in provider.calls if 200 <= c.status < 300)

        def reached(target: int) -> bool:
            return called() >= target

        producer = {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1", "concurrency": 16}
        store_runs.create(
            "kills",
            {"itemsFrom": {"postgres": source}, "producer": producer, "batchSize": 2500, "parallelism": 4},
        )
        for target in [1] + [k * total // 10 for k in range(1, 10)]:
            wait_for(functools.partial(reached, target), timeout=240, what=f"{target} items called")
            store_operator.kill(signal.SIGKILL)
            kills.append((called(), time.monotonic() - started))
            time.sleep(1.0)
            store_operator.start()
        final = store_runs.wait_phase("kills", timeout=300)
        took = time.monotonic() - started
        successes = Counter(str(c.row_id) for c in provider.successful_calls())
        failures = [c for c in provider.calls if not 200 <= c.status < 300]
    # Every kill came while the run still had items to call.
    assert len(kills) == 10 and all(done < total for done, _ in kills), kills
    assert final["phase"] == "succeeded", final
    assert (final["itemsTotal"], final["itemsSucceeded"], final["itemsFailed"]) == (total, total, 0)
    assert set(successes) == {str(i) for i in range(1, total + 1)}, "an item was lost"
    doubled = {row: n for row, n in successes.items() if n > 1}
    assert not doubled and not failures, (len(doubled), sorted(doubled)[:20], len(failures))
    assert final["creditsUsed"] == "25000"
    settled(store_runs, {"captured": "25000", "reserved": "0", "available": "35000"})
    with psycopg.connect(postgres) as conn:
        counted = conn.execute(
            "select count(*), count(*) filter (where status = 'succeeded' and attempt_count = 1"
            " and superseded_by is null), count(distinct row_id), sum(credits_used)"
            " from oxygen.items where run_uid = %s",
            (store_runs.uid("kills"),),
        ).fetchone()
    assert counted == (total, total, total, Decimal("25000")), counted
    assert len(store_runs.shards("kills")) == total // 2500
    print(f"50,000 items from postgres, 10 SIGKILLs at {kills}: {took:.0f} s")


def fail_sevens(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
    inputs = inputs_of(body)
    if int(inputs["n"]) % 7 == 0:
        return Reply(status=400, body={"error": f"no {inputs['n']}"})
    return Reply(body={"word": inputs["word"].upper()})


def test_the_command_line_pages_a_store_backed_run(
    store_runs: StoreRuns, postgres: str, table: str, cluster: LocalCluster
) -> None:
    fill(postgres, table, 300)
    secret(store_runs, "db", postgres)
    query = f"select id as row_id, n, word from {table} order by id"
    with Provider(fail_sevens) as provider:
        store_runs.create(
            "paged",
            {
                "table": "t",
                "column": "c",
                "itemsFrom": {"postgres": {"secretRef": {"name": "db", "key": "dsn"}, "query": query}},
                "producer": {"provider": "p", "http": {"url": provider.url}},
                "retry": {"maxAttempts": 1},
                "batchSize": 100,
            },
        )
        status = store_runs.wait_phase("paged", timeout=180)
    assert (status["phase"], status["itemsSucceeded"], status["itemsFailed"]) == ("completed", 258, 42)
    assert all("range" in s["spec"] for s in store_runs.shards("paged"))
    ns = store_runs.ns

    # With the store's DSN: every item, in order, in the item shape; pages of 7 rows.
    done = oxygen(
        cluster, ns, "table-runs", "items", "paged", "--json", "--item-store", postgres, "--page-size", "7"
    )
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)
    assert [i["id"] for i in items] == [str(k) for k in range(300)]
    first = items[0]
    assert (first["row_id"], first["status"], first["attempt_count"]) == ("1", "succeeded", 1)
    assert first["inputs"] == {"n": 1, "word": "w1"} and first["outputs"] == {"word": "W1"}
    assert first["shard"] == store_runs.shards("paged")[0]["metadata"]["name"]
    assert first["provider"] == "p" and first["credits_used"] == "0"

    # Without a DSN: the run's own worker credentials (the Secret the operator made for it).
    done = oxygen(cluster, ns, "table-runs", "items", "paged", "--status", "failed", "--json")
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout)
    assert [i["row_id"] for i in failed] == [str(n) for n in range(7, 301, 7)]
    assert failed[0]["error"] and "no 7" in failed[0]["error"] and failed[0]["attempt_count"] == 1

    done = oxygen(cluster, ns, "table-runs", "items", "paged", "--limit", "5", "--page-size", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["ID", "ROW", "STATUS"] and len(lines) == 6

    done = oxygen(cluster, ns, "cells", "inspect", "t", "14", "c", "--json")
    assert done.returncode == 0, done.stderr
    cell = json.loads(done.stdout)
    assert (cell["row_id"], cell["status"], cell["run"], cell["history"]) == ("14", "failed", "paged", [])

    # The run page reads the same rows: its failed items and timeline come from the store.
    store = ItemStore(postgres)
    try:
        page = load_run_page(store_runs.api, ns, "paged", store)
    finally:
        store.close()
    assert page is not None and page.stored is not None
    assert page.stored.failed_total == 42 and page.stored.failed[0]["rowId"] == "7"
    assert sum(n for _, _, n in page.stored.finishes) == 300
    html = render(page.run, page.shards, page.events, time.time(), page.stored)
    assert '<b id="timeline-failed">42</b>' in html and "no 7" in html

    # A failed read says so in one line.
    done = oxygen(
        cluster, ns, "table-runs", "items", "paged", "--item-store", "postgresql://nobody@127.0.0.1:1/x"
    )
    assert done.returncode == 1 and done.stderr.startswith("error: item store:"), done.stderr
