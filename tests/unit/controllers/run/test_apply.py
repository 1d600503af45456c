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


# -- a name already taken: ours only if we control it (claim.py) --------------------------------------

LIVE_OTHER = b.run_body(name="other", uid="other-uid")
DELETING_OTHER = b.run_body(name="other", uid="other-uid")
DELETING_OTHER["metadata"]["deletionTimestamp"] = b.NOW


def _foreign_shard(owner: dict[str, object] | None) -> dict[str, object]:
    """The round-0 shard of this run's name, as a stranger (or a deleted namesake) left it."""
    body = b.shard_body()
    if owner is None:
        body["metadata"]["ownerReferences"] = []
        body["spec"]["runUid"] = "nobody"
    else:
        meta = owner["metadata"]
        assert isinstance(meta, dict)
        body["metadata"]["ownerReferences"][0].update(name=meta["name"], uid=meta["uid"])
        body["spec"]["runUid"] = meta["uid"]
    return body


@pytest.mark.parametrize(
    ("existing", "runs", "outcome"),
    [
        (b.shard_body(), {}, None),  # ours, from an earlier pass
        (_foreign_shard(b.run_body(uid="old-uid")), {"leads": b.run_body()}, OwnershipConflict),
        (_foreign_shard(LIVE_OTHER), {}, OwnershipConflict),  # its Run is gone: GC will remove it
        (_foreign_shard(LIVE_OTHER), {"other": DELETING_OTHER}, OwnershipConflict),
        (_foreign_shard(LIVE_OTHER), {"other": LIVE_OTHER}, "ShardNameTaken"),
        (_foreign_shard(None), {}, "ShardNameTaken"),
    ],
    ids=["ours", "deleted-namesake", "owner-gone", "owner-deleting", "owner-alive", "no-owner"],
)
def test_a_taken_shard_name_is_adopted_only_when_this_run_controls_it(
    existing: dict[str, object], runs: dict[str, dict[str, object]], outcome: object
) -> None:
    kube = RecordingKube()
    kube.shards["leads-r0-0000"] = existing
    kube.runs = runs
    state = RunState(status=RunStatus())
    plan = Plan(shards=[NewShard(b.shard_body())])
    if outcome is None:
        Applier(kube).apply(plan, b.run_body(), state)  # type: ignore[arg-type]
        assert "leads-r0-0000" in state.fresh_shards
        return
    if outcome is OwnershipConflict:
        with pytest.raises(OwnershipConflict) as waits:
            Applier(kube).apply(plan, b.run_body(), state)  # type: ignore[arg-type]
        assert waits.value.namesake  # the pass retries later; the run does not fail
    else:
        with pytest.raises(RunFailure) as failed:
            Applier(kube).apply(plan, b.run_body(), state)  # type: ignore[arg-type]
        assert failed.value.reason == outcome
        assert "leads-r0-0000" in failed.value.message
    assert state.fresh_shards == {}


def _job(name: str, shard_uid: str | None) -> dict[str, object]:
    refs = [{"apiVersion": "oxygen.dev/v1alpha1", "kind": "RunShard", "name": "leads-r0-0000",
             "uid": shard_uid, "controller": True}] if shard_uid else []  # fmt: skip
    return {"metadata": {"name": name, "ownerReferences": refs}}


@pytest.mark.parametrize(
    ("existing", "outcome"),
    [
        (None, "created"),
        (_job("leads-r0-0000", "uid-leads-r0-0000"), "ours"),  # created by an earlier pass
        (_job("leads-r0-0000", "old-shard-uid"), OwnershipConflict),  # a deleted namesake's Job
        (_job("leads-r0-0000", None), "JobNameTaken"),  # someone else's Job under that name
    ],
    ids=["created", "ours", "namesake", "squatter"],
)
def test_a_taken_job_name_is_accepted_only_when_this_shard_controls_it(
    existing: dict[str, object] | None, outcome: object
) -> None:
    kube = RecordingKube()
    kube.shards["leads-r0-0000"] = b.shard_body()  # this run's shard, uid shard-0-0
    if existing is not None:
        kube.jobs["leads-r0-0000"] = existing
    state = RunState(status=RunStatus())
    plan = Plan(create_jobs=[_job("leads-r0-0000", "uid-leads-r0-0000")])
    if outcome in ("created", "ours"):
        Applier(kube).apply(plan, b.run_body(), state)  # type: ignore[arg-type]
        # Only a Job this pass created is remembered as running; an existing one is as the index says.
        assert ("leads-r0-0000" in state.fresh_jobs) == (outcome == "created")
        return
    if outcome is OwnershipConflict:
        with pytest.raises(OwnershipConflict):
            Applier(kube).apply(plan, b.run_body(), state)  # type: ignore[arg-type]
    else:
        with pytest.raises(RunFailure) as failed:
            Applier(kube).apply(plan, b.run_body(), state)  # type: ignore[arg-type]
        assert failed.value.reason == outcome
    assert state.fresh_jobs == {}


def test_a_job_owned_by_another_live_shard_fails_the_run() -> None:
    kube = RecordingKube()
    kube.shards["leads-r0-0000"] = b.shard_body()
    kube.jobs["leads-r0-0000"] = _job("leads-r0-0000", "uid-leads-r0-0000")
    plan = Plan(create_jobs=[_job("leads-r0-0000", "mine-uid")])
    with pytest.raises(RunFailure) as failed:
        Applier(kube).apply(plan, b.run_body(), RunState(status=RunStatus()))  # type: ignore[arg-type]
    assert failed.value.reason == "JobNameTaken"


def _orphan(items: tuple[str, ...]) -> dict[str, object]:
    """Our shard of round 1, created by a pass whose status write failed (so it never ran)."""
    return b.shard_body(round_=1, ids=list(items), items=[""] * len(items))


@pytest.mark.parametrize(
    ("left", "planned", "replaced"),
    [
        (("1", "2"), ("1", "2"), False),  # the same plan again: taken over as it is
        (("1", "2"), ("1", "2", "3"), True),  # planned again with another item: replaced
    ],
    ids=["same-plan", "other-plan"],
)
def test_a_shard_of_an_unrecorded_round_is_reused_only_when_planned_the_same(
    left: tuple[str, ...], planned: tuple[str, ...], replaced: bool
) -> None:
    kube = RecordingKube()
    kube.shards["leads-r1-0000"] = _orphan(left)
    state = RunState(status=RunStatus())
    Applier(kube).apply(Plan(shards=[NewShard(_orphan(planned))]), b.run_body(), state)  # type: ignore[arg-type]
    assert (("delete:runshards", "leads-r1-0000") in kube.calls) == replaced
    spec = kube.shards["leads-r1-0000"]["spec"]
    assert [i["id"] for i in spec["items"]] == list(planned)
    assert state.fresh_shards["leads-r1-0000"][1].item_count == len(planned)
