"""rounds.py: which items a retry or promotion moves, the new round, superseding, its Events."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.run import Round, RunStatus
from oxygen.api.runshard import ItemResult, RunShard
from oxygen.controllers.run import rounds
from oxygen.credits.gate import Decision
from oxygen.planning.rounds import SKIP_SMOKE
from tests.support import builders as b

ROUND0 = [Round(round=0, reason="initial", items=3, shards=1, started_at=b.NOW)]


def _status(**fields: Any) -> RunStatus:
    return RunStatus(phase="completed", rounds=list(ROUND0), **fields)


@pytest.mark.parametrize(
    ("item", "spec", "retry", "promote"),
    [
        (ItemResult(id="0", status="failed"), {}, True, False),
        (ItemResult(id="0", status="succeeded"), {}, False, False),
        (
            ItemResult(id="0", status="skipped", error="skipped: step 'a' failed"),
            {"sequence": "steps"},
            True,
            False,
        ),
        (ItemResult(id="0", status="skipped", error="skipped: step 'a' failed"), {}, False, False),
        (ItemResult(id="0", status="skipped"), {"execute": False, "skip_reason": SKIP_SMOKE}, False, True),
        (ItemResult(id="0", status="skipped"), {"execute": False, "skip_reason": "other"}, False, False),
    ],
    ids=["failed", "succeeded", "workflow-step-skipped", "skipped-column", "smoke-skipped", "other-skip"],
)
def test_wanted(item: ItemResult, spec: dict[str, Any], retry: bool, promote: bool) -> None:
    shard = b.shard(items=["pending"], **spec)
    assert rounds.retryable(item, shard) is retry
    assert rounds.skipped_by_mode(item, shard) is promote


@pytest.mark.parametrize(
    ("spec", "phase", "observed", "wanted"),
    [
        ({"retryFailed": 1}, "completed", 0, True),
        ({"retryFailed": 1}, "succeeded", 0, True),
        ({"retryFailed": 1}, "completed", 1, False),
        ({"retryFailed": 1}, "running", 0, False),
    ],
)
def test_wants_retry(spec: dict[str, Any], phase: str, observed: int, wanted: bool) -> None:
    status = RunStatus(phase=phase, observed_retry_failed=observed)
    assert rounds.wants_retry(b.run(**spec), status) is wanted


def test_collect_moves_failed_items_and_names_their_holders() -> None:
    shards = [
        b.shard(index=0, items=["succeeded", "failed"], ids=["0", "1"]),
        b.shard(index=1, items=["failed", "failed"], ids=["2", "3"]),
        b.shard(index=2, items=["succeeded"], ids=["4"]),
    ]
    found = rounds.collect(_status(), shards, rounds.retryable)
    assert found.round == 1
    assert sorted(i.id for i, _ in found.moved) == ["1", "2", "3"]
    assert found.holders == {"leads-r0-0000", "leads-r0-0001"}
    assert found.first is not None


def test_collect_after_a_crash_finds_the_items_already_superseded_into_the_round() -> None:
    holder = b.shard(items=["failed", "failed"])
    holder.status.items[0].superseded_by = "leads-r1-0000"  # moved before the crash
    newer = b.shard(round_=1, items=["pending"])
    found = rounds.collect(_status(), [holder, newer], rounds.retryable)
    assert sorted(i.id for i, _ in found.moved) == ["0", "1"]


def test_collect_skips_items_superseded_by_earlier_rounds_and_records_workflow_steps() -> None:
    holder = b.shard(items=["failed", "succeeded"], sequence="steps")
    holder.status.items[0].superseded_by = "leads-r1-0000"
    holder.status.items[1].step = "fetch"
    holder.status.items[1].outputs = {"x": 1}
    status = _status()
    status.rounds.append(Round(round=1, reason="retry", items=1, shards=1, started_at=b.NOW))
    found = rounds.collect(status, [holder], rounds.retryable)
    assert found.moved == []
    assert found.steps == {"fetch": {"outputs": {"x": 1}}}


def test_pages_found_at_run_time_move_with_their_inputs() -> None:
    holder = b.shard(items=["failed"], ids=["0"])
    holder.status.items.append(ItemResult(id="1", status="failed", inputs={"cursor": "c1"}))
    found = rounds.collect(_status(), [holder], rounds.retryable)
    assert {i.id: s.inputs for i, s in found.moved} == {"0": {"n": "0"}, "1": {"cursor": "c1"}}


def test_start_plans_the_round_and_records_it_in_the_status() -> None:
    body = b.run_body(retryFailed=1, batchSize=2)
    shards = [b.shard(items=["failed", "failed", "failed"], ids=["10", "2", "1"])]
    status = _status(metered=True, credits_per_item=Decimal(2))
    found = rounds.collect(status, shards, rounds.retryable)
    assert rounds.cost(b.run(retryFailed=1), status, found) == Decimal(6)
    new = rounds.start(body, b.run(retryFailed=1, batchSize=2), status, found, "retry", b.settings(), b.NOW)
    names = [s.body["metadata"]["name"] for s in new.shards.shards]
    assert names == ["leads-r1-0000", "leads-r1-0001"]
    # Ordered by id, numbers as numbers; each knows its earlier attempts.
    assert [i["id"] for i in new.shards.shards[0].body["spec"]["items"]] == ["1", "2"]
    assert new.new_home == {"1": "leads-r1-0000", "2": "leads-r1-0000", "10": "leads-r1-0001"}
    # The worker's Role names the new shards and every earlier one.
    role = new.shards.worker_identity[1][1]
    assert role["rules"][0]["resourceNames"] == ["leads-r0-0000", "leads-r1-0000", "leads-r1-0001"]
    assert new.commit is status
    assert [(r.round, r.reason, r.items, r.shards) for r in status.rounds][1] == (1, "retry", 3, 2)
    assert status.phase == "running"
    assert status.credits_reserved == Decimal(6)
    assert status.ledger[-1].amount == Decimal(6)


@pytest.mark.parametrize(
    ("sequence", "context"),
    [("independent", None), ("steps", {"inputs": {"a": 1}, "steps": {"s": {"outputs": 1}}}), ("pages", None)],
)
def test_later_shape(sequence: str, context: Any) -> None:
    first = b.shard(sequence=sequence).spec
    first.context = {"inputs": {"a": 1}, "steps": {}}
    shape = rounds.later_shape(first, {"s": {"outputs": 1}})
    assert shape.sequence == sequence
    assert shape.context == context


def test_supersede() -> None:
    holder = b.shard(items=["failed", "succeeded"])
    patched = rounds.supersede(holder, {"0": "leads-r1-0000"}, 1)
    assert patched is not None
    assert [i.superseded_by for i in patched.items] == ["leads-r1-0000", None]
    assert patched.summary.failed == 0
    # Done already: nothing to write.
    assert (
        rounds.supersede(RunShard.model_validate(holder.model_dump(by_alias=True)), {"0": "leads-r1-0000"}, 1)
        is None
    )
    # A shard of the new round itself is never superseded.
    assert rounds.supersede(b.shard(round_=1, items=["failed"]), {"0": "x"}, 1) is None


@pytest.mark.parametrize(
    ("count", "decision", "reason"),
    [
        (3, None, "Retrying"),
        (0, None, "NothingToRetry"),
        (
            0,
            Decision(True, False, "default", on_insufficient="fail", reason="InsufficientCredits"),
            "InsufficientCredits",
        ),
    ],
)
def test_retry_events(count: int, decision: Decision | None, reason: str) -> None:
    assert [e.reason for e in rounds.retry_events(b.run(retryFailed=1), count, decision)] == [reason]


def test_promotion_events() -> None:
    assert [e.reason for e in rounds.promotion_events(4)] == ["Promoted"]
    assert rounds.promotion_events(0) == []


@pytest.mark.parametrize(
    ("producer", "planned_provider", "sequence", "unpriced"),
    [
        (
            {"provider": "mine", "http": {"url": "https://mine.example/"}},
            None,
            "independent",
            ["spec.producer"],
        ),
        ({"provider": "mine", "command": ["curl"]}, None, "independent", ["spec.producer"]),
        ({"provider": "mine", "http": {"url": "https://mine.example/"}}, "clearbit", "independent", []),
        ({"providerRef": {"name": "clearbit"}}, None, "independent", []),
        ({"provider": "echo", "builtin": "echo"}, None, "independent", []),  # calls nothing
        ({"provider": "mine", "http": {"url": "https://mine.example/"}}, None, "steps", []),  # as planned
    ],
    ids=["inline-http", "command", "planned-on-a-provider", "names-a-provider", "builtin", "workflow"],
)
def test_what_a_later_round_would_call_unpriced(
    producer: dict[str, object], planned_provider: str | None, sequence: str, unpriced: list[str]
) -> None:
    run = b.run(producer=producer)
    first = b.shard(sequence=sequence).spec
    status = RunStatus(planned_provider=planned_provider)
    assert rounds.unpriced(run, status, first) == unpriced


def test_a_run_planned_on_a_provider_keeps_it_whatever_the_spec_says_later() -> None:
    first = b.shard().spec
    inline = b.run(producer={"provider": "mine", "http": {"url": "https://mine.example/"}}).spec
    assert rounds.later_shape(first, {}, inline, "clearbit").producer == first.producer
    assert rounds.later_shape(first, {}, inline).producer is None  # planned inline: the spec's as it is
