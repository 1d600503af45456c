"""A shard whose worker pods keep dying: its Job is replaced (bounded), and no item the provider never
saw is ever `failed` (issue 20, finding 3)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oxygen.controllers.run.jobs import MAX_REPLACEMENTS, job_name
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.integration.test_credits import account, account_status, identity_holds
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ITEMS = 300


@pytest.fixture
def fragile_operator(
    cluster: LocalCluster, crds: None, operator: OperatorProcess, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """Our own operator whose worker Jobs fail at the first pod death; the shared one pauses."""
    operator.stop()
    own = OperatorProcess(
        cluster.kubeconfig, tmp_path / "operator", {"OXYGEN_WORKER_BACKOFF_LIMIT": "0"}
    ).start()
    try:
        yield own
    finally:
        own.stop()
        operator.start()


@pytest.mark.slow
def test_killed_worker_jobs_are_replaced_and_never_reached_items_are_not_failed(
    runs: Runs, fragile_operator: OperatorProcess
) -> None:
    account(runs, grants=[{"id": "plan", "amount": "1000"}])
    observed: list[dict[str, Any]] = []  # every account status seen while the run goes on

    def watch_account() -> None:
        status = account_status(runs)
        if status:
            observed.append(status)

    with Provider(with_latency(0.05, echo())) as provider:
        runs.create(
            "fragile",
            {
                "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(ITEMS)],
                "batchSize": ITEMS,
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
            },
        )
        shard = "fragile-r0-0000"
        # Kill the first Job's pod and each replacement's, each after it made a few calls.
        for attempt in range(MAX_REPLACEMENTS + 1):
            job = job_name(shard, attempt)
            calls_before = len(provider.calls)

            def working(job: str = job, floor: int = calls_before) -> Any:
                watch_account()
                pods = [
                    p
                    for p in runs.pods("fragile")
                    if (p.metadata.labels or {}).get("job-name") == job and p.status.phase == "Running"
                ]
                return pods[0] if pods and len(provider.calls) >= floor + 15 else None

            pod = wait_for(working, timeout=120, what=f"a pod of Job {job} making calls")
            runs.core.delete_namespaced_pod(pod.metadata.name, runs.ns)

        def finished() -> Any:
            watch_account()
            status = runs.status("fragile")
            return status.get("phase") in ("succeeded", "completed", "failed") and status

        status = wait_for(finished, timeout=180, what="the run to finish")
        items = runs.items("fragile")
        calls = {i: len(provider.calls_for(i)) for i in items}

        # No item the provider never saw is failed; the never-reached ones are skipped, not charged.
        failed = [i for i, r in items.items() if r["status"] == "failed"]
        assert all(calls[i] > 0 for i in failed), [i for i in failed if calls[i] == 0]
        skipped = [i for i, r in items.items() if r["status"] == "skipped"]
        assert skipped, "the last Job died before the shard was done"
        for i in skipped:
            assert items[i]["error"].startswith("never attempted: worker Job failed"), items[i]
            assert items[i].get("attemptCount", 0) == 0
        # attemptCount is what the provider saw: only a call in flight at a kill may be unrecorded.
        attempts = sum(r.get("attemptCount", 0) for r in items.values())
        assert 0 <= sum(calls.values()) - attempts <= MAX_REPLACEMENTS + 1
        assert all(calls[i] >= r.get("attemptCount", 0) for i, r in items.items())
        assert len(items) == ITEMS
        succeeded = sum(1 for r in items.values() if r["status"] == "succeeded")
        assert status["itemsSucceeded"] == succeeded
        reasons = [e.message for e in runs.events("fragile") if e.reason == "WorkerJobReplaced"]
        assert any(f"replaced (1/{MAX_REPLACEMENTS})" in m for m in reasons), reasons
        jobs = sorted(j.metadata.name for j in runs.jobs("fragile"))
        assert jobs == sorted(job_name(shard, n) for n in range(MAX_REPLACEMENTS + 1))

        # The account agrees with the run once it settled, and the identity held at every look.
        used = Decimal(status["creditsUsed"])
        final = wait_for(
            lambda: (
                (s := account_status(runs))
                and Decimal(s["reserved"]) == 0
                and Decimal(s["captured"]) == used
                and s
            ),
            timeout=60,
            what="the account to agree with the run",
            describe=lambda: str(account_status(runs)),
        )
        observed.append(final)
        assert all(identity_holds(s) for s in observed)
        assert used == succeeded

        # A retryFailed bump runs the skipped-because-never-reached items (and the failed ones).
        runs.patch("fragile", {"retryFailed": 1})
        wait_for(
            lambda: runs.status("fragile").get("itemsSucceeded") == ITEMS,
            timeout=180,
            what="the retry round to run every item",
        )
    print(
        f"dead-shards: {len(failed)} failed (all called), {len(skipped)} skipped never attempted, "
        f"calls {sum(calls.values())} vs attemptCount {attempts}, account looks {len(observed)}"
    )
