"""kube-apiserver killed mid-run and back 18 s later: the workers ride it out, the run finishes, and no
item is called twice (issue 19, finding 4)."""

from __future__ import annotations

import time
from collections import Counter
from itertools import pairwise
from typing import Any

import pytest

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.loopback import LoopbackProvider
from tests.support.runs import Runs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ITEMS = 3000
DOWN_SECONDS = 18.0


def test_workers_ride_out_an_api_server_outage(runs: Runs, cluster: LocalCluster) -> None:
    if cluster.controlplane.pids.get("kube-apiserver") is None:
        pytest.skip("the API server of an attached cluster is not ours to restart")
    with LoopbackProvider(latency=0.2) as provider:
        runs.create(
            "outage",
            {
                "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(ITEMS)],
                "producer": {
                    "provider": "slowish",
                    "concurrency": 4,
                    "http": {"url": provider.url, "timeoutSeconds": 10},
                },
                "batchSize": 500,
                "parallelism": 3,
            },
        )
        wait_for(lambda: len(provider.calls) >= 400, timeout=180, what="the run to be calling")
        at_outage = len(provider.calls)
        cluster.controlplane.restart_apiserver(DOWN_SECONDS)
        back = time.monotonic()
        during = len(provider.calls) - at_outage
        status = runs.wait_phase("outage", timeout=400)
        stall = time.monotonic() - back
        calls = provider.calls
        items: dict[str, dict[str, Any]] = runs.items("outage")
    times = sorted(c.at for c in calls)
    pause = max(b - a for a, b in pairwise(times))
    print(
        f"\ncalls while the API server was away: {during}; run finished {stall:.0f}s after it was back; "
        f"longest pause between two calls: {pause:.1f}s"
    )
    assert status["phase"] == "succeeded", status
    assert status["itemsSucceeded"] == ITEMS, status
    assert during > 0, "the workers stopped calling while the API server was away"
    per_item = Counter(c.item_id for c in calls)
    assert len(items) == ITEMS and set(per_item) == set(items), "an item was lost"
    for item_id, item in items.items():
        assert item["status"] == "succeeded", item
        assert per_item[item_id] == item["attemptCount"], (item_id, per_item[item_id], item)
    assert set(per_item.values()) == {1}, "a succeeded item was called again"
