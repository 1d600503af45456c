"""The Provider's allocator: shares of the global limits per active shard, rebalancing, 429 cuts."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.provider import ProviderStatus
from oxygen.controllers.provider.observe import ShardUse
from oxygen.controllers.provider.shares import AllocatorState, allocate, effective_rate, targets
from oxygen.execution.ratelimit import Share
from tests.support.builders import provider

LIMITS: dict[str, Any] = {"rateLimit": {"requestsPerSecond": 40, "burst": 8}, "maxInFlight": 64}


def use(name: str, run: str, concurrency: int = 32, throttled: int = 0, **fields: Any) -> ShardUse:
    values: dict[str, Any] = {
        "name": name,
        "done": False,
        "running": 0,
        "attempts": 0,
        "throttled": 0,
        "run_uid": run,
        "concurrency": concurrency,
        "started": True,
        "throttled_calls": throttled,
    }
    values.update(fields)
    return ShardUse(**values)


def limits(shares: dict[str, Share]) -> dict[str, tuple[float | None, int, int | None]]:
    return {name: (s.rps, s.burst, s.in_flight) for name, s in shares.items()}


@pytest.mark.parametrize(
    ("shards", "expected"),
    [
        pytest.param([use("a-0", "a")], {"a-0": (40.0, 8, 64)}, id="one run alone gets the whole limit"),
        pytest.param(
            [use("a-0", "a"), use("a-1", "a"), use("b-0", "b"), use("b-1", "b")],
            {"a-0": (10.0, 2, 16), "a-1": (10.0, 2, 16), "b-0": (10.0, 2, 16), "b-1": (10.0, 2, 16)},
            id="two runs alike get half each",
        ),
        pytest.param(
            [use("a-0", "a"), use("a-1", "a"), use("a-2", "a"), use("b-0", "b")],
            # Whole numbers by largest remainder: burst 8 and in-flight 64 exactly.
            {"a-0": (6.667, 2, 11), "a-1": (6.667, 1, 11), "a-2": (6.667, 1, 10), "b-0": (20.0, 4, 32)},
            id="per run, not per shard",
        ),
        pytest.param(
            [use("a-0", "a", concurrency=48), use("b-0", "b", concurrency=16)],
            {"a-0": (30.0, 6, 48), "b-0": (10.0, 2, 16)},
            id="weighted by concurrency",
        ),
        pytest.param(
            [use("a-0", "a"), use("a-1", "a", done=True), use("a-2", "a", started=False)],
            {"a-0": (40.0, 8, 64)},
            id="finished and not yet started shards get nothing",
        ),
        pytest.param(
            [use(f"a-{i}", "a") for i in range(10)],
            {f"a-{i}": (4.0, int(i < 8), 6 + int(i < 4)) for i in range(10)},
            id="more shards than burst: some get 0, the sum stays the limit",
        ),
    ],
)
def test_shares_of_the_limit(shards: list[ShardUse], expected: dict[str, Any]) -> None:
    assert limits(targets(provider(**LIMITS).spec, shards, 40.0)) == expected


def test_more_shards_than_max_in_flight_never_exceed_it() -> None:
    shards = [use(f"{run}-{i}", run, concurrency=c) for run, c in (("a", 32), ("b", 7)) for i in range(5)]
    spec = provider(rateLimit={"requestsPerSecond": 10, "burst": 3}, maxInFlight=4).spec
    shares = targets(spec, shards, 10.0)
    assert sum(s.in_flight or 0 for s in shares.values()) == 4
    assert sum(s.burst for s in shares.values()) == 3
    assert min(s.in_flight or 0 for s in shares.values()) == 0


def test_after_a_restart_the_rate_goes_on_from_the_one_last_shared_out() -> None:
    state = AllocatorState.resumed(ProviderStatus(effective_requests_per_second=12.0), 100.0)
    assert effective_rate(provider(**LIMITS).spec, [use("a-0", "a")], state, 101.0) == 12.0
    # ... and recovers from there after 10 s without 429s.
    assert effective_rate(provider(**LIMITS).spec, [use("a-0", "a")], state, 111.0) == 14.0


def test_a_provider_without_limits_gives_unlimited_shares() -> None:
    shares = targets(
        provider().spec, [use("a-0", "a")], effective_rate(provider().spec, [], AllocatorState(), 0)
    )
    assert limits(shares) == {"a-0": (None, 1, None)}


def test_a_new_shard_gets_its_share_only_after_the_others_were_lowered() -> None:
    spec, state = provider(**LIMITS).spec, AllocatorState()
    first = allocate(spec, [use("a-0", "a")], state, clock=0.0)
    assert [(n, s.rps, s.epoch) for n, s in first] == [("a-0", 40.0, 1)]
    both = [use("a-0", "a", share=first[0][1]), use("b-0", "b")]
    lowered = allocate(spec, both, state, clock=1.0)
    assert [(n, s.rps) for n, s in lowered] == [("a-0", 20.0)]  # b-0 waits: a-0 may still run at 40
    assert allocate(spec, both, state, clock=2.0) == []
    # a-0's worker reports the lowered epoch in status: now b-0 gets its share.
    both = [use("a-0", "a", share=lowered[0][1], share_seen=2), use("b-0", "b")]
    raised = allocate(spec, both, state, clock=2.5)
    assert [(n, s.rps, s.epoch) for n, s in raised] == [("b-0", 20.0, 3)]
    assert allocate(spec, both, state, clock=3.6) == []
    # b finishes: a gets the whole limit back at once (a raise with nothing lowered).
    done = [use("a-0", "a"), use("b-0", "b", done=True)]
    assert [(n, s.rps) for n, s in allocate(spec, done, state, clock=4.6)] == [("a-0", 40.0)]
    assert set(state.written) == {"a-0"}


def test_new_429s_cut_the_rate_for_everyone_and_it_recovers_without_them() -> None:
    spec, state = provider(**LIMITS).spec, AllocatorState()
    rates = []
    # (clock, cumulative 429s over the shards)
    for clock, throttled in [(0, 5), (1, 5), (2, 9), (3, 12), (5, 14), (6, 14), (16, 14), (26, 14), (36, 14)]:
        rates.append(effective_rate(spec, [use("a-0", "a", throttled=throttled)], state, float(clock)))
    # The first pass is the base; a cut at most once per cooldown; +5 % of 40 each 10 s without 429s.
    assert rates == [40.0, 40.0, 28.0, 28.0, 19.6, 19.6, 21.6, 23.6, 25.6]


def test_the_cut_never_goes_below_one_request_per_second() -> None:
    spec, state = provider(rateLimit={"requestsPerSecond": 2}).spec, AllocatorState()
    rate = effective_rate(spec, [use("a-0", "a")], state, 0.0)
    for i in range(1, 10):
        rate = effective_rate(spec, [use("a-0", "a", throttled=i)], state, i * 10.0)
    assert rate == 1.0


def test_a_worker_that_never_acknowledges_delays_raises_at_most_a_few_seconds() -> None:
    spec, state = provider(**LIMITS).spec, AllocatorState()
    first = allocate(spec, [use("a-0", "a")], state, clock=0.0)
    both = [use("a-0", "a", share=first[0][1]), use("b-0", "b")]
    assert [n for n, _ in allocate(spec, both, state, clock=1.0)] == ["a-0"]
    assert allocate(spec, both, state, clock=5.0) == []
    assert [n for n, _ in allocate(spec, both, state, clock=6.0)] == ["b-0"]
