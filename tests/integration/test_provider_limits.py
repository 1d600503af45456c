"""A Provider's global rate limit holds across every shard of every run using it (issue 15, acceptance
1 and 2): the provider is a loopback server that enforces its own quota with 429s; the operator shares
the limit out over the shards (annotation), the workers keep to their shares, and a 429 lowers the
effective rate for everyone."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import pytest
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from tests.support.loopback import LoopbackProvider
from tests.support.provider import Behaviour, Reply, echo
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

REAL_QUOTA = 40
ITEMS = 1000


def quota(per_second: int) -> Behaviour:
    """At most `per_second` answered calls in any 1 s window; beyond that, 429 with Retry-After."""
    answered: deque[float] = deque()
    lock = threading.Lock()
    inner = echo()

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        now = time.monotonic()
        with lock:
            while answered and answered[0] <= now - 1.0:
                answered.popleft()
            if len(answered) >= per_second:
                return Reply(status=429, body={"error": "quota"}, headers={"Retry-After": "1"})
            answered.append(now)
        return inner(item_id, attempt, body)

    return behaviour


class Seen(NamedTuple):
    """A call as the provider saw it: when it arrived, its answer, its Idempotency-Key (run uid/item)."""

    at: float
    status: int
    key: str


def serve(per_second: int, ports: Any, stop: Any, seen: Any) -> None:
    """The provider in a process of its own, so the test's own work never delays (bunches) its calls."""
    provider = LoopbackProvider(latency=0.05, behaviour=quota(per_second)).start()
    ports.put(provider.port)
    stop.wait()
    calls = [Seen(c.at, c.status, c.idempotency_key or "") for c in provider.calls]
    provider.close()
    seen.put(calls)


class QuotaProvider:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/items"
        self.calls: list[Seen] = []


@contextmanager
def quota_provider(per_second: int) -> Iterator[QuotaProvider]:
    ctx = multiprocessing.get_context("spawn")
    ports, seen, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    process = ctx.Process(target=serve, args=(per_second, ports, stop, seen), daemon=True)
    process.start()
    provider = QuotaProvider(ports.get(timeout=60))
    try:
        yield provider
    finally:
        stop.set()
        provider.calls = sorted(seen.get(timeout=60))
        process.join(timeout=30)


def start_runs(api: client.ApiClient, runs: Runs, declared: int, url: str) -> None:
    provider = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Provider",
        "metadata": {"name": "quota"},
        "spec": {
            "http": {"url": url, "timeoutSeconds": 5},
            "price": "0",
            "rateLimit": {"requestsPerSecond": declared, "burst": 8},
            "retry": {"maxAttempts": 10, "backoffSeconds": 0.5},
        },
    }
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, runs.ns, "providers", provider
    )
    for name in ("first", "second"):
        rows = [{"rowId": f"row-{i}", "inputs": {"i": i}} for i in range(ITEMS)]
        spec = {
            "items": rows,
            "producer": {"providerRef": {"name": "quota"}, "concurrency": 32},
            "parallelism": 4,
            "retry": {"maxAttempts": 10, "backoffSeconds": 0.5},
        }
        runs.create(name, spec)


def busiest_second(calls: list[Seen], after: float) -> int:
    """The most calls the provider saw in any 1 s window starting after `after`."""
    times = sorted(c.at for c in calls)
    most, j = 0, 0
    for i, t in enumerate(times):
        if t < after:
            continue
        j = max(j, i)
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        most = max(most, j - i)
    return most


def run_uid(api: client.ApiClient, ns: str, name: str) -> str:
    body: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, ns, "runs", name
    )
    return str(body["metadata"]["uid"])


def shares_while_both_ran(calls: list[Seen], uids: list[str]) -> list[float]:
    last = min(max(c.at for c in calls if c.key.startswith(uid)) for uid in uids)
    during = [c for c in calls if c.at <= last]
    return [sum(1 for c in during if c.key.startswith(uid)) / len(during) for uid in uids]


def test_two_runs_share_a_provider_limit_that_holds_across_all_their_pods(
    runs: Runs, api: client.ApiClient
) -> None:
    with quota_provider(REAL_QUOTA) as provider:
        start_runs(api, runs, REAL_QUOTA, provider.url)
        statuses = [runs.wait_phase(name, timeout=600) for name in ("first", "second")]
    calls = provider.calls
    uids = [run_uid(api, runs.ns, name) for name in ("first", "second")]
    throttled = sum(1 for c in calls if c.status == 429)
    busiest = busiest_second(calls, min(c.at for c in calls) + 1.0)
    shares = shares_while_both_ran(calls, uids)
    start = min(c.at for c in calls)
    per_second = [
        sum(1 for c in calls if start + s <= c.at < start + s + 1)
        for s in range(int(calls[-1].at - start) + 1)
    ]
    print(f"calls={len(calls)} throttled={throttled} busiest 1 s window={busiest} shares={shares}")
    print(f"calls per second: {per_second}")
    assert [s["phase"] for s in statuses] == ["succeeded", "succeeded"], statuses
    assert [s["itemsSucceeded"] for s in statuses] == [ITEMS, ITEMS]
    assert busiest <= 44
    assert throttled < 0.01 * len(calls)
    assert all(0.35 <= share <= 0.65 for share in shares), shares


def test_a_provider_declared_above_its_real_quota_is_found_out_by_the_429s(
    runs: Runs, api: client.ApiClient
) -> None:
    with quota_provider(REAL_QUOTA) as provider:
        start_runs(api, runs, 2 * REAL_QUOTA, provider.url)
        statuses = [runs.wait_phase(name, timeout=600) for name in ("first", "second")]
    calls = provider.calls
    after = min(c.at for c in calls) + 10.0
    late = [c for c in calls if c.at >= after]
    throttled = sum(1 for c in late if c.status == 429)
    print(f"calls={len(calls)} after 10 s={len(late)} throttled after 10 s={throttled}")
    assert [s["phase"] for s in statuses] == ["succeeded", "succeeded"], statuses
    assert [s["itemsSucceeded"] for s in statuses] == [ITEMS, ITEMS]
    assert throttled < 0.10 * len(late)
