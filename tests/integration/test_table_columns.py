"""Column runs over a Table on a real PostgreSQL, with a real HTTP provider on loopback (issue 17,
acceptance 1, 2 and 5): cells fill while the run goes, failed cells say why, `rows: empty` runs only
what needs it, `retry-failed` works as for any run, and `cells inspect` shows a cell's history."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.provider import Provider, Reply, echo, inputs_of, with_latency
from tests.support.runs import Runs
from tests.support.tables import create_table, database, dsn_secret, get_table, leads, table_manifest

pytestmark = pytest.mark.cluster

COLUMN = "company_domain"


@pytest.fixture
def crm(postgres: str) -> Iterator[str]:
    with database(postgres) as dsn:
        yield dsn


def provider(api: client.ApiClient, ns: str, url: str, name: str = "enrich", price: str = "1") -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Provider",
        "metadata": {"name": name},
        "spec": {
            "http": {"url": url, "timeoutSeconds": 10},
            "price": price,
            "retry": {"maxAttempts": 2, "backoffSeconds": 0.1},
        },
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(GROUP, VERSION, ns, "providers", body)


def column_run(**spec: Any) -> dict[str, Any]:
    return {
        "table": "leads",
        "column": COLUMN,
        "inputs": {"domain": "${row.website}"},
        "producer": {"providerRef": {"name": "enrich"}},
        **spec,
    }


def oxygen(cluster: LocalCluster, ns: str, *args: str) -> Any:
    flags = ["--kubeconfig", str(cluster.kubeconfig), "-n", ns, "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "oxygen", *args, *flags], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def filled(dsn: str) -> int:
    """Cells of the column holding a value (0 before planning added the column)."""
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute(f"select count({COLUMN}) from public.leads").fetchone()
        except psycopg.errors.UndefinedColumn:
            return 0
    assert row is not None
    return int(row[0])


# The issue's figure is 10,000 rows (OXYGEN_TEST_TABLE_ROWS=10000 runs it); CI runs 2,000 so the test
# stays near a minute on a shared 2-core machine. Nothing in the path depends on the count: rows are
# keyset-paged by 5,000, cells written per shard as results arrive.
TABLE_ROWS = int(os.environ.get("OXYGEN_TEST_TABLE_ROWS", "2000"))


def test_a_column_run_fills_every_cell_of_a_table_while_it_runs(
    runs: Runs, api: client.ApiClient, crm: str
) -> None:
    rows = TABLE_ROWS
    leads(crm, rows)
    dsn_secret(api, runs.ns, "crm-db", crm)
    create_table(api, runs.ns, table_manifest("leads", "public.leads"))
    with Provider(with_latency(0.01, echo({"source": "enrich"}))) as endpoint:
        provider(api, runs.ns, endpoint.url)
        producer = {"providerRef": {"name": "enrich"}, "concurrency": 16}
        runs.create("fill", column_run(producer=producer, batchSize=max(100, rows // 8), parallelism=4))
        seen: list[tuple[int, str]] = []
        while True:
            phase = runs.status("fill").get("phase", "queued")
            seen.append((filled(crm), phase))
            if phase in ("succeeded", "completed", "failed", "canceled"):
                break
            assert len(seen) < 2000, seen[-5:]
            time.sleep(0.25)
        calls = len(endpoint.calls)
    status = runs.status("fill")
    assert (status["phase"], status["itemsTotal"], status["itemsSucceeded"]) == ("succeeded", rows, rows), (
        status
    )
    assert calls == rows
    mid = [count for count, phase in seen if phase == "running" and 0 < count < rows]
    assert mid, f"no cell was visible while the run was running: {seen[:3]} … {seen[-3:]}"
    # Cells written after the last status write land within a pass or two.
    wait_for(lambda: filled(crm) == rows, timeout=30)
    with psycopg.connect(crm) as conn:
        wrong = conn.execute(
            f"select count(*) from public.leads where {COLUMN} is distinct from "
            "jsonb_build_object('domain', website, 'source', 'enrich')"
        ).fetchone()
        kinds = conn.execute(
            "select format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = 'public.leads'::regclass and attname = %s",
            (COLUMN,),
        ).fetchone()
        cells = conn.execute(
            "select count(*), count(distinct item_id), min(attempt_count), max(attempt_count) "
            "from oxygen.cells where status = 'succeeded' and run_name = 'fill'"
        ).fetchone()
    assert wrong == (0,) and kinds == ("jsonb",)
    assert cells == (rows, rows, 1, 1)

    def reported() -> dict[str, Any] | None:
        columns = {c["name"]: c for c in get_table(api, runs.ns, "leads")["status"].get("columns", [])}
        column = columns.get(COLUMN)
        return column if column is not None and column["filled"] == rows else None

    column = wait_for(reported, timeout=30)
    assert (column["filledBy"], column["empty"], column["failed"]) == ("fill", 0, 0)


def unknown_for(bad: set[str]) -> Any:
    """400 with the provider's message for the listed websites, echo for the others."""
    answer = echo()

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        if inputs_of(body).get("domain") in bad:
            return Reply(400, {"error": f"unknown domain {inputs_of(body)['domain']}"})
        return answer(item_id, attempt, body)

    return behaviour


