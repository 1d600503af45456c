"""A worker writes only to the RunShard it was started for: a Run deleted mid-flight and re-created at
once under the same name gets shards of the same names, and the old run's dying workers must not
write their results into them (issue 19, finding 5)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import ANNOTATION_RATE_SHARE
from oxygen.api.run import Producer, Retry
from oxygen.api.runshard import ItemResult, RunShardSpec, RunShardStatus, ShardItem
from oxygen.devcluster.wait import wait_for
from oxygen.execution.pod import ShardClient, ShardReplaced
from oxygen.kube.client import Kube
from tests.support.loopback import LoopbackProvider
from tests.support.provider import Reply
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


class SlowingOld:
    """Echo; once `slow` is set, the first run's calls take 3 s: its dying workers then hold results
    to write (well within their 5 s stop grace) while the new run's shards of the same names appear."""

    def __init__(self) -> None:
        self.slow = False

    def __call__(self, item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        inputs = body["item"]["inputs"]
        return Reply(body=inputs, delay=3.0 if self.slow and inputs["generation"] == 1 else 0.0)


def test_a_run_recreated_under_the_same_name_gets_none_of_the_old_runs_results(runs: Runs) -> None:
    behaviour = SlowingOld()
    with LoopbackProvider(latency=0.1, behaviour=behaviour) as provider:
        old = runs.create("same", spec(provider.url, 1))
        wait_for(
            lambda: int(runs.status("same").get("itemsSucceeded", 0)) >= 100,
            timeout=120,
            what="the first run to make progress",
        )
        behaviour.slow = True
        slow_from = provider.started
        # Every slot of the 4 old workers (8 each) now waits on a slow call.
        wait_for(lambda: provider.started >= slow_from + 32, timeout=30, what="32 slow calls")
        runs.custom.delete_namespaced_custom_object(GROUP, VERSION, runs.ns, "runs", "same")
        new = wait_for(
            lambda: _create_again(runs, provider.url), timeout=60, what="the name to be free again"
        )
        assert new["metadata"]["uid"] != old["metadata"]["uid"]
        status = runs.wait_phase("same", timeout=300)
        calls = provider.calls
    assert status["phase"] == "succeeded", status
    assert status["itemsSucceeded"] == N, status
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


def test_a_status_write_never_lands_in_a_namesake_shard(api: Any, namespace: str, crds: None) -> None:
    """The same race, made deterministic: the worker's shard is replaced between two of its writes."""
    kube = Kube(api)

    def create() -> dict[str, Any]:
        spec = RunShardSpec(
            run_name="same",
            run_uid="run-uid",
            round=0,
            index=0,
            producer=Producer(provider="p", builtin="echo"),
            retry=Retry(),
            items=[ShardItem(id="0", inputs={})],
        )
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RunShard",
            "metadata": {"name": "same-r0-0"},
            "spec": spec.wire(),
        }
        created: dict[str, Any] = kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "runshards", body
        )
        return created

    first = create()
    worker = ShardClient(kube, namespace, "same-r0-0", uid=first["metadata"]["uid"])
    worker.get()
    done = RunShardStatus(items=[ItemResult(id="0", status="succeeded", attempt_count=1, outputs={"old": 1})])
    worker.patch_status(done)
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "runshards", "same-r0-0")
    second = create()

    with pytest.raises(ShardReplaced):
        worker.patch_status(done)
    assert (kube.get("runshards", namespace, "same-r0-0").get("status") or {}).get("items") is None
    # A pod started for the old shard refuses the namesake from its first read.
    with pytest.raises(ShardReplaced):
        ShardClient(kube, namespace, "same-r0-0", uid=first["metadata"]["uid"]).get()

    # Why the resourceVersion: the API server does not check a status patch's metadata.uid (the status
    # strategy keeps the stored metadata), so a uid alone would not have stopped the write.
    kube.custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "runshards",
        "same-r0-0",
        {"metadata": {"uid": first["metadata"]["uid"]}, "status": {"message": "uid only"}},
    )
    replaced = kube.get("runshards", namespace, "same-r0-0")
    assert replaced["metadata"]["uid"] == second["metadata"]["uid"]
    assert replaced["status"]["message"] == "uid only"


def test_the_rate_share_is_read_as_metadata_of_the_workers_own_shard(
    api: Any, namespace: str, crds: None
) -> None:
    """The worker polls its share every second: the real API server answers a metadata-only read."""
    kube = Kube(api)
    share = '{"rps": 2, "burst": 2, "epoch": 3}'

    def create() -> dict[str, Any]:
        spec = RunShardSpec(
            run_name="shared",
            run_uid="run-uid",
            round=0,
            index=0,
            producer=Producer(provider="p", builtin="echo"),
            retry=Retry(),
            items=[ShardItem(id=str(i), inputs={"pad": "x" * 1000}) for i in range(100)],
        )
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RunShard",
            "metadata": {"name": "shared-r0-0", "annotations": {ANNOTATION_RATE_SHARE: share}},
            "spec": spec.wire(),
        }
        created: dict[str, Any] = kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "runshards", body
        )
        return created

    first = create()
    meta = kube.get_metadata("runshards", namespace, "shared-r0-0")
    assert meta["uid"] == first["metadata"]["uid"]
    assert "spec" not in meta and len(json.dumps(meta)) < 2000
    worker = ShardClient(kube, namespace, "shared-r0-0", uid=first["metadata"]["uid"])
    assert worker.rate_share() == share
    kube.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "runshards", "shared-r0-0")
    create()
    # A namesake's share belongs to another run: the worker keeps the one it has.
    assert worker.rate_share() is None
