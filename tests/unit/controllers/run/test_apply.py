"""apply.py's order of writes, over a stub that records the calls (the API's own behaviour is tested
against the real control plane in tests/integration)."""

from __future__ import annotations

import pytest

from oxygen.api.run import RunStatus
from oxygen.controllers.run.apply import Applier
from oxygen.controllers.run.types import Event, NewShard, Plan, RunFailure, RunState
from oxygen.kube.client import OwnershipConflict
from tests.support import builders as b
from tests.support.recording_kube import RecordingKube


def _full_plan() -> Plan:
    return Plan(
        worker_identity=[("ServiceAccount", {}), ("Role", {}), ("RoleBinding", {})],
        shards=[NewShard(b.shard_body(index=1), {"items": []}), NewShard(b.shard_body(index=2))],
        shard_status=[("leads-r0-0000", {})],
        delete_jobs=["d"],
        suspend_jobs=[b.job_view("s", active=1, suspend=True)],
        resume_jobs=["r"],
        create_jobs=[{"metadata": {"name": "c"}}],
        status=RunStatus(phase="running"),
        events=[Event("Planned", "x")],
    )


def test_order_identity_shards_supersede_jobs_status_events() -> None:
    kube = RecordingKube()
    state = RunState(status=RunStatus())
    Applier(kube).apply(_full_plan(), b.run_body(), state)  # type: ignore[arg-type]
    assert kube.calls == [
        ("identity", "ServiceAccount"),
        ("identity", "Role"),
        ("identity", "RoleBinding"),
        ("create", "leads-r0-0001"),
        ("status:runshards", "leads-r0-0001"),  # a shard that skips gets its status at once
        ("create", "leads-r0-0002"),
        ("status:runshards", "leads-r0-0000"),
        ("delete", "d"),
        ("suspend", "s"),
        ("resume", "r"),
        ("job", "c"),
        ("status:runs", "leads"),
        ("event", "Planned"),
    ]
    assert state.status.phase == "running"
    assert state.status_writes == 1
    assert state.fresh_jobs["s"].suspend
    assert state.fresh_jobs["c"].active == 1
    assert {"leads-r0-0000", "leads-r0-0002"} <= set(state.fresh_shards)


def test_no_event_when_the_status_write_fails() -> None:
    kube = RecordingKube(fail="status:runs")
    state = RunState(status=RunStatus())
    with pytest.raises(RuntimeError):
        Applier(kube).apply(_full_plan(), b.run_body(), state)  # type: ignore[arg-type]
    assert ("event", "Planned") not in kube.calls
    assert state.status_writes == 0


def test_no_shard_before_its_worker_identity() -> None:
    kube = RecordingKube(fail="identity")
    with pytest.raises(RuntimeError):
        Applier(kube).apply(_full_plan(), b.run_body(), RunState(status=RunStatus()))  # type: ignore[arg-type]
    assert [c for c in kube.calls if c[0] == "create"] == []


@pytest.mark.parametrize(("namesake", "raised"), [(True, OwnershipConflict), (False, RunFailure)])
def test_identity_conflicts(namesake: bool, raised: type[Exception]) -> None:
    kube = RecordingKube(conflict=OwnershipConflict("ServiceAccount", "leads-worker", namesake))
    with pytest.raises(raised):
        Applier(kube).apply(_full_plan(), b.run_body(), RunState(status=RunStatus()))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metered", "planned", "finalizers", "calls"),
    [
        (True, True, [], [("add-finalizer:runs", "leads"), ("status:runs", "leads")]),
        (True, True, ["oxygen.dev/credits"], [("status:runs", "leads")]),
        (True, False, [], [("status:runs", "leads")]),  # waiting for credits: it holds nothing yet
        (False, True, [], [("status:runs", "leads")]),  # unmetered: nothing to fold
    ],
    ids=["metered-planned", "already-there", "not-planned", "unmetered"],
)
def test_a_planned_metered_run_gets_the_account_finalizer_before_its_status(
    metered: bool, planned: bool, finalizers: list[str], calls: list[tuple[str, str]]
) -> None:
    from oxygen.api.run import Round

    kube = RecordingKube()
    body = b.run_body()
    body["metadata"]["finalizers"] = finalizers
    rounds = [Round(round=0, reason="initial", shards=1, items=3, started_at=b.NOW)] if planned else []
    status = RunStatus(phase="running", metered=metered, rounds=rounds)
    Applier(kube).apply(Plan(status=status), body, RunState(status=RunStatus()))  # type: ignore[arg-type]
    assert kube.calls == calls
