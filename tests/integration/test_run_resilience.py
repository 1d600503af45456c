"""Run core at its edges: a killed worker pod, a 10,000-item run, invalid manifests."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.provider import Provider, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster


@pytest.mark.slow
def test_worker_pod_killed_mid_shard_is_replaced_and_resumes(runs: Runs) -> None:
    with Provider(with_latency(0.05, echo())) as provider:
        runs.create(
            "killed",
            {
                "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(80)],
                "batchSize": 80,
                # One call at a time: the pod is still mid-shard when the test deletes it.
                "producer": {"provider": "p", "concurrency": 1, "http": {"url": provider.url}},
            },
        )

        def progressed() -> bool:
            shards = runs.shards("killed")
            return (
                bool(shards) and (shards[0].get("status") or {}).get("summary", {}).get("succeeded", 0) >= 20
            )

        wait_for(progressed, timeout=90, what="the shard to record 20 succeeded items")
        pods = [p for p in runs.pods("killed") if p.status.phase == "Running"]
        assert len(pods) == 1
        killed_uid = pods[0].metadata.uid
        runs.core.delete_namespaced_pod(pods[0].metadata.name, runs.ns)
        status = runs.wait_phase("killed", timeout=120)
        successes = [c.item_id for c in provider.successful_calls()]
    assert status["phase"] == "succeeded"
    assert status["itemsSucceeded"] == 80
    assert len(successes) == len(set(successes)) == 80, "a succeeded item was called twice"
    uids = {p.metadata.uid for p in runs.pods("killed")}
    assert uids, "the Job replaced the deleted pod"
    assert killed_uid not in uids, "the Job replaced the deleted pod"


@pytest.mark.slow
def test_ten_thousand_items_keep_the_run_small(runs: Runs, api: client.ApiClient) -> None:
    runs.create_from_rows("big", 10_000, batchSize=1000, parallelism=4)
    status = runs.wait_phase("big", timeout=300)
    assert status["phase"] == "succeeded"
    assert status["itemsSucceeded"] == 10_000
    size = len(json.dumps(runs.get("big")))
    assert size < 64 * 1024, f"the Run object is {size} bytes"
    biggest = max(len(json.dumps(s)) for s in runs.shards("big"))
    assert biggest < 1024 * 1024, f"a RunShard is {biggest} bytes"


INVALID = {
    "batchSize: 0": "spec.batchSize",
    "parallelism: 0": "spec.parallelism",
    "mode: sometimes": 'Unsupported value: "sometimes"',
}


def manifest(
    extra: str,
    items: str = "items: [{inputs: {a: 1}}]",
    producer: str = "producer: {provider: p, builtin: echo}",
) -> str:
    return (
        f"apiVersion: oxygen.dev/v1alpha1\nkind: Run\nmetadata: {{name: bad}}\nspec:\n"
        f"  {items}\n  {producer}\n  {extra}\n"
    )


def test_invalid_manifests_are_rejected_by_the_api_server(cluster: LocalCluster, runs: Runs) -> None:
    def apply(text: str) -> subprocess.CompletedProcess[str]:
        return cluster.controlplane.kubectl("apply", "-n", runs.ns, "-f", "-", input=text, check=False)

    for extra, message in INVALID.items():
        result = apply(manifest(extra))
        assert result.returncode != 0, (extra, result.stderr)
        assert message in result.stderr, (extra, result.stderr)
    both = apply(manifest("itemsFrom: {configMapKeyRef: {name: a, key: b}}"))
    assert "exactly one of items or itemsFrom" in both.stderr
    neither = apply(manifest("", items="table: t"))
    assert "exactly one of items or itemsFrom" in neither.stderr
    two_producers = apply(manifest("", producer="producer: {provider: p, builtin: echo, command: [x]}"))
    assert "exactly one of providerRef, http, builtin, command or waterfall" in two_producers.stderr
    no_producer = apply(manifest("", producer="table: t"))
    assert "a column run needs a producer" in no_producer.stderr
    no_workflow = apply(manifest("kind: workflow", items="table: t", producer="inputs: {a: 1}"))
    assert "a workflow run needs workflowRef" in no_workflow.stderr
    no_ingestion = apply(manifest("kind: ingestion", items="table: t", producer="inputs: {a: 1}"))
    assert "an ingestion run needs ingestion" in no_ingestion.stderr
    bad_credits = apply(manifest("", producer="producer: {provider: p, builtin: echo, costPerItem: 'one'}"))
    assert "spec.producer.costPerItem" in bad_credits.stderr
    assert runs.custom.list_namespaced_custom_object("oxygen.dev", "v1alpha1", runs.ns, "runs")["items"] == []
