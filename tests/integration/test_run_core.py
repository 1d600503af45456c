"""Run core: shards, Jobs, the worker and per-item status, against the real control plane."""

from __future__ import annotations

import pytest

from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ECHO = {"provider": "echo", "builtin": "echo"}


def test_echo_run_of_250_items_in_5_shards(runs: Runs) -> None:
    items = [{"rowId": f"r-{i}", "inputs": {"n": i, "word": f"w{i}"}} for i in range(250)]
    runs.create("echo250", {"items": items, "producer": ECHO, "batchSize": 50, "parallelism": 2})
    max_active = 0

    def progress() -> str:
        nonlocal max_active
        active = sum(1 for j in runs.jobs("echo250") if not _finished(j))
        max_active = max(max_active, active)
        return str(runs.status("echo250"))

    from oxygen.devcluster.wait import wait_for

    wait_for(
        lambda: progress() and runs.status("echo250").get("phase") in ("succeeded", "completed", "failed"),
        timeout=180,
        interval=0.2,
        what="echo250 to finish",
        describe=lambda: str(runs.status("echo250")),
    )
    status = runs.status("echo250")
    assert status["phase"] == "succeeded", status
    assert (status["itemsTotal"], status["itemsSucceeded"], status["itemsFailed"]) == (250, 250, 0)
    assert len(runs.shards("echo250")) == 5
    assert len(runs.jobs("echo250")) == 5
    assert max_active <= 2
    items_out = runs.items("echo250")
    assert len(items_out) == 250
    for i in range(250):
        item = items_out[str(i)]
        assert item["status"] == "succeeded"
        assert item["attemptCount"] == 1
        assert item["outputs"] == {"n": i, "word": f"w{i}"}
        assert item["rowId"] == f"r-{i}"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Succeeded"] == "True"
    assert conditions["Complete"] == "True"


def _finished(job: object) -> bool:
    conds = getattr(job.status, "conditions", None) or []  # type: ignore[attr-defined]
    return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conds)
