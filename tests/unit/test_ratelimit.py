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
