"""Aggregation of shard summaries into a run's counts, phase and conditions."""

from __future__ import annotations

from decimal import Decimal

from oxygen.api.run import RunSpec, RunStatus
from oxygen.api.runshard import ItemResult, ShardSummary
from oxygen.status.run import conditions_for, derive_phase, item_counts
from oxygen.status.shard import shard_phase, summarize
from oxygen.status.views import JobView, ShardView

SPEC = RunSpec.model_validate({"items": [], "producer": {"provider": "p", "builtin": "echo"}})


def view(name: str, **summary: int) -> ShardView:
    return ShardView(
        name=name, round=0, index=0, execute=True, item_count=0, provider="p", summary=ShardSummary(**summary)
    )


def test_summary_ignores_superseded_items_and_sums_credits_exactly() -> None:
    items = [
        ItemResult(id="0", status="succeeded", attempt_count=1, credits_used=Decimal("0.1")),
        ItemResult(id="1", status="succeeded", attempt_count=2, credits_used=Decimal("0.2")),
        ItemResult(
            id="2", status="failed", attempt_count=3, error_class="http_4xx", superseded_by="x-r1-0000"
        ),
        ItemResult(id="3", status="failed", attempt_count=1, error_class="http_4xx"),
    ]
    s = summarize(items)
    assert (s.succeeded, s.failed, s.attempts) == (2, 1, 4)
    assert s.credits_used == Decimal("0.3")
    assert s.error_classes == {"http_4xx": 1}
    assert shard_phase(items) == "Succeeded"
    assert shard_phase([ItemResult(id="0", status="pending")]) == "Pending"


def test_counts_treat_unseen_items_as_pending() -> None:
    counts = item_counts([view("a", succeeded=3, failed=1)], items_total=10)
    assert (counts.succeeded, counts.failed, counts.pending, counts.unfinished) == (3, 1, 6, 6)


def test_phases() -> None:
    prev = RunStatus(phase="running")
    done_ok = item_counts([view("a", succeeded=2)], 2)
    done_failed = item_counts([view("a", succeeded=1, failed=1)], 2)
    busy = item_counts([view("a", succeeded=1, pending=1)], 2)
    running_job = {"a": JobView(name="a", active=1)}
    assert derive_phase(SPEC, prev, done_ok, {}, True, True) == "succeeded"
    assert derive_phase(SPEC, prev, done_failed, {}, True, True) == "completed"
    assert derive_phase(SPEC, prev, busy, running_job, True, True) == "running"
    paused = SPEC.model_copy(update={"paused": True})
    assert derive_phase(paused, prev, busy, running_job, True, True) == "running"  # pods still stopping
    assert derive_phase(paused, prev, busy, {"a": JobView(name="a", suspend=True)}, True, True) == "paused"
    canceled = SPEC.model_copy(update={"cancel": True})
    assert derive_phase(canceled, prev, busy, {}, True, False) == "running"
    assert derive_phase(canceled, prev, busy, {}, True, True) == "canceled"
    assert derive_phase(SPEC, RunStatus(phase="failed"), done_ok, {}, True, True) == "failed"


def test_conditions_keep_transition_time_when_unchanged() -> None:
    counts = item_counts([view("a", succeeded=1)], 1)
    first = conditions_for("running", counts, "", [], "t1", 1)
    second = conditions_for("running", counts, "", first, "t2", 1)
    assert {c.type: c.last_transition_time for c in second}["Reconciling"] == "t1"
    third = conditions_for("succeeded", counts, "", second, "t3", 1)
    by_type = {c.type: c for c in third}
    assert by_type["Succeeded"].status == "True"
    assert by_type["Succeeded"].last_transition_time == "t3"
    assert by_type["Complete"].status == "True"
    assert by_type["Reconciling"].status == "False"
