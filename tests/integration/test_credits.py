"""Credits against the real control plane: reserve, capture, release, grant — exact under
failures, provider-reported costs, concurrency and operator SIGKILLs."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from decimal import Decimal
from typing import Any

import pytest

from oxygen.devcluster.wait import wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, Reply, echo, with_credits, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

D = Decimal


def account(
    runs: Runs,
    name: str = "default",
    grants: list[dict[str, str]] | None = None,
    on_insufficient: str = "queue",
) -> None:
    runs.custom.create_namespaced_custom_object(
        "oxygen.dev",
        "v1alpha1",
        runs.ns,
        "creditaccounts",
        {
            "apiVersion": "oxygen.dev/v1alpha1",
            "kind": "CreditAccount",
            "metadata": {"name": name},
            "spec": {"grants": grants or [], "onInsufficient": on_insufficient},
        },
    )


def account_status(runs: Runs, name: str = "default") -> dict[str, Any]:
    body = runs.custom.get_namespaced_custom_object("oxygen.dev", "v1alpha1", runs.ns, "creditaccounts", name)
    status: dict[str, Any] = body.get("status") or {}
    return status


def identity_holds(status: dict[str, Any]) -> bool:
    if not status:
        return True
    return D(status["granted"]) == D(status["captured"]) + D(status["reserved"]) + D(status["available"])


def settled(runs: Runs, expect: dict[str, str], name: str = "default") -> dict[str, Any]:
    return wait_for(
        lambda: (s := account_status(runs, name)) and all(s.get(k) == v for k, v in expect.items()) and s,
        timeout=60,
        what=f"account {name} to show {expect}",
        describe=lambda: str(account_status(runs, name)),
    )


def items(n: int) -> list[dict[str, Any]]:
    return [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(n)]


def test_reserve_during_the_run_and_capture_at_the_end(runs: Runs) -> None:
    account(runs, grants=[{"id": "plan-2026-11", "amount": "100", "reason": "monthly plan"}])
    with Provider(with_latency(0.05, echo())) as provider:
        runs.create(
            "metered",
            {
                "items": items(50),
                "batchSize": 10,
                "parallelism": 1,
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
            },
        )
        during = wait_for(
            lambda: (s := runs.status("metered")).get("phase") == "running" and s,
            timeout=60,
            what="the run to be running",
        )
        assert D(during["creditsReserved"]) + D(during["creditsUsed"]) == 50
        mid = settled(runs, {"granted": "100"})
        assert identity_holds(mid)
        final = runs.wait_phase("metered", timeout=120)
    assert final["phase"] == "succeeded"
    assert (final["creditsUsed"], final["creditsReserved"], final["creditAccount"]) == ("50", "0", "default")
    status = settled(runs, {"captured": "50", "reserved": "0", "available": "50"})
    assert identity_holds(status)
    assert status["runs"][0]["name"] == "metered"
    types = [(e["type"], e["amount"]) for e in final["ledger"]]
    assert types == [("reserved", "50"), ("captured", "50")]


def test_insufficient_credits_queue_until_a_grant_and_fail_when_told(runs: Runs) -> None:
    account(runs, grants=[{"id": "small", "amount": "10"}])
    spec = {"items": items(20), "producer": {"provider": "echo", "builtin": "echo", "costPerItem": "1"}}
    runs.create("waits", spec)
    wait_for(
        lambda: any(
            c["type"] == "InsufficientCredits" and c["status"] == "True"
            for c in runs.status("waits").get("conditions", [])
        ),
        timeout=30,
        what="InsufficientCredits",
        describe=lambda: str(runs.status("waits")),
    )
    time.sleep(2)
    status = runs.status("waits")
    assert status["phase"] == "queued"
    assert "20" in status["message"]
    assert runs.shards("waits") == []
    assert any(e.reason == "InsufficientCredits" for e in runs.events("waits"))
    runs.custom.patch_namespaced_custom_object(
        "oxygen.dev",
        "v1alpha1",
        runs.ns,
        "creditaccounts",
        "default",
        {"spec": {"grants": [{"id": "small", "amount": "10"}, {"id": "topup", "amount": "15"}]}},
    )
    final = runs.wait_phase("waits", timeout=60)
    assert final["phase"] == "succeeded"
    assert final["creditsUsed"] == "20"
    assert {c["type"]: c["status"] for c in final["conditions"]}["InsufficientCredits"] == "False"
    settled(runs, {"granted": "25", "captured": "20", "available": "5"})

    account(runs, "strict", grants=[{"id": "g", "amount": "5"}], on_insufficient="fail")
    runs.create("refused", {**spec, "creditAccount": "strict"})
    refused = runs.wait_phase("refused", timeout=30)
    assert refused["phase"] == "failed"
    assert "5 available" in refused["message"]
    assert {c["type"]: c["reason"] for c in refused["conditions"]}["Failed"] == "InsufficientCredits"


def test_failed_items_release_their_reservation(runs: Runs) -> None:
    account(runs, grants=[{"id": "g", "amount": "100"}])

    def some_fail(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        return Reply(status=400, body={"error": "no"}) if int(item_id) % 5 == 0 else Reply(body={})

    with Provider(some_fail) as provider:
        runs.create(
            "partial",
            {
                "items": items(50),
                "batchSize": 25,
                "retry": {"maxAttempts": 1},
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
            },
        )
        final = runs.wait_phase("partial", timeout=120)
    assert final["phase"] == "completed"
    assert final["itemsFailed"] == 10
    assert (final["creditsUsed"], final["creditsReleased"], final["creditsReserved"]) == ("40", "10", "0")
    settled(runs, {"captured": "40", "released": "10", "reserved": "0", "available": "60"})


def test_provider_reported_fractional_costs_are_exact(runs: Runs) -> None:
    account(runs, grants=[{"id": "g", "amount": "1000"}])
    with Provider(with_credits("0.25", echo())) as provider:
        runs.create(
            "fractions",
            {
                "items": items(400),
                "batchSize": 100,
                "parallelism": 4,
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
            },
        )
        final = runs.wait_phase("fractions", timeout=180)
    assert final["creditsUsed"] == "100"
    assert final["creditsReleased"] == "300"
    assert {p["provider"]: p["creditsUsed"] for p in final["providers"]} == {"p": "100"}
    settled(runs, {"captured": "100", "available": "900", "reserved": "0"})


@pytest.mark.slow
def test_concurrent_runs_with_operator_sigkill_keep_the_identity(
    runs: Runs, operator: OperatorProcess
) -> None:
    account(runs, grants=[{"id": "g", "amount": "1000"}])
    observations: list[dict[str, Any]] = []
    stop = threading.Event()

    def observe() -> None:
        while not stop.is_set():
            # The API may be busy; an observation missed is not a failure.
            with contextlib.suppress(Exception):
                observations.append(account_status(runs))
            time.sleep(0.1)

    watcher = threading.Thread(target=observe, daemon=True)
    watcher.start()
    try:
        with Provider(with_latency(0.01, with_credits("0.5", echo()))) as provider:
            for name in ("c1", "c2", "c3"):
                runs.create(
                    name,
                    {
                        "items": items(300),
                        "batchSize": 50,
                        "parallelism": 2,
                        "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
                    },
                )
            wait_for(
                lambda: sum(runs.status(n).get("itemsSucceeded", 0) for n in ("c1", "c2", "c3")) >= 300,
                timeout=120,
                what="a third of the work",
            )
            operator.kill(signal.SIGKILL)
            time.sleep(1)
            operator.start()
            finals = [runs.wait_phase(n, timeout=240) for n in ("c1", "c2", "c3")]
        status = settled(runs, {"captured": "450", "reserved": "0", "available": "550"})
    finally:
        stop.set()
        watcher.join()
    assert all(f["phase"] == "succeeded" and f["creditsUsed"] == "150" for f in finals)
    assert all(identity_holds(o) for o in observations), "granted = captured + reserved + available broke"
    assert len(observations) > 10
    assert identity_holds(status)
    assert D(status["captured"]) == sum(D(f["creditsUsed"]) for f in finals)


def test_cancel_releases_and_dry_run_only_estimates(runs: Runs) -> None:
    account(runs, grants=[{"id": "g", "amount": "100"}])
    with Provider(with_latency(0.05, echo())) as provider:
        runs.create(
            "canceled",
            {
                "items": items(60),
                "batchSize": 10,
                "parallelism": 1,
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
            },
        )
        wait_for(lambda: runs.status("canceled").get("itemsSucceeded", 0) >= 10, timeout=60, what="progress")
        runs.patch("canceled", {"cancel": True})
        final = runs.wait_phase("canceled", timeout=60)
    used = D(final["creditsUsed"])
    assert final["creditsReserved"] == "0"
    assert D(final["creditsReleased"]) == 60 - used
    settled(runs, {"reserved": "0", "captured": str(used), "available": str(100 - used)})
    runs.create(
        "estimate",
        {
            "mode": "dry_run",
            "items": items(500),
            "producer": {"provider": "echo", "builtin": "echo", "costPerItem": "1"},
        },
    )
    dry = runs.wait_phase("estimate", timeout=60)
    assert (dry["creditsEstimated"], dry["creditsUsed"], dry["creditsReserved"]) == ("500", "0", "0")
    insufficient = {c["type"]: c for c in dry["conditions"]}["InsufficientCredits"]
    assert insufficient["status"] == "True"
    assert "500" in insufficient["message"]
    settled(runs, {"reserved": "0", "captured": str(used)})


def test_a_namespace_without_accounts_runs_unmetered(runs: Runs) -> None:
    runs.create(
        "free", {"items": items(3), "producer": {"provider": "echo", "builtin": "echo", "costPerItem": "1"}}
    )
    final = runs.wait_phase("free", timeout=60)
    assert final["phase"] == "succeeded"
    assert final["metered"] is False
    assert final["creditsUsed"] == "3"
    metered = {c["type"]: c for c in final["conditions"]}["Metered"]
    assert metered["status"] == "False"
    assert "unmetered" in metered["message"]
