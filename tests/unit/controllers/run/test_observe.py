"""observe.py: which children belong to a Run (controller ownerReference), index lag corrections."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.run import RunStatus
from oxygen.controllers.run import observe
from oxygen.controllers.run.types import RunState
from tests.support import builders as b


def _job(owner_kind: str | None, run_uid: str | None = b.UID, controller: bool = True) -> dict[str, Any]:
    refs = [{"kind": owner_kind, "uid": "s", "controller": controller, "apiVersion": "oxygen.dev/v1alpha1"}]
    return {
        "metadata": {
            "name": "j",
            "labels": {"oxygen.dev/run-uid": run_uid} if run_uid else {},
            "ownerReferences": refs if owner_kind else [],
        }
    }


def _retarget(body: dict[str, Any], **changes: Any) -> dict[str, Any]:
    ref = body["metadata"]["ownerReferences"][0]
    ref.update(changes.pop("ref", {}))
    body["spec"].update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "owner"),
    [
        (b.shard_body(), b.UID),
        (_retarget(b.shard_body(), runUid="victim"), None),
        (_retarget(b.shard_body(), ref={"uid": "victim"}), None),
        (_retarget(b.shard_body(), ref={"controller": False}), None),
        (_retarget(b.shard_body(), ref={"kind": "Workflow"}), None),
        (_retarget(b.shard_body(), ref={"apiVersion": "evil.example/v1"}), None),
    ],
    ids=[
        "owned",
        "spec-names-another-run",
        "owner-is-another-run",
        "not-controller",
        "not-a-run",
        "other-group",
    ],
)
def test_shard_run(body: dict[str, Any], owner: str | None) -> None:
    assert observe.shard_run(body) == owner


@pytest.mark.parametrize(
    ("body", "owner"),
    [
        (_job("RunShard"), b.UID),
        (_job("RunShard", run_uid=None), None),
        (_job("ReplicaSet"), None),
        (_job("RunShard", controller=False), None),
        (_job(None), None),
    ],
    ids=["shard-job", "no-run-label", "other-controller", "not-controller", "no-owner"],
)
def test_job_run(body: dict[str, Any], owner: str | None) -> None:
    assert observe.job_run(body) == owner


def test_merge_shards_prefers_what_this_daemon_wrote_until_the_index_catches_up() -> None:
    state = RunState(status=RunStatus())
    fresh = b.shard_body(items=["succeeded"])
    fresh["metadata"]["resourceVersion"] = "9"
    observe.remember_shard(state, fresh)
    stale = (5, b.shard_view(pending=1))
    assert observe.merge_shards([stale], state)["leads-r0-0000"].phase == "Succeeded"
    caught_up = (9, b.shard_view(phase="Succeeded", succeeded=1))
    assert observe.merge_shards([caught_up], state)["leads-r0-0000"] == caught_up[1]
    assert state.fresh_shards == {}


def test_merge_jobs_keeps_created_jobs_until_indexed() -> None:
    state = RunState(status=RunStatus(), fresh_jobs={"a": b.job_view("a", active=1)})
    assert set(observe.merge_jobs([], state)) == {"a"}
    assert observe.merge_jobs([b.job_view("a")], state)["a"].active == 0
    assert state.fresh_jobs == {}


def test_resource_version() -> None:
    assert observe.resource_version({"metadata": {"resourceVersion": "12"}}) == 12
    assert observe.resource_version({"metadata": {"resourceVersion": "x"}}) == 0


def test_observe_reads_the_state() -> None:
    state = RunState(status=RunStatus(phase="running"), last_write=3.0)
    obs = observe.observe(b.run_body(), [(1, b.shard_view())], [b.job_view("leads-r0-0000")], state)
    assert obs.run.metadata.uid == b.UID
    assert set(obs.shards) == set(obs.jobs) == {"leads-r0-0000"}
    assert obs.written.phase == "running"
    assert obs.last_write == 3.0


SHARD = "leads-r0-0000"


@pytest.mark.parametrize(
    ("job", "counted"),
    [
        (b.job_view(SHARD), True),
        (b.job_view(f"{SHARD}-j1"), True),  # a replacement, controlled by the same shard
        (b.job_view(SHARD, owner_uid=""), False),  # no RunShard controls it
        (b.job_view(SHARD, owner_uid="uid-of-another-runs-shard"), False),  # a forged Job
        (b.job_view(SHARD, shard="leads-r0-0001"), False),  # its label names another shard
        (b.job_view(SHARD, shard=""), False),  # no shard label
    ],
    ids=["own", "replacement", "no-owner", "foreign-owner", "label-disagrees", "no-label"],
)
def test_a_job_counts_only_when_one_of_the_runs_shards_controls_it(job: Any, counted: bool) -> None:
    state = RunState(status=RunStatus(phase="running"))
    obs = observe.observe(b.run_body(), [(1, b.shard_view())], [job], state)
    assert (job.name in obs.jobs) == counted


def test_job_views_carry_their_owner_and_shard_label() -> None:
    from oxygen.status.views import job_view, shard_view

    body = b.shard_body()
    assert shard_view(body).uid == b.shard_uid(SHARD)
    job = {
        "metadata": {
            "name": SHARD,
            "labels": {"oxygen.dev/shard": SHARD},
            "ownerReferences": [{"kind": "RunShard", "uid": b.shard_uid(SHARD), "controller": True}],
        }
    }
    view = job_view(job)
    assert (view.owner_uid, view.shard) == (b.shard_uid(SHARD), SHARD)


class _Jobs:
    def __init__(self, *jobs: dict[str, Any]) -> None:
        self.found = list(jobs)

    def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return self.found


def test_cancel_waits_only_for_jobs_the_runs_shards_control() -> None:
    own = {
        "metadata": {
            "name": SHARD,
            "labels": {"oxygen.dev/shard": SHARD},
            "ownerReferences": [{"kind": "RunShard", "uid": b.shard_uid(SHARD), "controller": True}],
        }
    }
    forged = {
        "metadata": {
            "name": f"{SHARD}-j1",
            "labels": {"oxygen.dev/shard": SHARD},
            "ownerReferences": [{"kind": "RunShard", "uid": "someone-elses", "controller": True}],
        }
    }
    reader = observe.Reader(_Jobs(own, forged))  # type: ignore[arg-type]
    assert reader.jobs_left(b.run(), b.shards(b.shard_view())) == [SHARD]
