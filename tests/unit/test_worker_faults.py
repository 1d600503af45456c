"""The worker under faults: an API server that is away, a kill between status writes."""

from __future__ import annotations

import threading

import pytest

from oxygen.api.run import HttpProducer as HttpSpec
from oxygen.api.run import Producer
from oxygen.api.runshard import RunShardStatus
from oxygen.execution.item_calls import ItemCall, ProducerResult
from oxygen.execution.pod import (
    API_OUTAGE_SECONDS,
    EXIT_ERROR,
    EXIT_OK,
    ShardApiError,
    ShardClient,
    run_worker,
)
from oxygen.execution.worker import EARLY_FLUSH_RESULTS
from oxygen.status.run import worker_problem
from oxygen.status.shard import CANNOT_START
from oxygen.status.views import ShardView
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
    # Early: a write per ~threshold of results, never the 200 one write per interval would hold. The
    # write runs in a thread, so results that land while it is scheduled add up to two more batches.
    assert max(steps) <= 3 * max(concurrency, EARLY_FLUSH_RESULTS)
    assert max(steps) < n // 4


def test_a_worker_that_cannot_start_says_why_on_its_shard() -> None:
    # A header Secret whose value breaks the header framing: no request can be sent with it.
    secret = "key-4f1c\r\nX-Injected: 1"
    env = {"HOSTNAME": "pod-x", "OXYGEN_HEADER_X-Api-Key": secret}
    spec = Producer(provider="p", http=HttpSpec(url="http://127.0.0.1:9/x"))
    api = FakeApi(make_shard(3, producer=spec))
    # Nothing is left to execute once the reason is written: exit 0, so the Job starts no other pod.
    assert run_worker("ns", "s", kube=kube_over(api), env=env) == EXIT_OK
    (body,) = api.patches
    final = body["status"]
    reason = "env OXYGEN_HEADER_X-Api-Key: the value contains a line break"
    assert final["message"] == CANNOT_START + reason
    assert final["summary"]["failed"] == 3
    assert [(i["status"], i["errorClass"], i["error"]) for i in final["items"]] == [
        ("failed", "config", CANNOT_START + reason)
    ] * 3
    assert "key-4f1c" not in str(body)


def test_a_shard_the_worker_cannot_parse_gets_the_reason_as_its_message() -> None:
    api = FakeApi(make_shard(2))
    api.object["spec"]["producer"] = {"provider": "p", "http": {"url": "http://127.0.0.1:99999/x"}}
    assert run_worker("ns", "s", kube=kube_over(api), env={"HOSTNAME": "pod-x"}) == EXIT_ERROR
    (body,) = api.patches
    assert body["status"]["message"].startswith(CANNOT_START)
    assert "port must be a number from 1 to 65535" in body["status"]["message"]


def test_the_run_carries_the_message_of_a_worker_that_cannot_start() -> None:
    def view(name: str, message: str | None) -> ShardView:
        return ShardView(
            name=name, round=0, index=0, execute=True, item_count=1, provider="p", message=message
        )

    assert worker_problem([view("s-0", "worker stopped; 3 item(s) left for the next pod")]) == ""
    shards = [view("s-1", CANNOT_START + "Port out of range"), view("s-0", CANNOT_START + "bad URL")]
    assert worker_problem(shards) == f"RunShard s-0: {CANNOT_START}bad URL (and 1 more shard(s))"
