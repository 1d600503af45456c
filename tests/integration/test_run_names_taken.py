"""A child's name is taken before the Run creates it (reviewer findings 1, 4, 5): the operator adopts a
RunShard or Job only when it controls it, against the real API server.

The squatting objects are written here with the namespace admin's rights, as a tenant who may
create RunShards or Jobs could write them, so the operator's ownership check is what is tested."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from oxygen.api.common import API_VERSION, GROUP, VERSION
from oxygen.devcluster.wait import wait_for
from oxygen.kube.client import Kube
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ECHO = {"provider": "echo", "builtin": "echo"}


def items(n: int) -> list[dict[str, Any]]:
    return [{"inputs": {"i": i}} for i in range(n)]


def failed_with(runs: Runs, name: str, reason: str) -> dict[str, Any]:
    status = runs.wait_phase(name, "failed", "succeeded")
    assert status["phase"] == "failed", status
    failed = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert failed and failed[0]["reason"] == reason, status["conditions"]
    assert [e for e in runs.events(name) if e.reason == reason and e.type == "Warning"]
    return status


def test_a_shard_name_held_by_another_live_run_fails_the_run_instead_of_adopting_it(runs: Runs) -> None:
    runs.create("holder", {"items": items(1), "producer": ECHO})
    runs.wait_phase("holder", "succeeded")
    holder = runs.get("holder")
    uid = holder["metadata"]["uid"]
    # What a long run name shortened to `taken`'s shard name would leave: a shard `holder` controls.
    foreign = {
        "apiVersion": API_VERSION,
        "kind": "RunShard",
        "metadata": {
            "name": "taken-r0-0000",
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "Run", "name": "holder", "uid": uid, "controller": True}
            ],
        },
        "spec": {
            "runName": "holder",
            "runUid": uid,
            "round": 0,
            "index": 0,
            "producer": ECHO,
            "retry": {},
            "items": [{"id": "0", "inputs": {"i": 0}}, {"id": "1", "inputs": {"i": 1}}],
        },
    }
    runs.custom.create_namespaced_custom_object(GROUP, VERSION, runs.ns, "runshards", foreign)

    runs.create("taken", {"items": items(3), "producer": ECHO})
    status = failed_with(runs, "taken", "ShardNameTaken")
    assert "taken-r0-0000" in status["message"] and "holder" in status["message"]
    assert status.get("itemsSucceeded", 0) == 0  # nothing of the foreign shard was counted
    assert runs.jobs("taken") == []
    # The foreign shard is left as it was: no Job, no status written by the operator.
    kept = runs.custom.get_namespaced_custom_object(GROUP, VERSION, runs.ns, "runshards", "taken-r0-0000")
    assert kept["spec"]["runUid"] == uid and not (kept.get("status") or {}).get("items")


def test_a_job_named_after_a_shard_by_someone_else_fails_the_run_instead_of_waiting_for_it(
    runs: Runs,
) -> None:
    squatter = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "squat-r0-0000"},
        "spec": {
            "suspend": True,  # it never runs: a Run that took it for its own would wait forever
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }
    runs.batch.create_namespaced_job(runs.ns, squatter)
    runs.create("squat", {"items": items(2), "producer": ECHO})
    status = failed_with(runs, "squat", "JobNameTaken")
    assert "squat-r0-0000" in status["message"]
    job = runs.batch.read_namespaced_job("squat-r0-0000", runs.ns)
    assert job.spec.suspend  # never resumed, never adopted
    assert not job.metadata.owner_references


def test_a_forged_job_claiming_a_runs_label_is_not_counted_for_it(runs: Runs) -> None:
    """A Job labelled with a victim's run uid and controlled by another run's shard is not the
    victim's: the paused victim starts its own Job once resumed and succeeds."""
    runs.create("attacker", {"items": items(1), "producer": ECHO})
    runs.wait_phase("attacker", "succeeded")
    own = runs.shards("attacker")[0]
    runs.create("victim", {"items": items(2), "producer": ECHO, "paused": True})
    wait_for(lambda: runs.shards("victim"), timeout=60, what="the victim's shards")
    victim_uid = runs.get("victim")["metadata"]["uid"]
    forged = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "victim-r0-0000-j1",
            "labels": {"oxygen.dev/run-uid": victim_uid, "oxygen.dev/shard": "victim-r0-0000"},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "RunShard",
                    "name": own["metadata"]["name"],
                    "uid": own["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox", "command": ["false"]}],
                }
            },
        },
    }
    runs.batch.create_namespaced_job(runs.ns, forged)
    runs.patch("victim", {"paused": False})
    status = runs.wait_phase("victim")
    assert status["phase"] == "succeeded", status
    assert status["itemsSucceeded"] == 2
    assert runs.batch.read_namespaced_job("victim-r0-0000-j1", runs.ns).spec.suspend  # never resumed


def test_a_never_run_shard_is_deleted_only_under_the_uid_the_operator_saw(
    runs: Runs, api: client.ApiClient
) -> None:
    """Kube.delete (a shard of an unrecorded round replaced or abandoned) never deletes a successor."""
    runs.create("kept", {"items": items(1), "producer": ECHO})
    runs.wait_phase("kept", "succeeded")
    shard = runs.shards("kept")[0]
    name, uid = shard["metadata"]["name"], shard["metadata"]["uid"]
    kube = Kube(api)
    with pytest.raises(ApiException) as refused:
        kube.delete("runshards", runs.ns, name, "the-uid-of-an-earlier-namesake")
    assert refused.value.status == 409  # the precondition failed: this shard is not that one
    assert runs.shards("kept")[0]["metadata"]["uid"] == uid
    kube.delete("runshards", runs.ns, name, uid)
    wait_for(lambda: not runs.shards("kept"), timeout=30, what="the shard to be deleted")
    kube.delete("runshards", runs.ns, name, uid)  # already gone: nothing to do
