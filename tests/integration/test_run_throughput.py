"""Throughput: many calls of one shard in flight (spec.producer.concurrency), with the per-item
contract unchanged: exact attempts, no extra calls, pause without new calls, a kill that loses nothing."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.integration.test_run_providers import KINDS, dispatch
from tests.support.loopback import LoopbackProvider
from tests.support.provider import Behaviour, Provider, Reply, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

STOP_LINE = "stop observed: no call starts from now"


def rows(n: int) -> list[dict[str, Any]]:
    return [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(n)]


def http_producer(url: str, concurrency: int) -> dict[str, Any]:
    return {"provider": "fast", "concurrency": concurrency, "http": {"url": url, "timeoutSeconds": 10}}


def test_two_shards_of_fifty_keep_up_to_a_hundred_calls_in_flight(runs: Runs) -> None:
    with LoopbackProvider(latency=0.1) as provider:
        runs.create(
            "wide",
            {
                "items": rows(2000),
                "producer": http_producer(provider.url, 50),
                "batchSize": 1000,
                "parallelism": 2,
            },
        )
        status = runs.wait_phase("wide", timeout=300)
        calls = provider.calls
        peak = provider.peak_in_flight
    assert status["phase"] == "succeeded", status
    assert status["itemsSucceeded"] == 2000, status
    per_item = Counter(c.item_id for c in calls)
    assert len(per_item) == 2000
    assert set(per_item.values()) == {1}, "an item was called twice"
    assert all(item["attemptCount"] == 1 for item in runs.items("wide").values())
    assert peak <= 100, f"the provider saw {peak} calls in flight, over parallelism x concurrency"
    assert peak >= 80, f"the provider saw at most {peak} calls in flight: the shards did not fan out"


def slow_failures_after_the_429() -> Behaviour:
    """The providers' dispatch, but the 503s of `flaky` and `down` take 0.5 s: their 0.2 s backoff then
    ends after the 429 reached the worker however late the busy machine starts a call, so the test
    checks the shard's gate, not which reply happened to arrive first."""
    inner = dispatch()
    slow = with_latency(0.5, inner)

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        kind = body["item"]["inputs"]["kind"]
        return slow(item_id, attempt, body) if kind in ("flaky", "down") else inner(item_id, attempt, body)

    return behaviour


def test_retry_acceptance_holds_with_32_in_flight(runs: Runs) -> None:
    # The rate-limited rows first: their calls start before any other.
    order = ["limited"] + [k for k in KINDS if k != "limited"]
    items = [
        {"rowId": f"{kind}-{i}", "inputs": {"kind": kind, "i": i}}
        for kind in order
        for i in range(KINDS[kind])
    ]
    with Provider(slow_failures_after_the_429()) as provider:
        created = runs.create(
            "retries32",
            {
                "items": items,
                "producer": {
                    "provider": "clearbit",
                    "costPerItem": "1",
                    "concurrency": 32,
                    "http": {"url": provider.url, "timeoutSeconds": 5},
                },
                # One shard: all 22 items are in flight together.
                "batchSize": 100,
                "parallelism": 1,
                "retry": {"maxAttempts": 3, "backoffSeconds": 0.2},
            },
        )
        status = runs.wait_phase("retries32", timeout=180)
        calls = provider.calls
    assert status["phase"] == "completed", status
    assert (status["itemsTotal"], status["itemsSucceeded"], status["itemsFailed"]) == (22, 17, 5)
    assert status["creditsUsed"] == "17"
    expected_attempts = {"ok": 1, "flaky": 2, "bad": 1, "down": 3, "limited": 2}
    found = {i["rowId"]: i for i in runs.items("retries32").values()}
    assert len(found) == 22
    for row_id, item in found.items():
        kind = row_id.split("-")[0]
        assert item["attemptCount"] == expected_attempts[kind], (row_id, item)
        assert len([c for c in calls if c.row_id == row_id]) == expected_attempts[kind], row_id
    assert len(calls) == sum(expected_attempts[k] * n for k, n in KINDS.items()), "extra calls"
    for i in range(2):
        first, second = sorted((c for c in calls if c.row_id == f"limited-{i}"), key=lambda c: c.at)
        assert second.at - first.at >= 0.95, "Retry-After: 1 was not honoured"
    # The 429 slows the whole shard: no retry of any item (flaky and down back off only 0.2 s on
    # their own) starts within the Retry-After of the first 429.
    first_429 = min(c.at for c in calls if c.status == 429)
    retries = [c for c in calls if c.attempt >= 2]
    assert retries
    assert all(c.at - first_429 >= 0.95 for c in retries), "a retry ignored the shard's gate"
    uid = created["metadata"]["uid"]
    assert all(c.idempotency_key == f"{uid}/{c.item_id}" for c in calls)


