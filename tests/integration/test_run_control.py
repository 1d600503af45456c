"""Run control: pause, resume, cancel, retry only the failed items — from kubectl patch and from
re-applied manifests — and operator restarts that lose and double-count nothing."""

from __future__ import annotations

import functools
import json
import signal
import time
from collections import Counter
from typing import Any

import pytest

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, Reply, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster


def manifest(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "oxygen.dev/v1alpha1", "kind": "Run", "metadata": {"name": name}, "spec": spec}
    )


def http_spec(url: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(n)],
        "producer": {"provider": "slow", "http": {"url": url}},
        **extra,
    }


def succeeded(runs: Runs, name: str) -> int:
    return int(runs.status(name).get("itemsSucceeded", 0))


def test_pause_and_resume_with_kubectl_patch(runs: Runs, cluster: LocalCluster) -> None:
    with Provider(with_latency(0.04, echo())) as provider:
        runs.create("pausable", http_spec(provider.url, 200, batchSize=50, parallelism=2))
        wait_for(lambda: succeeded(runs, "pausable") >= 60, timeout=120, what="30% progress")
        cluster.controlplane.kubectl(
            "patch", "run", "pausable", "-n", runs.ns, "--type=merge", "-p", '{"spec": {"paused": true}}'
        )
        t0 = time.monotonic()
        runs.wait_phase("pausable", "paused", timeout=30)
        took = time.monotonic() - t0
        assert took < 15, f"pausing took {took:.1f}s"
        assert [p.metadata.name for p in runs.pods("pausable") if p.status.phase == "Running"] == []
        calls_at_pause = len(provider.calls)
        time.sleep(3)
        assert len(provider.calls) == calls_at_pause, "the provider was called while paused"
        status = runs.status("pausable")
        assert status["phase"] == "paused"
        assert status["itemsSucceeded"] < 200
        assert all(j.spec.suspend for j in runs.jobs("pausable") if not _done(j))
        cluster.controlplane.kubectl(
            "patch", "run", "pausable", "-n", runs.ns, "--type=merge", "-p", '{"spec": {"paused": false}}'
        )
        final = runs.wait_phase("pausable", timeout=120)
        successes = Counter(c.item_id for c in provider.successful_calls())
    assert final["phase"] == "succeeded"
    assert final["itemsSucceeded"] == 200
    assert len(successes) == 200, "an item was executed twice"
    assert max(successes.values()) == 1, "an item was executed twice"
    reasons = [e.reason for e in runs.events("pausable")]
    assert "Paused" in reasons
    assert "Resumed" in reasons


def test_pause_resume_and_cancel_by_reapplying_the_manifest(runs: Runs, cluster: LocalCluster) -> None:
    def apply(spec: dict[str, Any]) -> None:
        cluster.controlplane.kubectl("apply", "-n", runs.ns, "-f", "-", input=manifest("gitops", spec))

    with Provider(with_latency(0.04, echo())) as provider:
        spec = http_spec(provider.url, 200, batchSize=25, parallelism=2)
        apply(spec)
        wait_for(lambda: succeeded(runs, "gitops") >= 40, timeout=120, what="progress")
        apply({**spec, "paused": True})
        runs.wait_phase("gitops", "paused", timeout=30)
        apply({**spec, "paused": False})
        runs.wait_phase("gitops", "running", timeout=30)
        wait_for(lambda: succeeded(runs, "gitops") >= 100, timeout=120, what="50% progress")
        apply({**spec, "cancel": True})
        status = runs.wait_phase("gitops", "canceled", timeout=60)
        calls_at_cancel = len(provider.calls)
        time.sleep(2)
        assert len(provider.calls) == calls_at_cancel, "the provider was called after cancel"
    assert runs.jobs("gitops") == []
    assert runs.pods("gitops") == []
    assert status["finishedAt"]
    assert status["itemsSucceeded"] + status["itemsFailed"] + status["itemsSkipped"] == 200
    assert status["itemsSkipped"] > 0
    assert status["itemsPending"] == status["itemsRunning"] == 0
    items = runs.items("gitops")
    assert len(items) == 200
    assert Counter(i["status"] for i in items.values())["skipped"] == status["itemsSkipped"]
    # Cancel is terminal: the API server refuses to undo it.
    undo = cluster.controlplane.kubectl(
        "apply", "-n", runs.ns, "-f", "-", check=False, input=manifest("gitops", {**spec, "cancel": False})
    )
    assert undo.returncode != 0
    assert "cancel cannot be undone" in undo.stderr


