"""ShardExecutor with an in-memory flush and a fake clock; the pod shell (run_worker) with a fake API."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from kubernetes.client import ApiClient

from oxygen.api.run import HttpProducer as HttpSpec
from oxygen.api.run import Producer, Retry
from oxygen.api.runshard import ItemResult, RunShard, RunShardSpec, RunShardStatus, ShardItem
from oxygen.execution.pacing import ShardPace
from oxygen.execution.pod import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SIGTERM,
    ShardApiError,
    ShardClient,
    ShardReplaced,
    run_worker,
)
from oxygen.execution.producers import (
    EchoProducer,
    HttpProducer,
    ItemCall,
    PermanentError,
    ProducerResult,
    RetryableError,
)
from oxygen.execution.shard_items import backoff_delay
from oxygen.execution.worker import ShardExecutor
from oxygen.kube.client import Kube
from tests.support.provider import Provider, rate_limited

START = 1_700_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Scripted:
    """A producer whose every call is `script(call)` on a daemon thread (a script may block on an
    event, as a slow provider would); records the calls it got."""

    def __init__(self, script: Callable[[ItemCall], ProducerResult]) -> None:
        self.script = script
        self.calls: list[ItemCall] = []
        self._lock = threading.Lock()

    async def call(self, call: ItemCall) -> ProducerResult:
        with self._lock:
            self.calls.append(call)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[ProducerResult] = loop.create_future()

        def settle(result: ProducerResult | None, error: BaseException | None) -> None:
            if answer.done():
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(result)  # type: ignore[arg-type]

        def target() -> None:
            try:
                result, error = self.script(call), None
            except BaseException as exc:
                result, error = None, exc
            # The loop is gone when the worker abandoned this call and already finished.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, result, error)

        threading.Thread(target=target, name=f"script-{call.item_id}", daemon=True).start()
        return await answer

    async def close(self) -> None:
        return None

    def attempts_of(self, item_id: str) -> list[int]:
        return [c.attempt for c in self.calls if c.item_id == item_id]


def failing_first(n: int, error: Callable[[], Exception]) -> Callable[[ItemCall], ProducerResult]:
    seen: dict[str, int] = {}

    def script(call: ItemCall) -> ProducerResult:
        seen[call.item_id] = seen.get(call.item_id, 0) + 1
        if seen[call.item_id] <= n:
            raise error()
        return ProducerResult(outputs={"ok": call.item_id})

    return script


def unavailable() -> RetryableError:
    return RetryableError("HTTP 503: down", "http_5xx")


def make_shard(
    n: int = 3,
    *,
    max_attempts: int = 3,
    backoff: float = 1.0,
    producer: Producer | None = None,
    attempt_count: int = 0,
    status: RunShardStatus | None = None,
    execute: bool = True,
) -> RunShard:
    spec = RunShardSpec(
        run_name="run-a",
        run_uid="uid-a",
        round=0,
        index=0,
        execute=execute,
        skip_reason=None if execute else "dry_run: nothing executes",
        producer=producer or Producer(provider="p", builtin="echo", cost_per_item=Decimal("0.5")),
        retry=Retry(max_attempts=max_attempts, backoff_seconds=backoff),
        items=[
            ShardItem(id=f"i{k}", row_id=f"r{k}", inputs={"k": k}, attempt_count=attempt_count)
            for k in range(n)
        ],
    )
    return RunShard(spec=spec, status=status or RunShardStatus())


class Flushes(list[RunShardStatus]):
    def __call__(self, status: RunShardStatus) -> None:
        self.append(status)


def executor(
    shard: RunShard, producer: Any, clock: FakeClock, flushes: Flushes, **kwargs: Any
) -> ShardExecutor:
    return ShardExecutor(
        shard,
        producer,
        flushes,
        clock=clock,
        sleep=clock.sleep,
        rng=random.Random(7),
        worker_name="pod-1",
        **kwargs,
    )


def by_id(status: RunShardStatus) -> dict[str, ItemResult]:
    return {item.id: item for item in status.items}


def test_all_items_succeed_with_summary_phase_and_credits() -> None:
    clock, flushes = FakeClock(), Flushes()
    outcome = executor(make_shard(3), EchoProducer(), clock, flushes).run()
    status = outcome.status
    assert not outcome.stopped
    assert outcome.calls == 3
    assert status.phase == "Succeeded"
    assert status.worker == "pod-1"
    assert status.started_at == "2023-11-14T22:13:20.000Z"
    assert status.finished_at is not None
    assert status.summary.succeeded == 3
    assert status.summary.credits_used == Decimal("1.5")
    assert status.summary.attempts == 3
    item = by_id(status)["i1"]
    assert (item.status, item.outputs, item.attempt_count, item.credits_used) == (
        "succeeded",
        {"k": 1},
        1,
        Decimal("0.5"),
    )
    assert item.started_at
    assert item.finished_at
    assert item.latency_seconds == 0
    assert flushes[-1] == status
    wire = status.wire()
    assert wire["summary"]["creditsUsed"] == "1.5"
    assert wire["items"][0]["attemptCount"] == 1


def test_retryable_errors_back_off_exponentially_then_succeed() -> None:
    clock, flushes = FakeClock(), Flushes()
    producer = Scripted(failing_first(2, unavailable))
    status = executor(make_shard(1, max_attempts=3, backoff=1.0), producer, clock, flushes).run().status
    item = status.items[0]
    assert item.status == "succeeded"
    assert item.attempt_count == 3
    assert item.error is None
    assert item.error_class is None
    assert producer.attempts_of("i0") == [1, 2, 3]
    assert len(clock.sleeps) == 2
    assert 0.8 <= clock.sleeps[0] <= 1.2
    assert 1.6 <= clock.sleeps[1] <= 2.4


def test_attempts_exhausted_fails_with_last_error_and_no_credits() -> None:
    clock, flushes = FakeClock(), Flushes()
    producer = Scripted(failing_first(99, unavailable))
    status = executor(make_shard(2, max_attempts=3), producer, clock, flushes).run().status
    item = status.items[0]
    assert (item.status, item.attempt_count, item.error_class) == ("failed", 3, "http_5xx")
    assert item.credits_used == 0
    assert item.error is not None
    assert "gave up after 3 attempts" in item.error
    assert status.phase == "Succeeded"  # item failures are not shard failures
    assert status.summary.failed == 2
    assert status.summary.error_classes == {"http_5xx": 2}
    assert status.summary.attempts == 6
    assert len(clock.sleeps) == 4


def test_permanent_error_fails_at_once() -> None:
    clock, flushes = FakeClock(), Flushes()
    producer = Scripted(failing_first(99, lambda: PermanentError("HTTP 400: q missing", "http_4xx")))
    item = executor(make_shard(1), producer, clock, flushes).run().status.items[0]
    assert (item.status, item.attempt_count, item.error_class, item.error) == (
        "failed",
        1,
        "http_4xx",
        "HTTP 400: q missing",
    )
    assert clock.sleeps == []


def test_retry_after_from_a_real_provider_is_honoured() -> None:
    clock, flushes = FakeClock(), Flushes()
    with Provider(rate_limited(7, failures=2)) as provider:
        spec = Producer(provider="p", http=HttpSpec(url=provider.url, timeout_seconds=5))
        http = HttpProducer(url=provider.url, timeout_seconds=5)
        status = (
            executor(make_shard(1, backoff=0.1, max_attempts=5, producer=spec), http, clock, flushes)
            .run()
            .status
        )
    assert status.items[0].status == "succeeded"
    assert status.items[0].attempt_count == 3
    assert clock.sleeps == [7, 7]
    assert [c.status for c in provider.calls_for("i0")] == [429, 429, 200]
    assert {c.idempotency_key for c in provider.calls} == {"uid-a/i0"}


def test_backoff_is_capped() -> None:
    rng = random.Random(1)
    assert all(backoff_delay(50, k, rng) <= 60 for k in range(1, 10))
    assert backoff_delay(0.1, 1, rng, retry_after=3600) == 300
    assert backoff_delay(0, 1, rng) == 0


def test_attempt_count_continues_from_earlier_rounds() -> None:
    clock, flushes = FakeClock(), Flushes()
    producer = Scripted(failing_first(2, unavailable))
    item = (
        executor(make_shard(1, attempt_count=4, max_attempts=3), producer, clock, flushes)
        .run()
        .status.items[0]
    )
    assert item.status == "succeeded"
    assert item.attempt_count == 7
    assert producer.attempts_of("i0") == [5, 6, 7]
    # The backoff restarts for the new round.
    assert 0.8 <= clock.sleeps[0] <= 1.2


def test_resume_skips_terminal_and_superseded_items_and_redoes_running_ones() -> None:
    earlier = RunShardStatus(
        started_at="2023-11-14T00:00:00.000Z",
        message="worker stopped; 2 item(s) left for the next pod",
        items=[
            ItemResult(
                id="i0", status="succeeded", attempt_count=1, outputs={"old": True}, credits_used=Decimal(2)
            ),
            ItemResult(id="i1", status="failed", attempt_count=3, error="x", error_class="http_4xx"),
            ItemResult(id="i2", status="running", attempt_count=2, started_at="2023-11-14T00:00:01.000Z"),
            ItemResult(id="i3", status="pending", superseded_by="shard-r1-0"),
            ItemResult(id="i4", status="retrying", attempt_count=1, error="503", error_class="http_5xx"),
        ],
    )
    clock, flushes = FakeClock(), Flushes()
    producer = Scripted(lambda call: ProducerResult(outputs={"new": call.attempt}))
    status = executor(make_shard(5, max_attempts=3, status=earlier), producer, clock, flushes).run().status
    assert [c.item_id for c in producer.calls] == ["i2", "i4"]
    items = by_id(status)
    assert items["i0"].outputs == {"old": True}
    assert items["i1"].status == "failed"
    assert (items["i2"].status, items["i2"].attempt_count, items["i2"].outputs) == (
        "succeeded",
        3,
        {"new": 3},
    )
    assert items["i2"].started_at == "2023-11-14T00:00:01.000Z"
    assert items["i3"].status == "pending"
    assert items["i3"].superseded_by == "shard-r1-0"
    assert (items["i4"].status, items["i4"].attempt_count) == ("succeeded", 2)
    assert status.started_at == "2023-11-14T00:00:00.000Z"
    assert status.message is None
    assert status.phase == "Succeeded"
    assert status.summary.credits_used == Decimal(3)


def test_resumed_item_whose_attempts_are_used_up_still_gets_one_call() -> None:
    earlier = RunShardStatus(items=[ItemResult(id="i0", status="running", attempt_count=3)])
    clock, flushes = FakeClock(), Flushes()
    producer = Scripted(failing_first(99, unavailable))
    item = (
        executor(make_shard(1, max_attempts=3, status=earlier), producer, clock, flushes)
        .run()
        .status.items[0]
    )
    assert producer.attempts_of("i0") == [4]
    assert (item.status, item.attempt_count) == ("failed", 4)


def stop_once(entered: threading.Event, stop: threading.Event) -> None:
    """Request a stop as soon as a call is in flight."""

    def wait_then_stop() -> None:
        entered.wait(10)
        stop.set()

    threading.Thread(target=wait_then_stop, daemon=True).start()


def test_stop_abandons_the_in_flight_call_without_counting_it() -> None:
    entered, release = threading.Event(), threading.Event()

    def script(call: ItemCall) -> ProducerResult:
        if call.item_id == "i1":
            entered.set()
            release.wait(30)
        return ProducerResult(outputs={})

    clock, flushes, stop = FakeClock(), Flushes(), threading.Event()
    producer = Scripted(script)
    run = executor(make_shard(3), producer, clock, flushes, stop=stop, stop_grace_seconds=0.1)
    stop_once(entered, stop)
    began = time.monotonic()
    outcome = run.run()
    release.set()
    assert time.monotonic() - began < 2
    assert outcome.stopped
    assert outcome.calls == 1
    items = by_id(outcome.status)
    assert items["i0"].status == "succeeded"
    assert (items["i1"].status, items["i1"].attempt_count) == ("pending", 0)
    assert (items["i2"].status, items["i2"].attempt_count) == ("pending", 0)
    assert [c.item_id for c in producer.calls] == ["i0", "i1"]
    assert outcome.status.phase == "Running"
    assert outcome.status.finished_at is None
    assert outcome.status.message is not None
    assert "2 item(s) left" in outcome.status.message
    assert flushes[-1] == outcome.status


def test_a_call_finishing_within_the_stop_grace_is_kept() -> None:
    entered = threading.Event()
    stop = threading.Event()

    def script(call: ItemCall) -> ProducerResult:
        entered.set()
        stop.wait(10)
        time.sleep(0.1)
        return ProducerResult(outputs={"done": True})

    clock, flushes = FakeClock(), Flushes()
    producer = Scripted(script)
    run = executor(make_shard(2), producer, clock, flushes, stop=stop, stop_grace_seconds=5)
    stop_once(entered, stop)
    outcome = run.run()
    assert outcome.stopped
    assert not run.abandon.is_set()
    first, second = outcome.status.items
    assert (first.status, first.attempt_count, first.outputs) == ("succeeded", 1, {"done": True})
    assert (second.status, second.attempt_count) == ("pending", 0)
    assert len(producer.calls) == 1


def test_stop_during_backoff_exits_promptly_keeping_made_attempts() -> None:
    stop = threading.Event()
    flushes = Flushes()
    producer = Scripted(failing_first(99, unavailable))
    # Real clock and the default, interruptible sleep: the backoff would be 30 s.
    run = ShardExecutor(make_shard(2, backoff=30, max_attempts=5), producer, flushes, stop=stop)
    threading.Timer(0.2, stop.set).start()
    began = time.monotonic()
    outcome = run.run()
    assert time.monotonic() - began < 2
    assert outcome.stopped
    item = outcome.status.items[0]
    assert (item.status, item.attempt_count) == ("pending", 1)
    assert outcome.status.items[1].attempt_count == 0


def test_output_over_the_cap_fails_the_item_saying_both_sizes() -> None:
    spec = Producer(provider="p", builtin="echo", max_output_bytes=100)
    producer = Scripted(lambda call: ProducerResult(outputs={"blob": "x" * 200}))
    clock, flushes = FakeClock(), Flushes()
    item = executor(make_shard(1, producer=spec), producer, clock, flushes).run().status.items[0]
    assert (item.status, item.error_class, item.outputs, item.credits_used) == (
        "failed",
        "output_too_large",
        None,
        Decimal(0),
    )
    assert item.error is not None
    assert "211 bytes" in item.error
    assert "100 bytes" in item.error
    assert "producer.maxOutputBytes" in item.error


def test_shard_status_budget_fails_items_that_do_not_fit() -> None:
    spec = Producer(provider="p", builtin="echo", max_output_bytes=16 * 1024)
    producer = Scripted(lambda call: ProducerResult(outputs={"blob": "x" * 4000}))
    clock, flushes = FakeClock(), Flushes()
    status = (
        executor(make_shard(10, producer=spec), producer, clock, flushes, max_status_bytes=20_000)
        .run()
        .status
    )
    assert status.summary.succeeded == 2
    assert status.summary.error_classes == {"shard_too_large": 8}
    failed = [i for i in status.items if i.status == "failed"]
    assert failed[0].error is not None
    assert "batchSize" in failed[0].error
    assert len(status.model_dump_json(by_alias=True, exclude_none=True)) <= 20_000


def test_writes_are_batched_for_many_fast_items() -> None:
    flushes = Flushes()
    outcome = ShardExecutor(make_shard(1000), EchoProducer(), flushes, flush_interval=1.0).run()
    assert outcome.status.summary.succeeded == 1000
    assert 1 <= len(flushes) <= 4
    assert flushes[-1].phase == "Succeeded"


def test_writes_follow_the_interval_for_slow_items() -> None:
    clock, flushes = FakeClock(), Flushes()

    def slow(call: ItemCall) -> ProducerResult:
        clock.now += 0.3
        return ProducerResult(outputs={})

    executor(make_shard(10), Scripted(slow), clock, flushes, flush_interval=1.0).run()
    # 3 s of work at one write per second, plus the final write; never one per item.
    assert 3 <= len(flushes) <= 5
    progress = [f.summary.succeeded for f in flushes]
    assert progress == sorted(progress)
    assert progress[-1] == 10
    assert flushes[0].phase == "Running"
    assert all(f.items and len(f.items) == 10 for f in flushes)


def test_reported_cost_wins_over_cost_per_item() -> None:
    producer = Scripted(lambda call: ProducerResult(outputs={}, cost=Decimal("0.125")))
    status = executor(make_shard(2), producer, FakeClock(), Flushes()).run().status
    assert status.summary.credits_used == Decimal("0.25")


def test_a_crashing_producer_fails_the_item_not_the_worker() -> None:
    def crash(call: ItemCall) -> ProducerResult:
        raise KeyError("boom")

    item = executor(make_shard(1), Scripted(crash), FakeClock(), Flushes()).run().status.items[0]
    assert (item.status, item.error_class) == ("failed", "producer_error")


def test_execute_false_records_items_skipped_without_calls() -> None:
    producer = Scripted(lambda call: ProducerResult(outputs={}))
    status = executor(make_shard(3, execute=False), producer, FakeClock(), Flushes()).run().status
    assert producer.calls == []
    assert status.summary.skipped == 3
    assert status.phase == "Succeeded"
    assert status.message == "dry_run: nothing executes"


# -- Kubernetes shell with a fake API --------------------------------------------------------------


class FakeApiException(Exception):
    pass


class FakeApi:
    def __init__(self, shard: RunShard, failures: list[Exception] | None = None) -> None:
        self.object = shard.wire()
        self.failures = list(failures or [])
        self.patches: list[dict[str, Any]] = []

    def _maybe_fail(self) -> None:
        if self.failures:
            raise self.failures.pop(0)

    def get_namespaced_custom_object(
        self, group: str, version: str, ns: str, plural: str, name: str, **kw: Any
    ) -> Any:
        assert (group, version, plural) == ("oxygen.dev", "v1alpha1", "runshards")
        self._maybe_fail()
        return self.object

    def patch_namespaced_custom_object_status(
        self, group: str, version: str, ns: str, plural: str, name: str, body: dict[str, Any], **kw: Any
    ) -> Any:
        self._maybe_fail()
        self.patches.append(body)
        return self.object


def kube_over(api: FakeApi) -> Kube:
    """Our real access layer (`Kube`) with the generated CustomObjectsApi swapped for the fake."""
    kube = Kube(ApiClient())
    kube.custom = api
    return kube


def api_error(status: int) -> Exception:
    from kubernetes.client.exceptions import ApiException

    error: Exception = ApiException(status=status, reason="Boom")
    return error


def test_client_retries_transient_errors_and_sends_a_merge_patch() -> None:
    api = FakeApi(make_shard(1), [api_error(503), ConnectionResetError()])
    client = ShardClient(kube_over(api), "ns", "s", sleep=lambda s: None)
    assert client.get().spec.run_name == "run-a"
    client.patch_status(RunShardStatus())
    (body,) = api.patches
    assert body["status"]["message"] is None
    assert body["status"]["finishedAt"] is None
    assert body["status"]["phase"] == "Pending"


def test_client_writes_only_to_the_shard_it_was_started_for() -> None:
    shard = make_shard(1)
    shard.metadata.uid = "uid-old"
    api = FakeApi(shard)
    client = ShardClient(kube_over(api), "ns", "s", uid="uid-old", sleep=lambda s: None)
    client.get()
    client.patch_status(RunShardStatus())
    assert api.patches[-1]["metadata"]["uid"] == "uid-old"
    # Someone else wrote the shard (409): the client re-reads it, finds it still its own, writes again.
    api.failures = [api_error(409)]
    client.patch_status(RunShardStatus())
    assert len(api.patches) == 2
    # Replaced by a namesake: the re-read shows another uid, and nothing is written.
    api.object["metadata"]["uid"] = "uid-new"
    api.failures = [api_error(409)]
    with pytest.raises(ShardReplaced):
        client.patch_status(RunShardStatus())
    assert len(api.patches) == 2
    # A pod started for the old shard refuses the namesake from its first read.
    with pytest.raises(ShardReplaced):
        ShardClient(kube_over(api), "ns", "s", uid="uid-old").get()


def test_client_gives_up_on_a_forbidden_call_at_once() -> None:
    api = FakeApi(make_shard(1), [api_error(403), api_error(403)])
    with pytest.raises(ShardApiError, match="cannot read RunShard ns/s: HTTP 403 Boom"):
        ShardClient(kube_over(api), "ns", "s", sleep=lambda s: None).get()
    assert len(api.failures) == 1


def test_run_worker_exit_codes() -> None:
    api = FakeApi(make_shard(4))
    assert run_worker("ns", "s", kube=kube_over(api), env={"HOSTNAME": "pod-x"}) == EXIT_OK
    final = api.patches[-1]["status"]
    assert final["worker"] == "pod-x"
    assert final["summary"]["succeeded"] == 4

    stop = threading.Event()
    stop.set()
    assert run_worker("ns", "s", kube=kube_over(FakeApi(make_shard(2))), env={}, stop=stop) == EXIT_SIGTERM

    assert (
        run_worker("ns", "s", kube=kube_over(FakeApi(make_shard(1), [api_error(404)])), env={}) == EXIT_ERROR
    )


def test_sigterm_abandons_the_call_and_exits_143() -> None:
    import os
    import signal
    import sys

    spec = Producer(provider="p", command=[sys.executable, "-c", "import time; time.sleep(30)"])
    api = FakeApi(make_shard(2, producer=spec))
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    began = time.monotonic()
    assert run_worker("ns", "s", kube=kube_over(api), env={}, stop_grace_seconds=0.1) == EXIT_SIGTERM
    assert time.monotonic() - began < 5
    final = api.patches[-1]["status"]
    assert [(i["status"], i["attemptCount"]) for i in final["items"]] == [("pending", 0), ("pending", 0)]
    # The handler is removed again: the test process keeps its own SIGTERM behaviour.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_run_worker_keeps_each_steps_secret_to_itself_and_out_of_status() -> None:
    import json
    import sys

    from oxygen.execution.headers import step_header_prefix
    from tests.support.header_echo import HeaderEcho

    secret, other = "step0-key-1b7e55d0", "step2-key-90ac3f1e"
    print_env = "import json,os,sys; sys.stdin.read(); print(json.dumps(dict(os.environ)))"
    fail_env = "import os,sys; sys.stdin.read(); sys.stderr.write(repr(dict(os.environ))); sys.exit(1)"
    env = {
        "HOSTNAME": "pod-x",
        "PATH": "/usr/bin:/bin",
        step_header_prefix("0") + "X-Api-Key": secret,
        step_header_prefix("2") + "X-Other": other,
    }
    with HeaderEcho() as echo:
        steps = [
            Producer(provider="echoing", http=HttpSpec(url=echo.url("ok"))),
            Producer(provider="printer", command=[sys.executable, "-c", print_env]),
            Producer(provider="echoing", http=HttpSpec(url=echo.url("bad"))),
        ]
        shard = make_shard(0, max_attempts=1)
        shard.spec.sequence = "steps"
        shard.spec.context = {"inputs": {}, "steps": {}}
        shard.spec.items = [ShardItem(id=str(k), step=f"s{k}", producer=p) for k, p in enumerate(steps)]
        api = FakeApi(shard)
        assert run_worker("ns", "s", kube=kube_over(api), env=env) == EXIT_OK
        assert echo.seen("X-Api-Key") == {secret} and echo.seen("X-Other") == {other}
    final = api.patches[-1]["status"]
    assert [i["status"] for i in final["items"]] == ["succeeded", "succeeded", "failed"]
    printed = final["items"][1]["outputs"]
    assert not [key for key in printed if "HEADER" in key], "the command step saw another step's Secret"
    for body in api.patches:
        text = json.dumps(body)
        assert secret not in text and other not in text

    # A failing command that dumps its environment to stderr leaks nothing either.
    shard.spec.items = [
        ShardItem(
            id="1",
            step="s1",
            producer=steps[1].model_copy(update={"command": [sys.executable, "-c", fail_env]}),
        )
    ]
    api = FakeApi(shard)
    assert run_worker("ns", "s", kube=kube_over(api), env=env) == EXIT_OK
    (item,) = api.patches[-1]["status"]["items"]
    assert item["status"] == "failed" and "PATH" in item["error"]
    assert "HEADER" not in item["error"] and secret not in json.dumps(api.patches)


# -- many items in flight (spec.producer.concurrency) ----------------------------------------------


class InFlight:
    """An async producer that answers after a real moment and counts the calls in flight."""

    def __init__(self, seconds: float = 0.01) -> None:
        self.seconds = seconds
        self.now = 0
        self.peak = 0
        self.calls: list[str] = []

    async def call(self, call: ItemCall) -> ProducerResult:
        self.calls.append(call.item_id)
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.now -= 1
        return ProducerResult(outputs={"id": call.item_id})

    async def close(self) -> None:
        return None


def test_concurrency_keeps_that_many_calls_in_flight_and_never_more() -> None:
    spec = Producer(provider="p", builtin="echo", concurrency=8)
    producer = InFlight()
    flushes = Flushes()
    outcome = ShardExecutor(make_shard(40, producer=spec), producer, flushes).run()
    assert producer.peak == 8
    assert outcome.calls == 40
    assert sorted(producer.calls) == sorted(f"i{k}" for k in range(40))
    assert outcome.status.summary.succeeded == 40
    assert {item.attempt_count for item in outcome.status.items} == {1}
    assert 1 <= len(flushes) <= 4


def test_the_http_default_is_16_in_flight_and_a_command_runs_alone() -> None:
    http_spec = Producer(provider="p", http=HttpSpec(url="http://127.0.0.1:1/x"))
    assert ShardExecutor(make_shard(1, producer=http_spec), InFlight(), Flushes()).concurrency == 16
    command = Producer(provider="p", command=["true"])
    assert ShardExecutor(make_shard(1, producer=command), InFlight(), Flushes()).concurrency == 1


def test_stop_lets_every_in_flight_call_finish_and_starts_no_new_one() -> None:
    entered, release, stop = threading.Semaphore(0), threading.Event(), threading.Event()

    def script(call: ItemCall) -> ProducerResult:
        entered.release()
        release.wait(30)
        return ProducerResult(outputs={"id": call.item_id})

    def stop_when_four_are_in_flight() -> None:
        for _ in range(4):
            entered.acquire(timeout=10)
        stop.set()
        release.set()

    spec = Producer(provider="p", builtin="echo", concurrency=4)
    producer = Scripted(script)
    threading.Thread(target=stop_when_four_are_in_flight, daemon=True).start()
    run = ShardExecutor(make_shard(10, producer=spec), producer, Flushes(), stop=stop, stop_grace_seconds=10)
    outcome = run.run()
    assert outcome.stopped
    assert not run.abandon.is_set()
    assert len(producer.calls) == 4, "a call started after the stop"
    items = by_id(outcome.status)
    done = [i for i in items.values() if i.status == "succeeded"]
    assert sorted(i.id for i in done) == sorted(c.item_id for c in producer.calls)
    assert all(i.attempt_count == 1 for i in done)
    rest = [i for i in items.values() if i.status != "succeeded"]
    assert len(rest) == 6
    assert {(i.status, i.attempt_count) for i in rest} == {("pending", 0)}
    assert outcome.status.message is not None
    assert "6 item(s) left" in outcome.status.message


def test_after_the_grace_every_in_flight_call_is_abandoned_uncounted() -> None:
    entered, stop = threading.Semaphore(0), threading.Event()
    never = threading.Event()

    def script(call: ItemCall) -> ProducerResult:
        entered.release()
        never.wait(30)
        return ProducerResult(outputs={})

    def stop_when_four_are_in_flight() -> None:
        for _ in range(4):
            entered.acquire(timeout=10)
        stop.set()

    spec = Producer(provider="p", builtin="echo", concurrency=4)
    threading.Thread(target=stop_when_four_are_in_flight, daemon=True).start()
    run = ShardExecutor(
        make_shard(6, producer=spec), Scripted(script), Flushes(), stop=stop, stop_grace_seconds=0.1
    )
    outcome = run.run()
    never.set()
    assert outcome.stopped
    assert run.abandon.is_set()
    assert outcome.calls == 0
    assert {(i.status, i.attempt_count) for i in outcome.status.items} == {("pending", 0)}


def test_a_retry_after_closes_the_gate_for_the_whole_shard() -> None:
    clock = FakeClock()
    pace = ShardPace(1.0, 8, random.Random(1), clock)
    assert pace.wait_seconds() == 0
    pace.failed(retry_after=7)
    assert pace.wait_seconds() == 7
    clock.now += 5
    assert pace.wait_seconds() == 2
    pace.failed(retry_after=3600)
    assert pace.wait_seconds() == 300, "Retry-After is capped as for one item"


def test_a_window_of_failures_backs_the_shard_off_until_the_provider_answers() -> None:
    clock = FakeClock()
    pace = ShardPace(1.0, 4, random.Random(1), clock)
    for _ in range(3):
        pace.failed(retry_after=None)
    assert pace.wait_seconds() == 0, "fewer failures than the window: each item's own backoff is enough"
    pace.failed(retry_after=None)
    first = pace.wait_seconds()
    assert 0.8 <= first <= 1.2
    for _ in range(4):
        pace.failed(retry_after=None)
    assert 1.6 <= pace.wait_seconds() <= 2.4, "the shard's backoff grows while every call fails"
    clock.now += 10
    pace.answered()
    for _ in range(4):
        pace.failed(retry_after=None)
    assert 0.8 <= pace.wait_seconds() <= 1.2, "an answer resets the shard's backoff"
    alone = ShardPace(1.0, 1, random.Random(1), clock)
    alone.failed(retry_after=None)
    assert alone.wait_seconds() == 0, "one at a time, the item's own backoff already paces the shard"


def test_a_shard_waiting_on_its_calls_writes_nothing_new() -> None:
    clock, flushes = FakeClock(), Flushes()
    release = threading.Event()
    started = threading.Event()

    def held(call: ItemCall) -> ProducerResult:
        started.set()
        release.wait(10)
        return ProducerResult(outputs={})

    def pass_time() -> None:
        started.wait(10)
        for _ in range(8):  # 8 flush intervals go by while the call is held, each seen by a tick
            time.sleep(0.3)
            clock.now += 1.0
        release.set()

    threading.Thread(target=pass_time, daemon=True).start()
    executor(make_shard(1), Scripted(held), clock, flushes, flush_interval=1.0).run()
    # The item's start, then its result: never a write per interval of an unchanged status.
    assert 1 <= len(flushes) <= 3, len(flushes)
    assert flushes[-1].phase == "Succeeded"
