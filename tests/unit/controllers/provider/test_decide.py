"""The Provider controller's views and decision: what uses a Provider, its status, Ready, Events."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.labels import LABEL_PROVIDER
from oxygen.api.provider import ProviderStatus
from oxygen.controllers.provider.decide import decide
from oxygen.controllers.provider.handlers import of_runs
from oxygen.controllers.provider.observe import Observed, ProviderState, RunUse, ShardUse, run_use, shard_use
from tests.support import builders as b


def observed(
    runs: list[RunUse], shards: list[ShardUse], secret: bool | None = True, clock: float = 10.0
) -> Observed:
    return Observed(b.provider(), runs, shards, secret, b.NOW, clock)


def shard(name: str, done: bool = False, running: int = 0, attempts: int = 0, throttled: int = 0) -> ShardUse:
    return ShardUse(name, done, running, attempts, 0, throttled_calls=throttled)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b.run_body(producer=b.provider_ref()), ("clearbit", RunUse(b.UID, True))),
        (
            b.run_body(producer=b.provider_ref(), status={"phase": "succeeded"}),
            ("clearbit", RunUse(b.UID, False)),
        ),
        (b.run_body(), None),  # an inline producer named like a Provider is not its use
    ],
    ids=["active", "finished", "inline"],
)
def test_run_use(body: dict[str, Any], expected: Any) -> None:
    assert run_use(body) == expected


def test_shard_use_reads_its_providers_label_and_summary() -> None:
    body = b.shard_body(items=["succeeded", "failed"], error_class="http_429")
    assert shard_use(body) is None
    body["metadata"]["labels"] = {LABEL_PROVIDER: "clearbit"}
    name, use = shard_use(body)  # type: ignore[misc]
    # Only the failed item ended on its 429s.
    assert name == "clearbit" and use.done and use.throttled == 1


def test_status_counts_active_runs_in_flight_rate_and_throttled() -> None:
    state = ProviderState(written=ProviderStatus(), attempts=10, at=8.0)
    runs = [RunUse("a", True), RunUse("b", True), RunUse("c", False)]
    shards = [
        shard("s0", running=3, attempts=20, throttled=1),
        shard("s1", done=True, attempts=30, throttled=5),
    ]
    decision = decide(observed(runs, shards, clock=10.0), state)
    assert decision.status is not None
    status = decision.status
    # 40 attempts since the last pass's 10, over 2 s; the finished shard's 429s no longer count.
    assert (status.runs, status.in_flight, status.requests_per_second, status.throttled) == (2, 3, 20.0, 1)
    (ready,) = status.conditions
    assert (ready.type, ready.status, ready.reason) == ("Ready", "True", "Ready")
    assert decision.events == [] and decision.attempts == 50


def test_nothing_in_use_and_nothing_changed_writes_nothing() -> None:
    state = ProviderState(written=ProviderStatus())
    first = decide(observed([], []), state)
    assert first.status is not None
    state.written = first.status
    assert decide(observed([], [], clock=20.0), state).status is None


def test_a_missing_secret_makes_it_not_ready_with_one_event() -> None:
    state = ProviderState(written=ProviderStatus())
    decision = decide(observed([], [], secret=False), state)
    assert decision.status is not None
    (ready,) = decision.status.conditions
    assert (ready.status, ready.reason) == ("False", "SecretNotFound")
    assert ready.message == 'secrets "clearbit-key" not found (spec.http.headersFrom.secretRef)'
    assert [e.reason for e in decision.events] == ["SecretNotFound"]
    state.written = decision.status
    again = decide(observed([RunUse("a", True)], [], secret=False), state)
    assert again.status is not None and again.events == []


def test_a_shard_no_run_controls_takes_no_share() -> None:
    body = b.shard_body(items=["running"])
    body["metadata"]["labels"] = {LABEL_PROVIDER: "clearbit"}
    assert shard_use(body) is not None
    # Forged: no controller, a controller of another kind, or a Run other than spec.runUid names.
    forged = [
        [],
        [{**body["metadata"]["ownerReferences"][0], "kind": "ConfigMap", "apiVersion": "v1"}],
        [{**body["metadata"]["ownerReferences"][0], "uid": "another-run"}],
    ]
    for refs in forged:
        body["metadata"]["ownerReferences"] = refs
        assert shard_use(body) is None


def test_only_shards_of_runs_naming_the_provider_get_shares() -> None:
    runs = [RunUse("a", True)]
    ours = ShardUse("a-0", False, 0, 0, 0, run_uid="a")
    theirs = ShardUse("x-0", False, 0, 0, 0, run_uid="x")
    assert of_runs(runs, [ours, theirs]) == [ours]


def test_throttled_counts_429_replies_not_items_that_ended_on_one() -> None:
    # Two items retried after 429s and succeeded, one gave up on its third 429: 5 replies, 1 item.
    shards = [ShardUse("s0", False, 0, 9, 1, throttled_calls=5)]
    status = decide(observed([RunUse("a", True)], shards), ProviderState(written=ProviderStatus())).status
    assert status is not None and status.throttled == 5
