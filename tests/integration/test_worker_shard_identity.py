"""A worker writes only to the RunShard it was started for: a Run deleted mid-flight and re-created at
once under the same name gets shards of the same names, and the old run's dying workers must not
write their results into them (issue 19, finding 5)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster.wait import wait_for
from tests.support.loopback import LoopbackProvider
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

N = 1000


def spec(url: str, generation: int) -> dict[str, Any]:
    return {
        "items": [{"rowId": f"r{i}", "inputs": {"i": i, "generation": generation}} for i in range(N)],
        "producer": {"provider": "p", "concurrency": 8, "http": {"url": url}},
        "batchSize": 250,
        "parallelism": 4,
    }


def test_a_run_recreated_under_the_same_name_gets_none_of_the_old_runs_results(runs: Runs) -> None:
    with LoopbackProvider(latency=0.1) as provider:
        old = runs.create("same", spec(provider.url, 1))
        wait_for(
            lambda: int(runs.status("same").get("itemsSucceeded", 0)) >= 100,
            timeout=120,
            what="the first run to make progress",
        )
        runs.custom.delete_namespaced_custom_object(GROUP, VERSION, runs.ns, "runs", "same")
        new = wait_for(
            lambda: _create_again(runs, provider.url), timeout=60, what="the name to be free again"
        )
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        status = runs.wait_phase("same", timeout=300)
        calls = provider.calls
    assert status["phase"] == "succeeded" and status["itemsSucceeded"] == N, status
    new_uid = new["metadata"]["uid"]
    called = Counter(c.item_id for c in calls if c.idempotency_key == f"{new_uid}/{c.item_id}")
    assert len(called) == N, f"{N - len(called)} items of the new run were never called"
    items = runs.items("same")
    assert len(items) == N
    for item in items.values():
        assert item["status"] == "succeeded"
        assert item["outputs"]["generation"] == 2, f"an old run's result crossed into the new one: {item}"
    for shard in runs.shards("same"):
        assert shard["metadata"]["ownerReferences"][0]["uid"] == new_uid


def _create_again(runs: Runs, url: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return runs.create("same", spec(url, 2))
    except ApiException as exc:
        if exc.status == 409:  # the old Run is still being deleted
            return None
        raise
