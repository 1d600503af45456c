"""execution/waterfall.py and its planning: providers in order until a non-empty answer, retries per
provider, credits per call made, per-provider calls/hits/credits in the shard summary."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.run import Producer, Retry
from oxygen.api.runshard import ItemResult, RunShard, RunShardSpec, RunShardStatus, ShardItem
from oxygen.controllers.run import plan, preflight
from oxygen.controllers.run.types import RunFailure
from oxygen.execution.headers import run_env, secret_values, waterfall_headers
from oxygen.execution.item_calls import ItemCall, PermanentError, ProducerResult, RetryableError
from oxygen.execution.jobs import WorkerDefaults, shard_job
from oxygen.execution.waterfall import WaterfallProducer, WaterfallProvider, WaterfallResult, is_empty
from oxygen.execution.worker import ShardExecutor
from oxygen.planning.rounds import initial_groups, shard_bodies
from oxygen.status.shard import summarize
from tests.support import builders as b

CALL = ItemCall(run_name="r", run_uid="u", item_id="0", row_id=None, inputs={}, attempt=1)


@dataclass
class Scripted:
    """Answers in turn: a ProducerResult, or an exception raised."""

    answers: list[Any]
    calls: int = 0
    closed: bool = field(default=False)

    async def call(self, call: ItemCall) -> ProducerResult:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, ProducerResult)
        return answer

    async def close(self) -> None:
        self.closed = True


async def _no_sleep(_: float) -> None:
    return None


def run(
    providers: Sequence[tuple[str, list[Any], str]], attempts: int = 2
) -> tuple[ProducerResult, list[Scripted]]:
    scripted = [Scripted(answers) for _, answers, _ in providers]
    waterfall = WaterfallProducer(
        [
            WaterfallProvider(name, s, Decimal(price), Retry(max_attempts=attempts, backoff_seconds=0))
            for (name, _, price), s in zip(providers, scripted, strict=True)
        ],
        sleep=_no_sleep,
    )
    return asyncio.run(waterfall.call(CALL)), scripted


def ok(outputs: Any, cost: str | None = None) -> ProducerResult:
    return ProducerResult(outputs=outputs, cost=Decimal(cost) if cost is not None else None)


@pytest.mark.parametrize(
    ("outputs", "empty"),
    [(None, True), ({}, True), ([], True), (0, False), ("", False), ({"a": 1}, False), ([0], False)],
)
def test_what_is_empty(outputs: Any, empty: bool) -> None:
    assert is_empty(outputs) is empty


@pytest.mark.parametrize(
    ("providers", "answered", "result", "cost", "tallies"),
    [
        # The first answers: the others are never called.
        ([("a", [ok({"x": 1})], "1"), ("b", [ok({"y": 2})], "2")], "a", {"x": 1}, "1", [("a", 1, "1", True)]),
        # Empty, then an answer: both charged.
        (
            [("a", [ok({})], "1"), ("b", [ok({"y": 2})], "2")],
            "b",
            {"y": 2},
            "3",
            [("a", 1, "1", False), ("b", 1, "2", True)],
        ),
        # A retryable failure is retried (2 attempts), then the next provider; failed calls cost nothing.
        (
            [("a", [RetryableError("503", "http_5xx")], "1"), ("b", [ok([1], "0.25")], "2")],
            "b",
            [1],
            "0.25",
            [("a", 2, "0", False), ("b", 1, "0.25", True)],
        ),
        # Retried once, then answered.
        (
            [("a", [RetryableError("503", "http_5xx"), ok({"x": 1})], "1")],
            "a",
            {"x": 1},
            "1",
            [("a", 2, "1", True)],
        ),
        # A permanent failure moves on at once.
        (
            [("a", [PermanentError("400", "http_4xx")], "1"), ("b", [ok({"y": 2})], "2")],
            "b",
            {"y": 2},
            "2",
            [("a", 1, "0", False), ("b", 1, "2", True)],
        ),
        # Nobody answers non-empty: the last answer, no provider.
        (
            [("a", [ok({})], "1"), ("b", [ok(None)], "2")],
            None,
            None,
            "3",
            [("a", 1, "1", False), ("b", 1, "2", False)],
        ),
    ],
)
def test_providers_in_order_until_a_non_empty_answer(
    providers: list[tuple[str, list[Any], str]],
    answered: str | None,
    result: Any,
    cost: str,
    tallies: list[tuple[str, int, str, bool]],
) -> None:
    got, _ = run(providers)
    assert isinstance(got, WaterfallResult)
    assert got.outputs == {"provider": answered, "result": result}
    assert got.cost == Decimal(cost)
    assert [(c.provider, c.attempts, c.credits_used, c.hit) for c in got.calls] == [
        (name, n, Decimal(credits), hit) for name, n, credits, hit in tallies
    ]


def test_every_provider_failing_fails_the_item() -> None:
    with pytest.raises(PermanentError) as failed:
        run(
            [("a", [RetryableError("503", "http_5xx")], "1"), ("b", [PermanentError("bad", "http_4xx")], "2")]
        )
    assert (
        failed.value.error_class == "http_4xx"
        and "every provider of the waterfall failed" in failed.value.message
    )


def test_the_summary_counts_each_providers_calls_hits_and_credits() -> None:
    got, _ = run(
        [("a", [ok({})], "1"), ("b", [RetryableError("x", "http_5xx")], "2"), ("c", [ok({"z": 1})], "3")]
    )
    assert isinstance(got, WaterfallResult)
    item = ItemResult(
        id="0", status="succeeded", credits_used=got.cost or Decimal(0), provider_calls=list(got.calls)
    )
    tallies = summarize([item]).by_provider
    assert {k: (t.attempts, t.hits, t.succeeded, t.credits_used) for k, t in tallies.items()} == {
        "a": (1, 0, 0, Decimal(1)),
        "b": (2, 0, 0, Decimal(0)),
        "c": (1, 1, 1, Decimal(3)),
    }


FOUND = {"a": b.provider(), "b": b.provider()}


def test_planning_resolves_each_provider_and_prices_the_estimate() -> None:
    run_ = b.run(producer={"waterfall": [{"providerRef": {"name": "a"}}, {"providerRef": {"name": "b"}}]})
    resolved = plan.resolve(run_, plan.Sources(providers=FOUND, secrets={"clearbit-key": True}))
    producer = resolved.shape.producer
    assert producer is not None and producer.waterfall is not None
    assert [(s.provider, s.provider_ref, s.cost_per_item) for s in producer.waterfall] == [
        ("a", None, Decimal(2)),
        ("b", None, Decimal(2)),
    ]
    assert all(s.http is not None and s.retry == resolved.shape.retry for s in producer.waterfall)
    assert resolved.unit_cost == Decimal(4) and resolved.unpriced == ()
    assert preflight.provider_names(preflight.uses(run_, None)) == ["a", "b"]


def test_a_missing_waterfall_provider_fails_the_run() -> None:
    run_ = b.run(producer={"waterfall": [{"providerRef": {"name": "a"}}, {"providerRef": {"name": "nope"}}]})
    with pytest.raises(RunFailure) as failure:
        plan.resolve(run_, plan.Sources(providers={**FOUND, "nope": None}, secrets={"clearbit-key": True}))
    assert failure.value.reason == "ProviderNotFound"
    assert (
        failure.value.message
        == 'providers.oxygen.dev "nope" not found (spec.producer.waterfall[1].providerRef)'
    )


def test_each_providers_header_secret_reaches_only_its_calls() -> None:
    run_ = b.run(producer={"waterfall": [{"providerRef": {"name": "a"}}, {"providerRef": {"name": "b"}}]})
    body = b.run_body(
        producer={"waterfall": [{"providerRef": {"name": "a"}}, {"providerRef": {"name": "b"}}]}
    )
    resolved = plan.resolve(run_, plan.Sources(providers=FOUND, secrets={"clearbit-key": True}))
    (shard_body,) = shard_bodies(
        body, run_.spec, 0, initial_groups(run_.spec, resolved.items), resolved.shape
    )
    shard_body["metadata"]["uid"] = "shard-uid"
    job = shard_job(run_, RunShard.model_validate(shard_body), shard_body, False, WorkerDefaults())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert [(e["prefix"], e["secretRef"]["name"]) for e in container["envFrom"]] == [
        ("OXYGEN_WATERFALL0_HEADER_", "clearbit-key"),
        ("OXYGEN_WATERFALL1_HEADER_", "clearbit-key"),
    ]
    env = {
        "OXYGEN_WATERFALL0_HEADER_X-Api-Key": "k0",
        "OXYGEN_WATERFALL1_HEADER_X-Api-Key": "k1",
        "PATH": "/bin",
    }
    assert waterfall_headers(run_env(env), 0) == {"X-Api-Key": "k0"}
    assert waterfall_headers(run_env(env), 1) == {"X-Api-Key": "k1"}
    assert sorted(secret_values(env)) == ["k0", "k1"]  # redacted from everything a worker writes


@dataclass
class StopsTheWorker:
    """A provider whose call lands while the worker is being stopped (SIGTERM, a pause)."""

    stop: threading.Event
    answer: Any
    calls: int = 0

    async def call(self, call: ItemCall) -> ProducerResult:
        self.calls += 1
        self.stop.set()
        if isinstance(self.answer, Exception):
            raise self.answer
        assert isinstance(self.answer, ProducerResult)
        return self.answer

    async def close(self) -> None:
        return None


def one_item_shard() -> RunShard:
    spec = RunShardSpec(
        run_name="r",
        run_uid="u",
        round=0,
        index=0,
        producer=Producer(provider="p", builtin="echo"),
        retry=Retry(max_attempts=3, backoff_seconds=30),
        items=[ShardItem(id="i0", inputs={})],
    )
    return RunShard(spec=spec)


@pytest.mark.parametrize(
    "first_answer",
    [ok(None), RetryableError("busy", "http_503"), PermanentError("bad", "http_400")],
    ids=["empty-moves-on", "retryable-retries", "failed-moves-on"],
)
def test_no_waterfall_call_starts_after_the_stop_is_observed(first_answer: Any) -> None:
    stop = threading.Event()
    first = StopsTheWorker(stop, first_answer)
    second = Scripted([ok({"hit": True})])
    waterfall = WaterfallProducer(
        [
            WaterfallProvider("a", first, Decimal(1), Retry(max_attempts=3, backoff_seconds=30)),
            WaterfallProvider("b", second, Decimal(1), Retry(max_attempts=3, backoff_seconds=30)),
        ]
    )
    # Real clock, the worker's own interruptible sleep: a 30 s backoff would show as a slow test.
    outcome = ShardExecutor(one_item_shard(), waterfall, Flushes(), stop=stop).run()
    assert outcome.stopped
    assert (first.calls, second.calls) == (1, 0)
    item = outcome.status.items[0]
    # Abandoned, not failed: the next pod redoes the item.
    assert (item.status, item.attempt_count) == ("pending", 0)


class Flushes(list[RunShardStatus]):
    def __call__(self, status: RunShardStatus) -> None:
        self.append(status)