def test_failed_cells_say_why_and_rows_empty_runs_only_them_with_history(
    runs: Runs, api: client.ApiClient, cluster: LocalCluster, crm: str
) -> None:
    leads(crm, 30)
    dsn_secret(api, runs.ns, "crm-db", crm)
    create_table(api, runs.ns, table_manifest("leads", "public.leads"))
    bad = {"site3.example", "site11.example", "site19.example", "site27.example"}
    with Provider(unknown_for(bad)) as endpoint:
        provider(api, runs.ns, endpoint.url)
        runs.create("first", column_run(batchSize=10))
        first = runs.wait_phase("first", timeout=180)
        assert (first["phase"], first["itemsSucceeded"], first["itemsFailed"]) == ("completed", 26, 4), first
        assert len(endpoint.calls) == 30, "a 400 is not retried"

        # Failed cells are empty, with status failed; cells inspect shows the provider's message and inputs.
        with psycopg.connect(crm) as conn:
            empty = conn.execute(f"select id from public.leads where {COLUMN} is null order by id").fetchall()
            failed = conn.execute(
                "select row_id from oxygen.cells where status = 'failed' order by row_id"
            ).fetchall()
        assert [r[0] for r in empty] == [r[0] for r in failed] == ["r000003", "r000011", "r000019", "r000027"]
        cell = oxygen(cluster, runs.ns, "cells", "inspect", "leads", "r000011", COLUMN)
        assert (cell["status"], cell["run"], cell["value"], cell["attempt_count"]) == (
            "failed",
            "first",
            None,
            1,
        )
        assert "unknown domain site11.example" in cell["error"], cell
        assert cell["inputs"] == {"domain": "site11.example"}
        assert cell["history"] == []

        # A second run (rows: empty, the default) calls the provider for those four rows only.
        endpoint.reset()
        endpoint.behaviour = unknown_for({"site27.example"})
        second = oxygen(
            cluster, runs.ns, "columns", "run", "leads", COLUMN, "--provider", "enrich",
            "--input", "domain=${row.website}", "--name", "second", "--wait",
        )  # fmt: skip
        assert (second["status"], second["items_total"], second["items_failed"]) == ("completed", 4, 1), (
            second
        )
        called = sorted(c.row_id or "" for c in endpoint.calls)
        assert called == ["r000003", "r000011", "r000019", "r000027"]

        # retry-failed works as for any run: only the one failed row is called again.
        endpoint.reset()
        endpoint.behaviour = echo()
        retried = oxygen(cluster, runs.ns, "table-runs", "retry-failed", "second", "--wait")
        assert retried["name"] == "second"
        done = runs.wait_phase("second", "succeeded", timeout=180)
        assert done["itemsSucceeded"] == 4, done
        assert [c.row_id for c in endpoint.calls] == ["r000027"]
        wait_for(lambda: filled(crm) == 30, timeout=30)

    # The cell's history across the two runs.
    cell = oxygen(cluster, runs.ns, "cells", "inspect", "leads", "r000011", COLUMN)
    assert (cell["status"], cell["run"], cell["value"], cell["error"]) == (
        "succeeded", "second", {"domain": "site11.example"}, None,
    )  # fmt: skip
    assert [(h["run"], h["status"]) for h in cell["history"]] == [("first", "failed")]
    assert "unknown domain" in cell["history"][0]["error"]
    retried_cell = oxygen(cluster, runs.ns, "cells", "inspect", "leads", "r000027", COLUMN)
    assert (retried_cell["status"], retried_cell["run"]) == ("succeeded", "second")
    assert retried_cell["attempt_count"] >= 2
    assert [(h["run"], h["status"]) for h in retried_cell["history"]] == [("first", "failed")]