def worker_logs(cluster: LocalCluster, namespace: str) -> list[str]:
    return [
        p.read_text(errors="replace")
        for p in (cluster.workdir / "node" / "pods").glob(f"{namespace}_*/*.log")
    ]


def worker_pids(namespace: str) -> list[int]:
    """Worker processes of this namespace's pods (the local node agent runs them on this machine)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in argv and b"--shard" in argv and f"OXYGEN_NAMESPACE={namespace}".encode() in environ:
            found.append(int(proc.name))
    return found


def test_pause_starts_no_call_after_the_stop_and_resume_finishes_each_item_once(
    runs: Runs, cluster: LocalCluster
) -> None:
    with LoopbackProvider(latency=0.1) as provider:
        runs.create(
            "pause32",
            {
                "items": rows(2000),
                "producer": http_producer(provider.url, 32),
                "batchSize": 1000,
                "parallelism": 2,
            },
        )
        wait_for(
            lambda: len(provider.calls) >= 300 and provider.in_flight >= 60,
            timeout=120,
            what="both shards to be calling",
        )
        # Every slot of both workers fills with a call the provider does not answer yet: no slot
        # frees up, so nothing can start between now and the pause except through a broken stop.
        provider.hold()
        wait_for(lambda: provider.held == 64, timeout=30, what="64 held calls")
        held = provider.started
        runs.patch("pause32", {"paused": True})
        # Observed = each worker logged that it saw the stop (SIGTERM from the suspended Job).
        wait_for(
            lambda: sum(log.count(STOP_LINE) for log in worker_logs(cluster, runs.ns)) >= 2,
            timeout=60,
            interval=0.05,
            what="both workers to observe the stop",
        )
        # The held calls now answer within the stop grace; their slots free up, and must stay empty.
        provider.release()
        runs.wait_phase("pause32", "paused", timeout=60)
        assert provider.started == held, f"{provider.started - held} call(s) started after the stop"
        assert len(provider.calls) == held, "an in-flight call was abandoned instead of finished"
        wait_for(
            lambda: runs.status("pause32").get("itemsSucceeded") == held,
            timeout=30,
            what="every finished in-flight call to be recorded",
            describe=lambda: str(runs.status("pause32")),
        )

        runs.patch("pause32", {"paused": False})
        # A SIGKILLed worker loses nothing: its Job starts a new pod, which resumes the shard.
        wait_for(lambda: len(provider.calls) >= held + 300, timeout=120, what="the resumed run to call")
        pids = worker_pids(runs.ns)
        assert pids, "no worker process found"
        before_kill = len(provider.calls)
        os.kill(pids[0], signal.SIGKILL)
        final = runs.wait_phase("pause32", timeout=300)
        calls = provider.calls
    assert final["phase"] == "succeeded", final
    assert final["itemsSucceeded"] == 2000, final
    per_item = Counter(c.item_id for c in calls)
    assert len(per_item) == 2000, "an item was lost"
    # Before the kill every item was called once; the kill may repeat only the killed pod's calls in
    # flight (32) and those finished since its last status write (one second at 320 calls/s).
    before = Counter(c.item_id for c in calls[:before_kill])
    assert set(before.values()) == {1}, "the pause or the resume called an item twice"
    repeated = sum(n - 1 for n in per_item.values())
    assert repeated <= 32 + 320 + 32, f"the kill repeated {repeated} calls"
