"""Workflow runs (steps in order, outputs flowing forward, retry from the failed step) and ingestion
runs (pages found by cursor), on the same machinery as column runs."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.devcluster.wait import wait_for
from tests.support.provider import Provider, Reply
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster


def workflow(runs: Runs, name: str, url: str) -> None:
    # The enrich step's own header Secret; the other steps must never send it.
    runs.core.create_namespaced_secret(
        runs.ns, {"metadata": {"name": f"{name}-account"}, "stringData": {"X-Enrich-Account": "acct-42"}}
    )
    runs.custom.create_namespaced_custom_object(
        "oxygen.dev",
        "v1alpha1",
        runs.ns,
        "workflows",
        {
            "apiVersion": "oxygen.dev/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name},
            "spec": {
                "inputs": {"country": "us"},
                "steps": [
                    {
                        "name": "lookup",
                        "producer": {"provider": "dns", "http": {"url": f"{url}/lookup"}},
                        "inputs": {"company": "${inputs.company}"},
                    },
                    {
                        "name": "enrich",
                        "producer": {
                            "provider": "clearbit",
                            "http": {
                                "url": f"{url}/enrich",
                                "headersFrom": {"secretRef": {"name": f"{name}-account"}},
                            },
                            "costPerItem": "2",
                        },
                        "inputs": {
                            "domain": "${steps.lookup.outputs.domain}",
                            "country": "${inputs.country}",
                        },
                    },
                    {
                        "name": "score",
                        "producer": {"provider": "echo", "builtin": "echo"},
                        "inputs": {
                            "summary": "${steps.enrich.outputs.domain} has ${steps.enrich.outputs.employees}"
                        },
                    },
                ],
            },
        },
    )


class Steps:
    """A provider with a path per step; `enrich_fails` makes the enrich step answer 400."""

    def __init__(self) -> None:
        self.enrich_fails = False

    def __call__(self, item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        inputs = body["item"]["inputs"]
        if "company" in inputs:
            return Reply(body={"domain": inputs["company"].lower() + ".com"})
        if self.enrich_fails:
            return Reply(status=400, body={"error": "enrichment quota exceeded"})
        return Reply(body={"domain": inputs["domain"], "country": inputs["country"], "employees": 42})


def workflow_run(runs: Runs, name: str, wf: str, inputs: dict[str, Any]) -> None:
    runs.create(
        name, {"kind": "workflow", "workflowRef": {"name": wf}, "inputs": inputs, "retry": {"maxAttempts": 1}}
    )


def steps_of(runs: Runs, name: str) -> dict[str, dict[str, Any]]:
    return {i["step"]: i for i in runs.items(name).values()}


def test_three_steps_run_in_order_and_pass_outputs_forward(runs: Runs) -> None:
    behaviour = Steps()
    with Provider(behaviour) as provider:
        workflow(runs, "enrich-company", provider.url)
        workflow_run(runs, "wf1", "enrich-company", {"company": "Acme"})
        status = runs.wait_phase("wf1", timeout=120)
        calls = provider.calls
    assert status["phase"] == "succeeded"
    assert status["kind"] == "workflow"
    assert (status["itemsTotal"], status["itemsSucceeded"]) == (3, 3)
    assert [c.body["item"]["inputs"] for c in sorted(calls, key=lambda c: c.at)] == [
        {"company": "Acme"},
        {"domain": "acme.com", "country": "us"},
    ]
    steps = steps_of(runs, "wf1")
    assert list(steps) == ["lookup", "enrich", "score"]
    assert [steps[s]["id"] for s in steps] == ["0", "1", "2"]
    assert steps["enrich"]["inputs"] == {"domain": "acme.com", "country": "us"}
    assert steps["score"]["outputs"] == {"summary": "acme.com has 42"}
    assert all(s["status"] == "succeeded" and s["attemptCount"] == 1 for s in steps.values())
    assert status["creditsUsed"] == "2"
    by_step = {("company" in c.body["item"]["inputs"]): c.headers for c in calls}
    assert by_step[False].get("X-Enrich-Account") == "acct-42", "the step's own header Secret reached it"
    assert "X-Enrich-Account" not in by_step[True], "another step's header leaked"
    assert {p["provider"] for p in status["providers"]} >= {"echo"}


def test_a_failed_step_skips_the_rest_and_retry_resumes_from_it(runs: Runs) -> None:
    behaviour = Steps()
    behaviour.enrich_fails = True
    with Provider(behaviour) as provider:
        workflow(runs, "flaky-wf", provider.url)
        workflow_run(runs, "wf2", "flaky-wf", {"company": "Globex"})
        first = runs.wait_phase("wf2", timeout=120)
        steps = steps_of(runs, "wf2")
        assert first["phase"] == "completed"
        assert [steps[s]["status"] for s in ("lookup", "enrich", "score")] == [
            "succeeded",
            "failed",
            "skipped",
        ]
        assert "enrichment quota exceeded" in steps["enrich"]["error"]
        assert "lookup" not in steps["score"]["error"]
        assert "enrich" in steps["score"]["error"]
        lookups_before = sum(1 for c in provider.calls if "company" in c.body["item"]["inputs"])
        behaviour.enrich_fails = False
        runs.patch("wf2", {"retryFailed": 1})
        wait_for(lambda: runs.status("wf2").get("observedRetryFailed") == 1, timeout=30, what="retry")
        final = runs.wait_phase("wf2", "succeeded", "completed", timeout=120)
        lookups_after = sum(1 for c in provider.calls if "company" in c.body["item"]["inputs"])
    assert final["phase"] == "succeeded", final
    assert lookups_after == lookups_before, "the step that had succeeded ran again"
    steps = steps_of(runs, "wf2")
    assert steps["enrich"]["attemptCount"] == 2
    assert steps["enrich"]["inputs"]["domain"] == "globex.com"
    assert steps["score"]["outputs"] == {"summary": "globex.com has 42"}


def test_a_missing_workflow_fails_the_run_with_a_clear_message(runs: Runs) -> None:
    workflow_run(runs, "orphan", "no-such-workflow", {})
    status = runs.wait_phase("orphan", timeout=60)
    assert status["phase"] == "failed"
    assert "Workflow 'no-such-workflow' not found" in status["message"]


def test_ingestion_follows_cursors_and_retries_a_failing_page(runs: Runs) -> None:
    failures = {"3": 0}

    def pages(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        inputs = body["item"]["inputs"]
        page = int(inputs["page"])
        if item_id == "3" and failures["3"] < 2:
            failures["3"] += 1
            return Reply(status=503, body={"error": "search backend busy"})
        rows = [{"name": f"{inputs['query']}-{page}-{i}"} for i in range(inputs["pageSize"])]
        return Reply(body={"rows": rows, "nextCursor": f"c{page + 1}" if page < 6 else None})

    with Provider(pages) as provider:
        runs.create(
            "ingest",
            {
                "kind": "ingestion",
                "retry": {"maxAttempts": 3, "backoffSeconds": 0.1},
                "ingestion": {
                    "provider": "search",
                    "url": provider.url,
                    "query": "saas",
                    "pageSize": 5,
                    "maxPages": 20,
                },
            },
        )
        status = runs.wait_phase("ingest", timeout=120)
        cursors = [c.body["item"]["inputs"]["cursor"] for c in provider.successful_calls()]
    assert status["phase"] == "succeeded"
    assert status["kind"] == "ingestion"
    assert (status["itemsTotal"], status["itemsSucceeded"]) == (7, 7)
    pages_out = runs.items("ingest")
    assert sorted(pages_out, key=int) == [str(i) for i in range(7)]
    assert pages_out["3"]["attemptCount"] == 3
    assert all(pages_out[p]["attemptCount"] == 1 for p in pages_out if p != "3")
    rows = [r["name"] for p in sorted(pages_out, key=int) for r in pages_out[p]["outputs"]["rows"]]
    assert len(rows) == 35
    assert rows[0] == "saas-0-0"
    assert rows[-1] == "saas-6-4"
    assert cursors == [None, "c1", "c2", "c3", "c4", "c5", "c6"]