def test_retry_failed_reexecutes_only_the_failed_items(runs: Runs, cluster: LocalCluster) -> None:
    failing = {f"{i}" for i in range(0, 30, 3)}  # 10 of 30 items

    def picky(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        if item_id in failing:
            return Reply(status=400, body={"error": "unknown company"})
        return Reply(body=body["item"]["inputs"])

    with Provider(picky) as provider:
        spec = http_spec(provider.url, 30, batchSize=10)
        runs.create("retry", spec)
        first = runs.wait_phase("retry", timeout=120)
        assert (first["phase"], first["itemsSucceeded"], first["itemsFailed"]) == ("completed", 20, 10)
        before = len(provider.calls)
        provider.behaviour = echo()
        cluster.controlplane.kubectl(
            "apply", "-n", runs.ns, "-f", "-", input=manifest("retry", {**spec, "retryFailed": 1})
        )
        wait_for(
            lambda: runs.status("retry").get("observedRetryFailed") == 1, timeout=30, what="retry started"
        )
        final = runs.wait_phase("retry", "succeeded", "completed", timeout=120)
        again = provider.calls[before:]
    assert final["phase"] == "succeeded"
    assert final["itemsSucceeded"] == 30
    assert final["itemsFailed"] == 0
    assert sorted(c.item_id for c in again) == sorted(failing), "only the failed items were re-executed"
    items = runs.items("retry")
    for item_id in failing:
        assert items[item_id]["attemptCount"] == 2
        assert items[item_id]["status"] == "succeeded"
    assert all(items[i]["attemptCount"] == 1 for i in items if i not in failing)
    assert len(runs.shards("retry")) == 3 + 1
    assert len(runs.jobs("retry")) == 4
    # A second bump with nothing failed is a no-op that says so.
    runs.patch("retry", {"retryFailed": 2})
    wait_for(
        lambda: any(e.reason == "NothingToRetry" for e in runs.events("retry")),
        timeout=30,
        what="a NothingToRetry event",
    )
    assert runs.status("retry")["phase"] == "succeeded"
    assert len(runs.shards("retry")) == 4


@pytest.mark.slow
def test_operator_sigkilled_three_times_loses_and_double_counts_nothing(
    runs: Runs, operator: OperatorProcess
) -> None:
    def reached(target: int) -> bool:
        return succeeded(runs, "survivor") >= target

    with Provider(with_latency(0.01, echo())) as provider:
        runs.create("survivor", http_spec(provider.url, 2000, batchSize=100, parallelism=4))
        for target in (300, 900, 1500):
            wait_for(
                functools.partial(reached, target),
                timeout=180,
                what=f"{target} items",
            )
            operator.kill(signal.SIGKILL)
            time.sleep(1.0)
            operator.start()
        final = runs.wait_phase("survivor", timeout=300)
        successes = Counter(c.item_id for c in provider.successful_calls())
    assert final["phase"] == "succeeded"
    assert (final["itemsTotal"], final["itemsSucceeded"], final["itemsFailed"]) == (2000, 2000, 0)
    assert len(successes) == 2000, "an item was executed twice"
    assert max(successes.values()) == 1, "an item was executed twice"
    shards = runs.shards("survivor")
    jobs = runs.jobs("survivor")
    assert len(shards) == 20
    assert len({s["metadata"]["name"] for s in shards}) == 20
    assert sorted(j.metadata.name for j in jobs) == sorted(s["metadata"]["name"] for s in shards)
    assert sum(s["status"]["summary"]["succeeded"] for s in shards) == 2000


def _done(job: Any) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in (job.status.conditions or []))
