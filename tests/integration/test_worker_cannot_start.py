"""A worker that starts but cannot do its work says why on its RunShard, and the Run shows it
(issue 20, finding 2): no item is called, each fails with the reason and error class `config`."""

from __future__ import annotations

import pytest

from oxygen.status.shard import CANNOT_START
from tests.support.provider import Provider
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster


def test_a_header_the_worker_cannot_send_fails_the_items_with_the_reason(runs: Runs) -> None:
    # A header value with a line break inside: no request can carry it, so no call is ever made.
    runs.core.create_namespaced_secret(
        runs.ns, {"metadata": {"name": "broken-key"}, "stringData": {"X-Api-Key": "k-77a1\r\nX-Evil: 1"}}
    )
    with Provider() as provider:
        runs.create(
            "cannot-start",
            {
                "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(3)],
                "producer": {
                    "provider": "keyed",
                    "http": {"url": provider.url, "headersFrom": {"secretRef": {"name": "broken-key"}}},
                },
            },
        )
        status = runs.wait_phase("cannot-start", timeout=120)
        calls = provider.calls
    reason = CANNOT_START + "env OXYGEN_HEADER_X-Api-Key: the value contains a line break"
    assert calls == []
    assert status["phase"] == "completed", status
    assert status["itemsFailed"] == 3, status
    assert reason in status["message"], status
    failed = {c["type"]: c for c in status["conditions"]}["Complete"]
    assert reason in failed["message"], failed
    items = runs.items("cannot-start").values()
    assert [(i["status"], i["errorClass"], i["error"]) for i in items] == [("failed", "config", reason)] * 3
    assert "k-77a1" not in str(runs.get("cannot-start")) + str(runs.shards("cannot-start"))
