"""Deleting a Run never refunds its credits (issue 19, finding 6): its account folds the run's
figures in before the Run goes away, and `oxygen billing ledger` still shows its charges."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from oxygen.credits.ledger import RETIRE_FINALIZER
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.integration.test_credits import account, account_status, identity_holds
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

D = Decimal


def gone(runs: Runs, name: str) -> bool:
    try:
        runs.get(name)
    except ApiException as err:
        return bool(err.status == 404)
    return False


def ledger(cluster: LocalCluster, namespace: str, account_name: str) -> list[dict[str, Any]]:
    flags = ["--kubeconfig", str(cluster.kubeconfig), "-n", namespace]
    done = subprocess.run(
        [sys.executable, "-m", "oxygen", "billing", "ledger", "--account", account_name, "--json", *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def items(n: int) -> list[dict[str, Any]]:
    return [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(n)]


@pytest.mark.slow
def test_deleting_runs_keeps_their_charges(
    cluster: LocalCluster, runs: Runs, operator: OperatorProcess
) -> None:
    account(runs, grants=[{"id": "plan", "amount": "100"}])
    looks: list[dict[str, Any]] = []

    def look() -> dict[str, Any]:
        status = account_status(runs)
        looks.append(status)
        return status

    # A finished run captured 50: deleting it leaves captured 50 and available 50.
    runs.create(
        "done", {"items": items(5), "producer": {"provider": "echo", "builtin": "echo", "costPerItem": "10"}}
    )
    assert runs.wait_phase("done")["phase"] == "succeeded"
    wait_for(lambda: look().get("captured") == "50", timeout=60, what="the account to capture 50")
    uid = runs.get("done")["metadata"]["uid"]
    assert RETIRE_FINALIZER in runs.get("done")["metadata"]["finalizers"]
    runs.custom.delete_namespaced_custom_object("oxygen.dev", "v1alpha1", runs.ns, "runs", "done")
    wait_for(lambda: gone(runs, "done"), timeout=60, what="the Run to go away")
    after = wait_for(
        lambda: (s := look()) and s.get("runsTotal") == 0 and s,
        timeout=60,
        what="the account without the run",
    )
    assert (after["captured"], after["reserved"], after["available"]) == ("50", "0", "50")
    assert [(r["uid"], r["captured"]) for r in after["retired"]["latest"]] == [(uid, "50")]
    rows = ledger(cluster, runs.ns, "default")
    captured = [r for r in rows if r["run"] == "done" and r["type"] == "captured"]
    assert [r["amount"] for r in captured] == ["50"]
    assert sum(D(r["amount"]) for r in rows if r["type"] == "captured") == D(after["captured"])

    # A run deleted while running (and the operator SIGKILLed right after the delete): what it
    # captured so far stays, its reservation is released, nothing is counted twice.
    with Provider(with_latency(0.1, echo())) as provider:
        runs.create(
            "midway",
            {
                "items": items(40),
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
            },
        )
        wait_for(
            lambda: D(look().get("captured", "0")) >= 55, timeout=90, what="the second run to capture a few"
        )
        runs.custom.delete_namespaced_custom_object("oxygen.dev", "v1alpha1", runs.ns, "runs", "midway")
        operator.kill(signal.SIGKILL)
        operator.start()
        wait_for(lambda: gone(runs, "midway"), timeout=90, what="the running Run to go away")
        # The Run went only after its Jobs were stopped: no call comes after its last status write.
        charged = len(provider.successful_calls())
    final = wait_for(
        lambda: (s := look()) and s.get("runsTotal") == 0 and s["retired"]["runs"] == 2 and s,
        timeout=60,
        what="the account with both runs retired",
    )
    midway = next(r for r in final["retired"]["latest"] if r["name"] == "midway")
    assert D(midway["captured"]) >= 5
    assert D(midway["captured"]) == charged * D(1)  # every call the provider charged, captured
    assert D(midway["captured"]) + D(midway["released"]) == D(40)  # all it had reserved
    assert D(final["captured"]) == 50 + D(midway["captured"])
    assert final["reserved"] == "0"
    assert D(final["available"]) == 100 - D(final["captured"])
    assert all(identity_holds(s) for s in looks)
    # Every account status seen on the way: the captured total never went down (no refund).
    seen = [D(s["captured"]) for s in looks if s]
    assert seen == sorted(seen)
    rows = ledger(cluster, runs.ns, "default")
    assert sum(D(r["amount"]) for r in rows if r["type"] == "captured") == D(final["captured"])
    print(f"deletion: captured {final['captured']} after both runs deleted, {len(looks)} account looks")
