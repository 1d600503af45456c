"""Streamed items sources against a real PostgreSQL and a real HTTP server on loopback:
`itemsFrom.postgres` and `itemsFrom.url` (JSONL, CSV), and what fails one run but never the operator."""

from __future__ import annotations

import base64
import functools
import json
import socket
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from oxygen.devcluster.wait import wait_for
from tests.support.file_server import FileServer
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ECHO = {"provider": "echo", "builtin": "echo"}


def secret(runs: Runs, name: str, dsn: str) -> None:
    data = {"dsn": base64.b64encode(dsn.encode()).decode()}
    runs.core.create_namespaced_secret(runs.ns, {"metadata": {"name": name}, "data": data})


def postgres_run(name: str, query: str, secret_name: str = "db", **extra: object) -> dict[str, object]:
    source = {"secretRef": {"name": secret_name, "key": "dsn"}, "query": query, **extra}
    return {"itemsFrom": {"postgres": source}, "producer": ECHO, "batchSize": 20}


@pytest.fixture
def leads(postgres: str) -> Iterator[str]:
    """A table of 45 leads (its name is unique to the test)."""
    table = f"leads_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"create table {table} (id int primary key, company text, score numeric)")
        conn.execute(f"insert into {table} select i, 'company ' || i, i / 4.0 from generate_series(1, 45) i")
    yield table
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f"drop table {table}")


def has_event(runs: Runs, name: str, reason: str, message: str) -> bool:
    return any(e.reason == reason and message in e.message for e in runs.events(name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_items_from_a_postgres_query(runs: Runs, postgres: str, leads: str) -> None:
    secret(runs, "db", postgres)
    runs.create("from-pg", postgres_run("from-pg", f"select * from {leads} order by id", rowIdColumn="id"))
    status = runs.wait_phase("from-pg", timeout=240)
    assert (status["phase"], status["itemsTotal"], status["itemsSucceeded"]) == ("succeeded", 45, 45)
    by_row = {i["rowId"]: i for i in runs.items("from-pg").values()}
    assert by_row["3"]["outputs"] == {"company": "company 3", "score": "0.75000000000000000000"}
    assert by_row["45"]["attemptCount"] == 1


def test_a_failing_query_fails_its_run_only(runs: Runs, postgres: str, leads: str) -> None:
    secret(runs, "db", postgres)
    secret(runs, "away", f"postgresql://nobody@127.0.0.1:{_free_port()}/nothing")
    runs.create("bad-sql", postgres_run("bad-sql", f"selct * from {leads}"))
    runs.create("no-table", postgres_run("no-table", "select 1 as row_id from no_such_table"))
    runs.create("away", postgres_run("away", "select 1 as row_id", secret_name="away"))
    runs.create("no-secret", postgres_run("no-secret", "select 1 as row_id", secret_name="nope"))
    runs.create("good", postgres_run("good", f"select id as row_id, company from {leads}"))
    expected = {
        "bad-sql": ("ItemsQueryFailed", 'syntax error at or near "selct"'),
        "no-table": ("ItemsQueryFailed", 'relation "no_such_table" does not exist'),
        "away": ("ItemsSourceUnreachable", "Connection refused"),
        "no-secret": ("SecretNotFound", 'secrets "nope" not found (spec.itemsFrom.postgres.secretRef)'),
    }
    for name, (reason, message) in expected.items():
        status = runs.wait_phase(name, timeout=240)
        assert status["phase"] == "failed", name
        failed = {c["type"]: c for c in status["conditions"]}["Failed"]
        assert (failed["status"], failed["reason"]) == ("True", reason), name
        assert message in failed["message"], (name, failed["message"])
        # The Event follows the status write.
        wait_for(
            functools.partial(has_event, runs, name, reason, message),
            timeout=30,
            what=f"a {reason} Event on run {name}",
        )
        assert runs.shards(name) == []
    assert runs.wait_phase("good", timeout=240)["itemsSucceeded"] == 45


def test_items_from_a_url(runs: Runs) -> None:
    jsonl = "\n".join(json.dumps({"rowId": f"j{i}", "inputs": {"i": i}}) for i in range(25)).encode()
    files = {
        "/rows.jsonl": (200, jsonl),
        "/export": (200, b'rowId,company\r\nc1,"Acme, Inc."\r\nc2,Globex\r\n'),
        "/broken.jsonl": (200, b'{"inputs": {}}\n{"inputs": oops}\n'),
    }
    with FileServer(files) as server:
        runs.create(
            "url-jsonl", {"itemsFrom": {"url": {"url": f"{server.url}/rows.jsonl"}}, "producer": ECHO}
        )
        runs.create(
            "url-csv",
            {"itemsFrom": {"url": {"url": f"{server.url}/export", "format": "csv"}}, "producer": ECHO},
        )
        runs.create("url-404", {"itemsFrom": {"url": {"url": f"{server.url}/gone.csv"}}, "producer": ECHO})
        runs.create(
            "url-broken", {"itemsFrom": {"url": {"url": f"{server.url}/broken.jsonl"}}, "producer": ECHO}
        )
        assert runs.wait_phase("url-jsonl", timeout=240)["itemsSucceeded"] == 25
        assert runs.wait_phase("url-csv", timeout=240)["itemsSucceeded"] == 2
        missing = runs.wait_phase("url-404", timeout=240)
        broken = runs.wait_phase("url-broken", timeout=240)
    csv_items = {i["rowId"]: i for i in runs.items("url-csv").values()}
    assert csv_items["c1"]["outputs"] == {"company": "Acme, Inc."}
    assert missing["phase"] == "failed"
    assert "404 Not Found: no such file" in missing["message"]
    assert {c["type"]: c for c in missing["conditions"]}["Failed"]["reason"] == "ItemsSourceNotFound"
    assert broken["phase"] == "failed"
    assert "broken.jsonl line 2: not valid JSON" in broken["message"]


def test_refused_past_the_ceiling_without_an_item_store(runs: Runs, postgres: str) -> None:
    secret(runs, "db", postgres)
    runs.create("too-many", postgres_run("too-many", "select i as row_id from generate_series(1, 100001) i"))
    status = runs.wait_phase("too-many", timeout=240)
    assert status["phase"] == "failed"
    failed = {c["type"]: c for c in status["conditions"]}["Failed"]
    assert failed["reason"] == "ItemStoreRequired"
    assert "more than 100000 items" in failed["message"] and "--item-store" in failed["message"]
