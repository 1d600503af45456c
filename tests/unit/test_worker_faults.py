"""The worker under faults: an API server that is away, a kill between status writes."""

from __future__ import annotations

import threading

import pytest

from oxygen.api.runshard import RunShardStatus
from oxygen.execution.item_calls import ItemCall, ProducerResult
from oxygen.execution.pod import API_OUTAGE_SECONDS, ShardApiError, ShardClient
from oxygen.execution.worker import EARLY_FLUSH_RESULTS
from tests.unit.test_worker import (
    FakeApi,
    FakeClock,
    Flushes,
    Scripted,
    api_error,
    executor,
    kube_over,
    make_shard,
)


class OutageClock:
    """A monotonic clock that only the client's own backoff sleeps move."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_client_rides_out_a_minute_long_api_outage() -> None:
    clock = OutageClock()
    # Connection refused (the server is down), then 503s while it comes back, for well over 60 s.
    down: list[Exception] = [ConnectionRefusedError() for _ in range(15)] + [api_error(503)] * 10
    api = FakeApi(make_shard(1), down)
    client = ShardClient(kube_over(api), "ns", "s", sleep=clock.sleep, clock=clock)
    client.patch_status(RunShardStatus())
    assert clock.now >= 60
    assert len(api.patches) == 1 and not api.failures


def test_client_gives_up_only_after_the_outage_budget() -> None:
    clock = OutageClock()
    api = FakeApi(make_shard(1), [ConnectionRefusedError() for _ in range(10_000)])
    client = ShardClient(kube_over(api), "ns", "s", sleep=clock.sleep, clock=clock)
    with pytest.raises(ShardApiError, match="giving up"):
        client.get()
    assert clock.now >= API_OUTAGE_SECONDS
    assert api.patches == []


def test_calls_go_on_while_a_status_write_hangs_and_the_next_write_carries_them() -> None:
    api_back = threading.Event()

    class HangingFirstWrite(Flushes):
        def __call__(self, status: RunShardStatus) -> None:
            # The first write meets an API server that is away until every item has been called.
            if not self:
                assert api_back.wait(30)
            self.append(status)

    n = 40
    calls: list[str] = []

    def answer(call: ItemCall) -> ProducerResult:
        calls.append(call.item_id)
        if len(calls) == n:
            api_back.set()
        return ProducerResult(outputs={"ok": call.item_id})

    clock = FakeClock()
    # An interval of zero makes a write due at once, so the hanging write starts with the first result.
    written = HangingFirstWrite()
    result = executor(make_shard(n), Scripted(answer), clock, written, flush_interval=0.0).run()
    assert len(calls) == len(set(calls)) == n
    assert result.status.summary.succeeded == n
    assert written[-1].summary.succeeded == n


def test_many_unwritten_results_are_written_early() -> None:
    clock, flushes = FakeClock(), Flushes()

    def fast(call: ItemCall) -> ProducerResult:
        clock.now += 0.05
        return ProducerResult(outputs={})

    concurrency = 16
    n = 200
    run = executor(
        make_shard(n), Scripted(fast), clock, flushes, flush_interval=10.0, concurrency=concurrency
    )
    run.run()
    # 10 s of work at a 10 s interval would be one or two writes; results pile up to the early threshold.
    assert len(flushes) >= 4
    progress = [f.summary.succeeded for f in flushes]
    assert progress == sorted(progress) and progress[-1] == n
    steps = [b - a for a, b in zip([0, *progress], progress, strict=False)]
    assert max(steps) <= max(concurrency, EARLY_FLUSH_RESULTS) + concurrency
