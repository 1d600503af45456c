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
