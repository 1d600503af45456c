"""Runs with the PostgreSQL item store, against the real control plane and a real PostgreSQL: the items
and results are rows, RunShards carry a range and a summary, the Run keeps its shape."""

from __future__ import annotations

import functools
import json
import signal
import time
import uuid
from collections import Counter
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from kubernetes.client.rest import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster.wait import wait_for
from oxygen.execution.jobs import item_store_secret
from oxygen.itemstore.store import worker_role
from tests.integration.test_credits import account, settled
from tests.support.item_store import StoreRuns
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, Reply, echo, with_credits, with_latency

pytestmark = pytest.mark.cluster

ECHO = {"provider": "echo", "builtin": "echo"}


def test_a_small_run_keeps_its_items_as_rows(store_runs: StoreRuns) -> None:
    items = [{"rowId": f"r-{i}", "inputs": {"n": i}} for i in range(120)]
    store_runs.create("small", {"items": items, "producer": ECHO, "batchSize": 50, "parallelism": 2})
    status = store_runs.wait_phase("small", timeout=180)
    assert status["phase"] == "succeeded", status
    assert (status["itemsTotal"], status["itemsSucceeded"]) == (120, 120)
    shards = store_runs.shards("small")
    assert [s["spec"]["range"] for s in shards] == [
        {"start": 0, "end": 50},
        {"start": 50, "end": 100},
        {"start": 100, "end": 120},
    ]
    for shard in shards:
        assert not shard["spec"].get("items")
        assert not shard["status"].get("items")
        span = shard["spec"]["range"]
        assert shard["status"]["summary"]["succeeded"] == span["end"] - span["start"]
    rows = store_runs.items("small")
    assert len(rows) == 120
    assert all(r["status"] == "succeeded" and r["attemptCount"] == 1 for r in rows.values())
    assert rows["7"]["outputs"] == {"n": 7} and rows["7"]["rowId"] == "r-7"
    assert len(json.dumps(store_runs.get("small"))) < 64 * 1024


@pytest.mark.slow
def test_twenty_thousand_items_keep_the_run_and_every_shard_small(store_runs: StoreRuns) -> None:
    """Acceptance 1, lean: 20,000 items from a ConfigMap → succeeded, every row succeeded at attempt 1."""
    store_runs.create_from_rows("twenty", 20_000, batchSize=2000, parallelism=4)
    status = store_runs.wait_phase("twenty", timeout=400)
    assert status["phase"] == "succeeded", status
    assert (status["itemsTotal"], status["itemsSucceeded"]) == (20_000, 20_000)
    assert len(json.dumps(store_runs.get("twenty"))) < 64 * 1024
    shards = store_runs.shards("twenty")
    assert len(shards) == 10
    assert max(len(json.dumps(s)) for s in shards) < 64 * 1024
    uid = store_runs.uid("twenty")
    assert store_runs.store.counts(uid) == {"succeeded": 20_000}
    with psycopg.connect(store_runs.dsn) as conn:
        attempts = conn.execute(
            "select min(attempt_count), max(attempt_count), count(distinct item_id) from oxygen.items"
            " where run_uid = %s",
            (uid,),
        ).fetchone()
    assert attempts == (1, 1, 20_000)


