"""status.py: counts, phase, conditions, the write rate limit and the phase-change Events."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.run import Round, RunStatus
from oxygen.controllers.run import status as run_status
from oxygen.controllers.run.types import Event, RunFailure
from tests.support import builders as b

PLANNED = [Round(round=0, reason="initial", items=3, shards=1, started_at=b.NOW)]


def _planned(phase: str = "running", **fields: Any) -> RunStatus:
    fields = {"items_total": 3, **fields}
    return RunStatus(phase=phase, rounds=list(PLANNED), **fields)


@pytest.mark.parametrize(
    ("spec", "written", "shard", "job", "cleaned_up", "phase", "event"),
    [
        ({}, "running", {"pending": 3}, {"active": 1}, True, "running", None),
        ({}, "queued", {"pending": 3}, {"active": 1}, True, "running", "Started"),
        ({}, "paused", {"running": 3}, {"active": 1}, True, "running", "Resumed"),
        ({}, "running", {"succeeded": 3}, None, True, "succeeded", "Succeeded"),
        ({}, "running", {"succeeded": 2, "failed": 1}, None, True, "completed", "Completed"),
        ({"paused": True}, "running", {"running": 3}, {"suspend": True}, True, "paused", "Paused"),
        ({"paused": True}, "running", {"running": 3}, {"suspend": True, "active": 1}, True, "running", None),
        ({"cancel": True}, "running", {"running": 3}, None, True, "canceled", "Canceled"),
        (
            {"cancel": True},
            "running",
            {"running": 3},
            {"deleting": True, "active": 1},
            False,
            "running",
            None,
        ),
    ],
    ids=[
        "running",
        "started",
        "resumed",
        "succeeded",
        "completed",
        "paused-once-no-pod-runs",
        "pausing-while-a-pod-runs",
        "canceled-once-cleaned-up",
        "canceling",
    ],
)
def test_phase_and_its_event(
    spec: dict[str, Any],
    written: str,
    shard: dict[str, Any],
    job: dict[str, Any] | None,
    cleaned_up: bool,
    phase: str,
    event: str | None,
) -> None:
    view = b.shard_view(phase="Running", **shard)
    job_views = b.jobs(b.job_view(view.name, **job)) if job is not None else {}
    obs = b.observed(b.run_body(**spec), b.shards(view), job_views, written=_planned(written))
    status = _planned(written)
    result = run_status.observed(obs, status, cleaned_up, False, "https://x/")
    assert status.phase == phase
    assert result.status is status
    assert [e.reason for e in result.events] == ([event] if event else [])


def test_counts_shards_and_stamp() -> None:
    views = b.shards(
        b.shard_view(0, phase="Succeeded", succeeded=2),
        b.shard_view(1, phase="Failed", failed=1),
        b.shard_view(2, pending=1),
    )
    obs = b.observed(b.run_body(), views, b.jobs(b.job_view("leads-r0-0002", active=1)), written=_planned())
    status = _planned(items_total=5)
    run_status.observed(obs, status, True, False, "https://oxygen.example/")
    assert (status.items_pending, status.items_succeeded, status.items_failed) == (2, 2, 1)
    assert (status.shards.total, status.shards.active, status.shards.succeeded, status.shards.failed) == (
        3,
        1,
        1,
        1,
    )
    assert status.web_url == "https://oxygen.example/runs/team-a/leads"
    assert (status.kind, status.mode, status.trigger) == ("column", "live", "user")
    assert status.finished_at is None


def test_unchanged_status_is_not_written() -> None:
    views = b.shards(b.shard_view(pending=3))
    obs = b.observed(b.run_body(), views, b.jobs(b.job_view("leads-r0-0000", active=1)), written=_planned())
    first = _planned()
    run_status.observed(obs, first, True, False, "https://x")
    again = b.observed(b.run_body(), views, b.jobs(b.job_view("leads-r0-0000", active=1)), written=first)
    assert run_status.observed(again, first.model_copy(deep=True), True, False, "https://x").status is None


@pytest.mark.parametrize(
    ("clock", "counts", "written"),
    [(100.5, {"pending": 2, "succeeded": 1}, False), (102.0, {"pending": 2, "succeeded": 1}, True)],
    ids=["within-the-interval", "after-the-interval"],
)
def test_rate_limit_of_changes_without_a_phase_change(
    clock: float, counts: dict[str, Any], written: bool
) -> None:
    previous = _planned()
    views = b.shards(b.shard_view(phase="Running", **counts))
    obs = b.observed(
        b.run_body(),
        views,
        b.jobs(b.job_view("leads-r0-0000", active=1)),
        written=previous,
        clock=clock,
        last_write=100.0,
    )
    result = run_status.observed(obs, previous.model_copy(deep=True), True, False, "https://x")
    assert (result.status is not None) == written


def test_pending_events_go_only_with_a_write() -> None:
    pending = [Event("InsufficientCredits", "retry waits", "Warning")]
    views = b.shards(b.shard_view(phase="Succeeded", succeeded=3))
    obs = b.observed(b.run_body(), views, written=_planned())
    result = run_status.observed(obs, _planned(), True, False, "https://x", pending)
    assert [e.reason for e in result.events] == ["InsufficientCredits", "Succeeded"]


def test_phase_change_is_written_at_once() -> None:
    views = b.shards(b.shard_view(phase="Succeeded", succeeded=3))
    obs = b.observed(b.run_body(), views, written=_planned(), clock=100.1, last_write=100.0)
    status = _planned()
    result = run_status.observed(obs, status, True, False, "https://x")
    assert result.status is status
    assert status.finished_at == b.NOW


def test_queued_stays_queued_until_something_executes() -> None:
    obs = b.observed(
        b.run_body(), b.shards(b.shard_view(execute=False, pending=3)), written=_planned("queued")
    )
    status = _planned("queued")
    run_status.observed(obs, status, True, False, "https://x")
    assert status.phase == "queued"


def test_ingestion_total_grows_with_the_pages_found() -> None:
    ingestion = {"provider": "p", "url": "http://x", "query": "q", "maxPages": 10}
    body = b.run_body(kind="ingestion", ingestion=ingestion)
    obs = b.observed(
        body, b.shards(b.shard_view(phase="Running", succeeded=4, pending=1)), written=_planned()
    )
    status = _planned(items_total=1)
    run_status.observed(obs, status, True, False, "https://x")
    assert status.items_total == 5


def test_failed_run_names_the_reason() -> None:
    obs = b.observed()
    status = RunStatus()
    result = run_status.failed(
        obs, status, RunFailure("ItemsSourceNotFound", "ConfigMap 'x' not found"), "https://x"
    )
    assert status.phase == "failed"
    assert status.message == "ConfigMap 'x' not found"
    assert status.started_at == status.finished_at == b.NOW
    reasons = {c.type: c.reason for c in status.conditions}
    assert reasons["Failed"] == reasons["Stalled"] == reasons["Complete"] == "ItemsSourceNotFound"
    assert reasons["Ready"] == "RunFailed"
    assert [(e.reason, e.type) for e in result.events] == [("ItemsSourceNotFound", "Warning")]


@pytest.mark.parametrize(
    ("new", "reason", "type_"),
    [("queued", "Queued", "Normal"), ("failed", "Failed", "Warning"), ("canceled", "Canceled", "Normal")],
)
def test_announce(new: str, reason: str, type_: str) -> None:
    from oxygen.status.run import ItemCounts

    event = run_status.announce("running", new, ItemCounts())  # type: ignore[arg-type]
    assert (event.reason, event.type) == (reason, type_)


@pytest.mark.parametrize(
    ("written", "shards", "rounds", "written_now"),
    [
        ("succeeded", [], 1, False),
        ("completed", [{"succeeded": 1, "failed": 1}], 1, False),
        ("succeeded", [{"pending": 3}], 1, True),
        ("succeeded", [], 2, True),
        ("running", [], 1, True),
    ],
    ids=[
        "succeeded-shards-gone",
        "completed-some-shards-gone",
        "succeeded-with-pending-items-again",
        "succeeded-new-round-planned",
        "running-shards-not-seen-yet",
    ],
)
def test_a_finished_run_whose_shards_went_keeps_its_record(
    written: str, shards: list[dict[str, Any]], rounds: int, written_now: bool
) -> None:
    # Its namespace being deleted removes the RunShards before the Run: counting what is left made
    # 300 succeeded runs `running` ("Resumed") with every item pending.
    old = _planned(written, items_succeeded=2, items_failed=1 if written == "completed" else 0)
    views = b.shards(*(b.shard_view(i, phase="Succeeded", **s) for i, s in enumerate(shards)))
    obs = b.observed(b.run_body(), views, {}, written=old)
    status = old.model_copy(deep=True)
    if rounds == 2:
        status.rounds.append(Round(round=1, reason="retry", items=1, shards=1, started_at=b.NOW))
    result = run_status.observed(obs, status, True, False, "https://x/")
    assert (result.status is not None) is written_now
    if not written_now:
        assert result.events == []
