"""The worker's side of a Provider's global limits: token bucket, in-flight cap, share."""

from __future__ import annotations

import asyncio
import math

from oxygen.execution.ratelimit import FALLBACK, Share, ShareLimiter, TokenBucket, parse_share


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_gives_burst_then_rps() -> None:
    clock = Clock()
    bucket = TokenBucket(4.0, 2, clock)
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == 0.25
    clock.now += 0.25
    assert bucket.take() == 0.0
    clock.now += 10  # saved up at most `burst`
    assert [bucket.take(), bucket.take(), bucket.take()] == [0.0, 0.0, 0.25]


def test_token_bucket_follows_a_new_share_live() -> None:
    clock = Clock()
    bucket = TokenBucket(10.0, 5, clock)
    bucket.set(1.0, 1)  # lowered: what was saved up beyond the new burst is gone
    assert bucket.take() == 0.0
    assert bucket.take() == 1.0
    bucket.set(0.0, 1)
    assert bucket.take() == math.inf
    bucket.set(None, 1)
    assert bucket.take() == 0.0


def test_share_annotation_parsing() -> None:
    assert parse_share('{"rps":2.5,"burst":3,"inFlight":4,"epoch":7}') == Share(2.5, 3, 4, 7)
    assert parse_share('{"rps":null,"burst":1,"inFlight":null,"epoch":1}') == Share(None, 1, None, 1)
    # Absent, unreadable or the placeholder: no share yet.
    assert [parse_share(raw) for raw in (None, "", "{", "[]", '{"rps":1,"epoch":0}')] == [None] * 5


def test_limiter_waits_for_a_share_then_falls_back_to_one_per_second() -> None:
    clock = Clock()
    limiter = ShareLimiter(lambda: None, clock=clock, wait_for_share=10.0)
    assert limiter.limits() is None
    clock.now += 10
    assert limiter.limits() == FALLBACK


def test_limiter_caps_calls_in_flight_and_adopts_a_new_share() -> None:
    async def scenario() -> list[int]:
        limiter = ShareLimiter(lambda: None, initial=Share(None, 1, 2, 1))
        seen = []
        await limiter.acquire()
        await limiter.acquire()
        third = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05)
        seen.append(limiter.in_flight)  # the third waits
        limiter.adopt(Share(None, 1, 3, 2))  # a larger share lets it start
        await asyncio.wait_for(third, 1)
        seen.append(limiter.in_flight)
        for _ in range(3):
            limiter.release()
        seen.append(limiter.in_flight)
        return seen

    assert asyncio.run(scenario()) == [2, 3, 0]


def test_a_share_of_zero_in_flight_waits_until_it_gets_one() -> None:
    assert parse_share('{"rps":0.5,"burst":0,"inFlight":0,"epoch":3}') == Share(0.5, 0, 0, 3)

    async def scenario() -> list[int]:
        limiter = ShareLimiter(lambda: None, initial=Share(None, 0, 0, 1))
        first = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.05)
        seen = [limiter.in_flight]  # none may start on a share of 0
        limiter.adopt(Share(None, 0, 1, 2))
        await asyncio.wait_for(first, 1)
        seen.append(limiter.in_flight)
        return seen

    assert asyncio.run(scenario()) == [0, 1]
    # A burst share of 0 still saves up the one token a call needs: its rate alone paces it.
    clock = Clock()
    bucket = TokenBucket(4.0, 0, clock)
    clock.now += 10
    assert [bucket.take(), bucket.take()] == [0.0, 0.25]


def test_a_cancelled_waiter_holds_no_slot() -> None:
    async def scenario() -> int:
        limiter = ShareLimiter(lambda: None, initial=Share(None, 1, 1, 1))
        await limiter.acquire()
        waiter = asyncio.ensure_future(limiter.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        limiter.release()
        return limiter.in_flight

    assert asyncio.run(scenario()) == 0


def test_the_worker_counts_calls_and_429s_on_top_of_earlier_pods_and_passes_its_limiter() -> None:
    from decimal import Decimal

    from oxygen.api.run import Producer, Retry
    from oxygen.api.runshard import RunShard, RunShardSpec, RunShardStatus, ShardItem, ShardSummary
    from oxygen.execution.item_calls import ItemCall, ProducerResult, RetryableError
    from oxygen.execution.worker import ShardExecutor

    class Limited:
        def __init__(self) -> None:
            self.seen: dict[str, int] = {}

        async def call(self, call: ItemCall) -> ProducerResult:
            self.seen[call.item_id] = self.seen.get(call.item_id, 0) + 1
            if self.seen[call.item_id] == 1:
                raise RetryableError("HTTP 429 (rate limited)", "http_429", 0.0)
            return ProducerResult(outputs={})

        async def close(self) -> None:
            return None

    class Counting(ShareLimiter):
        acquired = 0

        async def acquire(self) -> None:
            Counting.acquired += 1
            await super().acquire()

    spec = RunShardSpec(
        run_name="run-a",
        run_uid="uid-a",
        round=0,
        index=0,
        producer=Producer(provider="p", builtin="echo", cost_per_item=Decimal(0)),
        retry=Retry(max_attempts=3, backoff_seconds=0.001),
        items=[ShardItem(id=f"i{k}") for k in range(3)],
    )
    earlier = RunShardStatus(summary=ShardSummary(calls=7, throttled_calls=2))
    limiter = Counting(lambda: None, initial=Share(None, 1, None, 1))
    outcome = ShardExecutor(
        RunShard(spec=spec, status=earlier), Limited(), lambda s: None, limiter=limiter
    ).run()
    assert (outcome.status.summary.calls, outcome.status.summary.throttled_calls) == (7 + 6, 2 + 3)
    assert Counting.acquired == 6
    assert limiter.in_flight == 0