def test_failed_items_are_sampled_and_a_deleted_run_leaves_no_rows_nor_role(store_runs: StoreRuns) -> None:
    items = [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(30)]

    def picky(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        if item_id.endswith("5"):
            return Reply(status=400, body={"error": "unknown company"})
        return Reply(body=body["item"]["inputs"])

    with Provider(picky) as provider:
        producer = {"provider": "p", "http": {"url": provider.url}}
        store_runs.create("doomed", {"items": items, "producer": producer, "batchSize": 10})
        status = store_runs.wait_phase("doomed", timeout=180)
    assert (status["phase"], status["itemsSucceeded"], status["itemsFailed"]) == ("completed", 27, 3)
    assert sorted(f["id"] for f in status["failedItems"]) == ["15", "25", "5"]
    uid = store_runs.uid("doomed")
    secret = store_runs.core.read_namespaced_secret(item_store_secret("doomed"), store_runs.ns)
    assert [o.uid for o in secret.metadata.owner_references] == [uid]
    with psycopg.connect(store_runs.dsn) as conn:
        assert conn.execute("select 1 from pg_roles where rolname = %s", (worker_role(uid),)).fetchone()
    assert store_runs.row_count(uid) == 30
    store_runs.custom.delete_namespaced_custom_object(GROUP, VERSION, store_runs.ns, "runs", "doomed")
    wait_for(lambda: not _exists(store_runs, "doomed"), timeout=60, what="the run to go")
    assert store_runs.row_count(uid) == 0
    with psycopg.connect(store_runs.dsn) as conn:
        assert (
            conn.execute("select 1 from pg_roles where rolname = %s", (worker_role(uid),)).fetchone() is None
        )


def _secret(name: str, owner_uid: str | None) -> dict[str, Any]:
    owners = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Run", "name": "again", "uid": owner_uid}]
    return {
        "metadata": {"name": name, **({"ownerReferences": owners} if owner_uid else {})},
        "stringData": {"dsn": "postgresql://nobody@127.0.0.1:1/gone"},
    }


def test_a_namesakes_worker_secret_is_waited_for_never_borrowed(store_runs: StoreRuns) -> None:
    """A deleted Run's worker Secret still there (garbage collection pending) names a role that is gone:
    the new Run of that name waits for it to go; a Secret of that name that no Run owns fails the Run."""
    name = item_store_secret("again")
    store_runs.core.create_namespaced_secret(store_runs.ns, _secret(name, str(uuid.uuid4())))
    items = [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(20)]
    store_runs.create("again", {"items": items, "producer": ECHO, "batchSize": 10})
    status = store_runs.wait_phase("again", timeout=180)
    assert (status["phase"], status["itemsSucceeded"]) == ("succeeded", 20), status
    secret = store_runs.core.read_namespaced_secret(name, store_runs.ns)
    assert [o.uid for o in secret.metadata.owner_references] == [store_runs.uid("again")]

    store_runs.core.create_namespaced_secret(store_runs.ns, _secret(item_store_secret("squatted"), None))
    store_runs.create("squatted", {"items": items, "producer": ECHO, "batchSize": 10})
    status = store_runs.wait_phase("squatted", timeout=120)
    assert status["phase"] == "failed", status
    assert "WorkerIdentityConflict" in json.dumps(status["conditions"]), status


def _exists(runs: StoreRuns, name: str) -> bool:
    try:
        runs.get(name)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


@pytest.mark.slow
def test_operator_sigkilled_four_times_loses_and_doubles_nothing_with_exact_credits(
    store_runs: StoreRuns, store_operator: OperatorProcess
) -> None:
    """Acceptance 3, lean: 3,000 metered items, the operator SIGKILLed four times mid-run."""
    account(store_runs, grants=[{"id": "g", "amount": "10000"}])

    def reached(target: int) -> bool:
        return int(store_runs.status("kills").get("itemsSucceeded", 0)) >= target

    with Provider(with_latency(0.05, with_credits("0.5", echo()))) as provider:
        items = [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(3000)]
        producer = {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1", "concurrency": 2}
        store_runs.create("kills", {"items": items, "batchSize": 250, "parallelism": 4, "producer": producer})
        for target in (400, 1000, 1600, 2200):
            wait_for(functools.partial(reached, target), timeout=180, what=f"{target} items")
            store_operator.kill(signal.SIGKILL)
            time.sleep(1.0)
            store_operator.start()
        final = store_runs.wait_phase("kills", timeout=300)
        successes = Counter(c.item_id for c in provider.successful_calls())
    assert final["phase"] == "succeeded", final
    assert (final["itemsTotal"], final["itemsSucceeded"], final["itemsFailed"]) == (3000, 3000, 0)
    assert len(successes) == 3000 and max(successes.values()) == 1, "an item was called twice"
    assert final["creditsUsed"] == "1500"
    settled(store_runs, {"captured": "1500", "reserved": "0", "available": "8500"})
    uid = store_runs.uid("kills")
    with psycopg.connect(store_runs.dsn) as conn:
        row = conn.execute(
            "select count(*), sum(credits_used), max(attempt_count) from oxygen.items"
            " where run_uid = %s and status = 'succeeded' and superseded_by is null",
            (uid,),
        ).fetchone()
    assert row == (3000, Decimal("1500"), 1)
    assert len(store_runs.shards("kills")) == 12