def test_never_pay_twice_for_the_same_inputs(
    runs: Runs, api: client.ApiClient, cluster: LocalCluster, crm: str
) -> None:
    """1,000 rows with 100 distinct inputs and a cache: 100 calls, 100 times the price in credits,
    900 cache hits; a second run over the same rows: no call, no credit."""
    leads(crm, 1000, distinct=100)
    dsn_secret(api, runs.ns, "crm-db", crm)
    create_table(api, runs.ns, table_manifest("leads", "public.leads"))
    producer = {"providerRef": {"name": "enrich"}, "cache": {"ttlSeconds": 86400}}
    with Provider(echo()) as endpoint:
        provider(api, runs.ns, endpoint.url, price="2")
        runs.create("cached", column_run(producer=producer, batchSize=250))
        first = runs.wait_phase("cached", timeout=300)
        calls = sorted(c.body["item"]["inputs"]["domain"] for c in endpoint.calls)
        assert (first["phase"], first["itemsSucceeded"], first.get("itemsCached")) == (
            "succeeded",
            1000,
            900,
        ), first
        assert calls == sorted(f"site{i}.example" for i in range(100)), "each distinct input called once"
        assert first["creditsUsed"] == "200"
        (summary,) = first["providers"]
        assert (summary["provider"], summary["itemsSucceeded"], summary["cached"]) == ("enrich", 1000, 900), (
            summary
        )
        wait_for(lambda: filled(crm) == 1000, timeout=30)
        with psycopg.connect(crm) as conn:
            wrong = conn.execute(
                f"select count(*) from public.leads "
                f"where {COLUMN} is distinct from jsonb_build_object('domain', website)"
            ).fetchone()
        assert wrong == (0,)
        repeat = oxygen(cluster, runs.ns, "cells", "inspect", "leads", "r000150", COLUMN)
        assert (repeat["value"], repeat["cached"], repeat["credits_used"]) == (
            {"domain": "site50.example"},
            True,
            "0",
        )

        endpoint.reset()
        runs.create("again", column_run(producer=producer, rows="all", batchSize=250))
        again = runs.wait_phase("again", timeout=300)
        assert (again["phase"], again["itemsSucceeded"], again.get("itemsCached")) == (
            "succeeded",
            1000,
            1000,
        ), again
        assert again["creditsUsed"] == "0"
        assert endpoint.calls == []


def test_an_ingestion_run_upserts_each_found_row_once(
    runs: Runs, api: client.ApiClient, cluster: LocalCluster, crm: str
) -> None:
    """Pages overlap by one row and one page is retried: every row lands once, by row id."""
    with psycopg.connect(crm, autocommit=True) as conn:
        conn.execute("create table public.companies (id text primary key, name text, employees int)")
        conn.execute("insert into public.companies values ('c-2', 'old', null)")
    dsn_secret(api, runs.ns, "crm-db", crm)
    create_table(api, runs.ns, table_manifest("companies", "public.companies"))
    busy = {"n": 0}

    def pages(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        inputs = body["item"]["inputs"]
        page = int(inputs["page"])
        if page == 1 and busy["n"] < 2:
            busy["n"] += 1
            return Reply(status=503, body={"error": "search backend busy"})
        rows = [
            {
                "id": f"c-{page * 4 + i}",
                "name": f"saas-{page * 4 + i}",
                "employees": page * 4 + i,
                "extra": "x",
            }
            for i in range(5)
        ]
        return Reply(body={"rows": rows, "nextCursor": f"c{page + 1}" if page < 3 else None})

    with Provider(pages) as endpoint:
        run = oxygen(
            cluster, runs.ns, "table-ingestions", "create-tool-page", "--table", "companies",
            "--provider", "search", "--url", endpoint.url, "--query", "saas", "--page-size", "5",
            "--name", "ingest", "--wait",
        )  # fmt: skip
        assert (run["status"], run["items_succeeded"]) == ("succeeded", 4), run
        assert len(endpoint.calls) == 6, "page 1 answered 503 twice, then rows"
    found = oxygen(cluster, runs.ns, "table-ingestions", "rows", "ingest")
    assert [r["id"] for r in found] == sorted(f"c-{i}" for i in range(17))
    with psycopg.connect(crm) as conn:
        counts = conn.execute("select count(*), count(distinct id) from public.companies").fetchone()
        updated = conn.execute("select name, employees from public.companies where id = 'c-2'").fetchone()
        recorded = conn.execute(
            "select count(*) from oxygen.ingested_rows where run_name = 'ingest'"
        ).fetchone()
    assert counts == (17, 17) and recorded == (17,)
    assert updated == ("saas-2", 2), "an existing row is updated by row id"
