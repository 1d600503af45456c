"""Runs with the PostgreSQL item store, against the real control plane and a real PostgreSQL: the items
and results are rows, RunShards carry a range and a summary, the Run keeps its shape."""

from __future__ import annotations

import json

import pytest

from tests.support.item_store import StoreRuns

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
