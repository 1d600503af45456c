"""Tenancy attacks on the Run controller, as a worker identity would try them (issue 12, findings 2
and 3). Each test passes only when the attack fails; the benign path (the run's own worker reading
its shards and writing their status) keeps working in every run of the suite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from oxygen.api.common import API_VERSION, GROUP, VERSION
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ECHO = {"provider": "echo", "builtin": "echo"}


def identity(cluster: LocalCluster, who: str) -> client.ApiClient:
    """A client that acts as `who` (the admin of the test cluster impersonates it)."""
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    # A worker's RoleBinding names its ServiceAccount, which matches this user name.
    api.set_default_header("Impersonate-User", who)
    return api


@pytest.fixture
def other_namespace(api: client.ApiClient) -> Iterator[str]:
    """A second tenant's namespace."""
    core = client.CoreV1Api(api)
    name = f"tenant-b-{uuid.uuid4().hex[:5]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_for(
        lambda: core.read_namespaced_service_account("default", name), timeout=30, what="default account"
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")


def items(n: int) -> list[dict[str, Any]]:
    return [{"inputs": {"i": i}} for i in range(n)]


def test_a_worker_cannot_rewrite_its_shards_spec(cluster: LocalCluster, runs: Runs) -> None:
    """Finding 2: a worker that could rename its shard's run would get its next Job run as another
    run's ServiceAccount. It may read its shards and write their status, not their spec."""
    runs.create("alpha", {"items": items(4), "producer": ECHO, "batchSize": 2})
    runs.wait_phase("alpha", "succeeded")
    shard = runs.shards("alpha")[0]
    name = shard["metadata"]["name"]
    worker = client.CustomObjectsApi(identity(cluster, f"system:serviceaccount:{runs.ns}:alpha-worker"))
    # The benign part of the worker's job: read its shard, write its status.
    assert (
        worker.get_namespaced_custom_object(GROUP, VERSION, runs.ns, "runshards", name)["spec"]["runName"]
        == "alpha"
    )
    worker.patch_namespaced_custom_object_status(
        GROUP, VERSION, runs.ns, "runshards", name, {"status": {"phase": shard["status"]["phase"]}}
    )
    # The attack: point the shard at another run (and so at that run's worker account).
    for change in ({"runName": "ops"}, {"runUid": "someone-else"}, {"execute": True, "items": []}):
        with pytest.raises(ApiException) as refused:
            worker.patch_namespaced_custom_object(
                GROUP, VERSION, runs.ns, "runshards", name, {"spec": change}
            )
        assert refused.value.status == 403, refused.value.body
    unchanged = runs.shards("alpha")[0]
    assert unchanged["spec"] == shard["spec"]
    # What a Job runs as comes from the Run; a hung worker is stopped at last; the worker is bounded.
    for job in runs.jobs("alpha"):
        assert job.spec.template.spec.service_account_name == "alpha-worker"
        assert job.metadata.labels["oxygen.dev/run-uid"] == runs.get("alpha")["metadata"]["uid"]
        assert job.spec.active_deadline_seconds == 24 * 3600
        assert job.spec.ttl_seconds_after_finished is None
        resources = job.spec.template.spec.containers[0].resources
        assert resources.requests == {"cpu": "50m", "memory": "64Mi"}
        assert resources.limits == {"cpu": "1", "memory": "256Mi"}


def test_a_shard_in_one_namespace_cannot_move_a_run_in_another(
    cluster: LocalCluster, api: client.ApiClient, runs: Runs, other_namespace: str
) -> None:
    """Finding 3: a shard that names another namespace's run (spec.runUid, or a controller reference
    to its uid) is ignored: the victim's phase, counts and credits stay what its own shards say."""
    victims = Runs(api, other_namespace)
    victims.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        other_namespace,
        "creditaccounts",
        {
            "apiVersion": API_VERSION,
            "kind": "CreditAccount",
            "metadata": {"name": "default"},
            "spec": {"grants": [{"id": "g", "amount": "100"}]},
        },
    )
    victims.create("victim", {"items": items(3), "producer": {**ECHO, "costPerItem": "1"}})
    victims.wait_phase("victim", "succeeded")
    # The phase is written once the shard says so; its Job may still be ending (`shards.active`).
    before = wait_for(
        lambda: (s := victims.status("victim")).get("shards", {}).get("active") == 0 and s,
        timeout=180,
        what="the victim's Job finished",
    )
    victim_uid = victims.get("victim")["metadata"]["uid"]

    runs.create("attacker", {"items": items(1), "producer": ECHO})
    runs.wait_phase("attacker", "succeeded")
    own = runs.shards("attacker")[0]
    attacker = runs.get("attacker")
    # RBAC keeps the worker from writing a shard's spec (test above); the forged shards are written
    # here with the namespace admin's rights, so the operator's matching is what is tested.
    owners = {
        "forged-owned-by-attacker": {"kind": "Run", "name": "attacker", "uid": attacker["metadata"]["uid"]},
        "forged-owned-by-victim-uid": {"kind": "Run", "name": "victim", "uid": victim_uid},
    }
    for name, owner in owners.items():
        forged = {
            "apiVersion": API_VERSION,
            "kind": "RunShard",
            "metadata": {
                "name": name,
                "labels": {"oxygen.dev/run-uid": victim_uid},
                "ownerReferences": [{"apiVersion": API_VERSION, "controller": True, **owner}],
            },
            "spec": {**own["spec"], "runName": "victim", "runUid": victim_uid, "round": 0, "index": 9},
        }
        runs.custom.create_namespaced_custom_object(GROUP, VERSION, runs.ns, "runshards", forged)
        try:
            runs.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                runs.ns,
                "runshards",
                name,
                {"status": {"phase": "Succeeded", "summary": {"failed": 1000, "creditsUsed": "999999"}}},
            )
        except ApiException as err:
            # The garbage collector may remove a shard whose owner uid is not in this namespace before
            # its status is forged: that attack is then over before it began.
            if err.status != 404:
                raise
    # Make the victim's controller recompute its status after the forgeries: a retry with nothing
    # to retry, recorded in the status.
    victims.patch("victim", {"retryFailed": 1})
    wait_for(
        lambda: victims.status("victim").get("observedRetryFailed") == 1,
        timeout=60,
        what="the victim's retry bump observed",
    )
    wait_for(
        lambda: "NothingToRetry" in {e.reason for e in victims.events("victim")},
        timeout=30,
        what="NothingToRetry on the victim",
    )
    after = victims.status("victim")
    for key in (
        "phase",
        "itemsTotal",
        "itemsSucceeded",
        "itemsFailed",
        "creditsUsed",
        "creditsReserved",
        "shards",
    ):
        assert after.get(key) == before.get(key), key
    assert after["phase"] == "succeeded"
    assert after["itemsFailed"] == 0
    assert after["creditsUsed"] == "3"
    # The attacker's own run is not moved either: a shard that names another run counts for none.
    assert runs.status("attacker")["itemsFailed"] == 0
