"""A Provider deleted while a run uses it (issue 15, acceptance 5): the run stops and fails with a
condition naming the Provider, its unfinished items fail saying why, and the operator goes on."""

from __future__ import annotations

import pytest
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from tests.integration.test_providers import create, provider_manifest
from tests.support.provider import Provider, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ITEMS = [{"rowId": f"r{i}", "inputs": {"domain": f"d{i}.example"}} for i in range(40)]
MESSAGE = 'providers.oxygen.dev "slow" was deleted while the run used it; its unfinished items failed'


def test_deleting_a_provider_fails_the_runs_using_it(runs: Runs, api: client.ApiClient) -> None:
    with Provider(with_latency(0.5, echo())) as slow, Provider(echo()) as fast:
        create(api, runs.ns, "providers", provider_manifest("slow", slow.url, price="1", secret=None))
        create(api, runs.ns, "providers", provider_manifest("fast", fast.url, price="1", secret=None))
        runs.create("doomed", {"items": ITEMS, "producer": {"providerRef": {"name": "slow"}}})
        slow.wait_for_calls(3, timeout=120)
        client.CustomObjectsApi(api).delete_namespaced_custom_object(
            GROUP, VERSION, runs.ns, "providers", "slow"
        )
        status = runs.wait_phase("doomed", timeout=120)
        # The operator goes on: a run on another Provider succeeds afterwards.
        runs.create("after", {"items": ITEMS[:3], "producer": {"providerRef": {"name": "fast"}}})
        after = runs.wait_phase("after", timeout=120)
    assert status["phase"] == "failed" and status["message"] == MESSAGE, status
    (failed,) = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert (failed["status"], failed["reason"], failed["message"]) == ("True", "ProviderDeleted", MESSAGE)
    items = runs.items("doomed")
    unfinished = [i for i in items.values() if i["status"] != "succeeded"]
    assert unfinished and all(i["status"] == "failed" for i in unfinished), unfinished
    assert {i["error"] for i in unfinished} == {"provider slow was deleted"}
    assert status["itemsFailed"] == len(unfinished) and status["itemsSkipped"] == 0
    assert status["itemsSucceeded"] + status["itemsFailed"] == len(ITEMS)
    assert runs.jobs("doomed") == []
    assert [e.reason for e in runs.events("doomed") if e.reason == "ProviderDeleted"] == ["ProviderDeleted"]
    assert after["phase"] == "succeeded", after
