"""Run core with a real HTTP provider on loopback: retries, permanent failures, Retry-After, secrets."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from kubernetes import client

from tests.support.provider import Provider, Reply, always, bad_request, echo, fail_then_succeed, rate_limited
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

KINDS = {"ok": 10, "flaky": 5, "bad": 3, "down": 2, "limited": 2}


def dispatch() -> Any:
    flaky, limited = fail_then_succeed(1, 503), rate_limited(1.0, 1)
    by_kind = {
        "ok": echo(),
        "flaky": flaky,
        "bad": bad_request("company is not a domain"),
        "down": always(503),
        "limited": limited,
    }

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        return by_kind[body["item"]["inputs"]["kind"]](item_id, attempt, body)

    return behaviour


def test_http_provider_retries_exactly_and_fails_what_must_fail(runs: Runs, api: client.ApiClient) -> None:
    secret_value = "s3cret-value-never-copied"
    client.CoreV1Api(api).create_namespaced_secret(
        runs.ns,
        {
            "metadata": {"name": "provider-key"},
            "data": {"X-Api-Key": base64.b64encode(secret_value.encode()).decode()},
        },
    )
    rows = [
        {"rowId": f"{kind}-{i}", "inputs": {"kind": kind, "i": i}}
        for kind, n in KINDS.items()
        for i in range(n)
    ]
    with Provider(dispatch(), required_headers={"X-Api-Key": secret_value}) as provider:
        created = runs.create(
            "http",
            {
                "items": rows,
                "producer": {
                    "provider": "clearbit",
                    "costPerItem": "1",
                    "http": {
                        "url": provider.url,
                        "timeoutSeconds": 5,
                        "headersFrom": {"secretRef": {"name": "provider-key"}},
                    },
                },
                "batchSize": 10,
                "parallelism": 2,
                "retry": {"maxAttempts": 3, "backoffSeconds": 0.2},
            },
        )
        status = runs.wait_phase("http", timeout=180)
        calls = provider.calls

    assert status["phase"] == "completed", status
    assert (status["itemsTotal"], status["itemsSucceeded"], status["itemsFailed"]) == (22, 17, 5)
    assert status["creditsUsed"] == "17"
    items = {i["rowId"]: i for i in runs.items("http").values()}
    expected_attempts = {"ok": 1, "flaky": 2, "bad": 1, "down": 3, "limited": 2}
    for row_id, item in items.items():
        kind = row_id.split("-")[0]
        assert item["attemptCount"] == expected_attempts[kind], (row_id, item)
        # The provider saw exactly as many calls as the item counts: no extra calls.
        assert len([c for c in calls if c.row_id == row_id]) == expected_attempts[kind], row_id
    assert items["bad-0"]["status"] == "failed"
    assert "company is not a domain" in items["bad-0"]["error"]
    assert items["down-0"]["status"] == "failed"
    assert items["flaky-0"]["status"] == "succeeded"
    assert items["flaky-0"]["outputs"] == {
        "kind": "flaky",
        "i": 0,
    }
    for i in range(2):
        first, second = sorted((c for c in calls if c.row_id == f"limited-{i}"), key=lambda c: c.at)
        assert second.at - first.at >= 0.95, "Retry-After: 1 was not honoured"
    uid = created["metadata"]["uid"]
    assert all(c.idempotency_key == f"{uid}/{c.item_id}" for c in calls)
    providers = {p["provider"]: p for p in status["providers"]}
    assert providers["clearbit"]["itemsSucceeded"] == 17
    assert providers["clearbit"]["itemsFailed"] == 5
    assert {f["rowId"].split("-")[0] for f in status["failedItems"]} == {"bad", "down"}
    # The secret's value is referenced, never copied: not in the run, the shards, the Jobs or Events.
    everything = (
        json.dumps([runs.get("http"), runs.shards("http")])
        + str(runs.jobs("http"))
        + str(runs.events("http"))
    )
    assert secret_value not in everything
