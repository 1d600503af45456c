"""`oxygen workflows …` and `oxygen table-ingestions …` end to end: a subprocess per command against the
real control plane, the operator and loopback providers; every `--json` answer is checked field by field
against the resources it was derived from."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.integration.test_cli import Cli, assert_run_shape, stored_items
from tests.integration.test_workflow_and_ingestion_runs import Steps, workflow
from tests.support.contract import ITEM_CONTRACT
from tests.support.provider import Provider, Reply, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster


@pytest.fixture
def cli(cluster: LocalCluster, runs: Runs) -> Cli:
    return Cli(cluster, runs.ns)


def assert_step_shape(item: dict[str, Any], stored: tuple[dict[str, Any], dict[str, Any], str]) -> None:
    """A step's item, field by field, against its RunShard spec item and latest result."""
    spec_item, result, shard = stored
    assert list(item)[: len(ITEM_CONTRACT)] == list(ITEM_CONTRACT)
    assert item["id"] == spec_item["id"] == result["id"]
    assert item["row_id"] == spec_item.get("rowId")
    assert item["status"] == result["status"]
    assert item["attempt_count"] == result["attemptCount"]
    assert item["inputs"] == result["inputs"], "a step shows the inputs its mapping resolved to"
    assert item["outputs"] == result.get("outputs")
    assert item["error"] == result.get("error")
    assert item["credits_used"] == result.get("creditsUsed", "0")
    assert item["error_class"] == result.get("errorClass")
    assert item["shard"] == shard
    assert item["step"] == result["step"] == spec_item["step"]
    assert item["provider"] == result["provider"] == spec_item["producer"]["provider"]


def assert_workflow_run(shape: dict[str, Any], run: dict[str, Any]) -> None:
    assert_run_shape({**shape, "provider": None}, run)
    assert shape["workflow"] == run["spec"]["workflowRef"]["name"]
    assert shape["inputs"] == run["spec"]["inputs"]


def test_a_workflow_called_from_the_cli_runs_its_steps_in_order(cli: Cli, runs: Runs) -> None:
    behaviour = Steps()
    with Provider(behaviour) as provider:
        workflow(runs, "enrich-company", provider.url)
        called = cli.json(
            "workflows", "call", "enrich-company", "--input", "company=Acme", "--input", "size=3"
        )
        name = called["name"]
        assert name.startswith("enrich-company-")
        assert called["status"] == "queued"
        stored = runs.get(name)
        # The shape of the Run as created: no status yet (the operator may have moved it on since).
        assert_workflow_run(called, {**stored, "status": {}})
        assert called["kind"] == "workflow"
        assert called["trigger"] == "user"
        assert stored["spec"]["inputs"] == {"country": "us", "company": "Acme", "size": 3}
        assert stored["metadata"]["labels"]["oxygen.dev/workflow"] == "enrich-company"
        assert stored["metadata"]["ownerReferences"][0]["kind"] == "Workflow"
        wait_for(
            lambda: (runs.custom.get_namespaced_custom_object(
                "oxygen.dev", "v1alpha1", runs.ns, "workflows", "enrich-company"
            ).get("status") or {}).get("runsCreated") == 1,
            timeout=30, what="runsCreated",
        )  # fmt: skip
        # The workflow records the run as one it manages (its history limit and concurrency see it).
        recorded = runs.custom.get_namespaced_custom_object(
            "oxygen.dev", "v1alpha1", runs.ns, "workflows", "enrich-company"
        )["status"]["managedRuns"]
        assert [(e["name"], e["uid"]) for e in recorded] == [(name, stored["metadata"]["uid"])]
        final = runs.wait_phase(name, timeout=120)
        calls = sorted(provider.calls, key=lambda c: c.at)
    assert final["phase"] == "succeeded", final
    assert [c.body["item"]["inputs"] for c in calls] == [
        {"company": "Acme"},
        {"domain": "acme.com", "country": "us"},
    ], "step 2 got step 1's outputs, after it"

    shown = cli.json("workflows", "run", name)
    assert_workflow_run({k: v for k, v in shown.items() if k != "steps"}, runs.get(name))
    steps = shown["steps"]
    assert [(s["id"], s["step"], s["provider"]) for s in steps] == [
        ("0", "lookup", "dns"),
        ("1", "enrich", "clearbit"),
        ("2", "score", "echo"),
    ]
    kept = stored_items(runs, name)
    for step in steps:
        assert_step_shape(step, kept[step["id"]])
    assert [s["status"] for s in steps] == ["succeeded"] * 3
    assert steps[1]["inputs"] == {"domain": "acme.com", "country": "us"}
    assert steps[1]["credits_used"] == "2"
    assert steps[2]["outputs"] == {"summary": "acme.com has 42"}
    started = [s["started_at"] for s in steps]
    assert started == sorted(started)
    assert all(started)

    listed = cli.json("workflows", "runs", "--workflow", "enrich-company")
    assert [r["name"] for r in listed] == [name]
    assert_workflow_run(listed[0], runs.get(name))
    assert cli.json("workflows", "runs", "--workflow", "other") == []
    assert cli.json("workflows", "failures") == []

    # Not a workflow run, and not a workflow: exit 3 with one line.
    missing = cli("workflows", "call", "no-such-workflow", "--json")
    assert missing.returncode == 3
    assert missing.stderr == (f'error: workflow "no-such-workflow" not found in namespace "{runs.ns}"\n')
    bad = cli("workflows", "call", "enrich-company", "--input", "novalue")
    assert bad.returncode == 2
    assert "expected key=value" in bad.stderr


def test_a_failing_step_shows_in_failures(cli: Cli, runs: Runs) -> None:
    behaviour = Steps()
    behaviour.enrich_fails = True
    with Provider(behaviour) as provider:
        workflow(runs, "flaky-wf", provider.url)
        called = cli.json("workflows", "call", "flaky-wf", "--input", "company=Globex", "--wait", code=1)
    name = called["name"]
    assert called["status"] == "completed"
    assert called["items_failed"] == 1
    assert called["items_skipped"] == 1
    assert_workflow_run(called, runs.get(name))

    failures = cli.json("workflows", "failures", "--workflow", "flaky-wf")
    assert [f["name"] for f in failures] == [name]
    failure = failures[0]
    assert_workflow_run({k: v for k, v in failure.items() if k != "failed_steps"}, runs.get(name))
    result = runs.items(name)["1"]
    assert failure["failed_steps"] == [
        {
            "id": "1",
            "step": "enrich",
            "provider": "clearbit",
            "error": result["error"],
            "attempt_count": result["attemptCount"],
            "error_class": result.get("errorClass"),
            "finished_at": result.get("finishedAt"),
        }
    ]
    assert "enrichment quota exceeded" in failure["failed_steps"][0]["error"]
    assert cli.json("workflows", "failures") == failures
    assert cli.json("workflows", "failures", "--workflow", "enrich-company") == []

    table = cli("workflows", "failures")
    assert table.returncode == 0
    assert "enrich" in table.stdout
    assert name in table.stdout

    steps = cli.json("workflows", "run", name)["steps"]
    assert [s["status"] for s in steps] == ["succeeded", "failed", "skipped"]


def test_cancel_a_slow_workflow_run(cli: Cli, runs: Runs) -> None:
    with Provider(with_latency(5)) as slow:
        runs.custom.create_namespaced_custom_object(
            "oxygen.dev", "v1alpha1", runs.ns, "workflows",
            {
                "apiVersion": "oxygen.dev/v1alpha1",
                "kind": "Workflow",
                "metadata": {"name": "slow-wf"},
                "spec": {
                    "steps": [
                        {"name": f"s{i}", "producer": {"provider": "slow", "http": {"url": slow.url}}}
                        for i in range(3)
                    ]
                },
            },
        )  # fmt: skip
        name = cli.json("workflows", "call", "slow-wf")["name"]
        runs.wait_phase(name, "running", timeout=60)
        canceled = cli.json("workflows", "cancel", name, "--wait")
        assert canceled["status"] == "canceled"
        assert canceled["finished_at"]
        assert runs.get(name)["spec"]["cancel"] is True
        assert_workflow_run(canceled, runs.get(name))
        assert canceled["items_succeeded"] < 3

    # cancel is for workflow runs only.
    runs.create("col", {"items": [{"inputs": {}}], "producer": {"provider": "e", "builtin": "echo"}})
    other = cli("workflows", "cancel", "col")
    assert other.returncode == 3
    assert other.stderr == 'error: workflow run "col" not found: it is a column run\n'
    assert runs.get("col")["spec"].get("cancel") in (None, False)


def paged(fail_page: int | None = None) -> Any:
    """Search results: 2 rows a page and always a next cursor; `fail_page` gets one 400 (permanent)."""
    failed: set[int] = set()

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        inputs = body["item"]["inputs"]
        page = int(inputs["page"])
        if page == fail_page and page not in failed:
            failed.add(page)
            return Reply(status=400, body={"error": "bad cursor"})
        rows = [{"name": f"{inputs['query']}-{page}-{i}"} for i in range(inputs["pageSize"])]
        return Reply(body={"rows": rows, "nextCursor": f"c{page + 1}"})

    return behaviour


def assert_ingestion_run(shape: dict[str, Any], run: dict[str, Any]) -> None:
    spec = run["spec"]
    assert_run_shape({**shape, "provider": None}, run)
    assert (shape["provider"], shape["query"]) == (spec["ingestion"]["provider"], spec["ingestion"]["query"])
    assert (shape["page_size"], shape["max_pages"]) == (
        spec["ingestion"]["pageSize"],
        spec["ingestion"]["maxPages"],
    )


def test_ingest_three_pages_and_retry_a_failing_page(cli: Cli, runs: Runs) -> None:
    with Provider(paged()) as provider:
        created = cli.json(
            "table-ingestions", "create-tool-page", "--table", "companies", "--provider", "search",
            "--url", provider.url, "--query", "saas", "--page-size", "2", "--max-pages", "3",
            "--name", "ingest3", "--wait",
        )  # fmt: skip
        cursors = [c.body["item"]["inputs"].get("cursor") for c in sorted(provider.calls, key=lambda c: c.at)]
    assert created["name"] == "ingest3"
    assert created["status"] == "succeeded"
    assert created["kind"] == "ingestion"
    stored = runs.get("ingest3")
    assert_ingestion_run(created, stored)
    given = {"provider": "search", "url": provider.url, "query": "saas", "pageSize": 2, "maxPages": 3}
    assert {k: stored["spec"]["ingestion"][k] for k in given} == given
    assert stored["spec"]["table"] == "companies"
    assert stored["spec"]["trigger"] == "user"
    assert (created["items_total"], created["items_succeeded"]) == (3, 3)
    assert cursors == [None, "c1", "c2"]
    pages = cli.json("table-runs", "items", "ingest3")
    assert [p["id"] for p in pages] == ["0", "1", "2"]
    # Pages after the first are found while running: only the shard's status holds them.
    shards = runs.shards("ingest3")
    assert len(shards) == 1
    assert [i["id"] for i in shards[0]["spec"]["items"]] == ["0"]
    results = {r["id"]: r for r in shards[0]["status"]["items"]}
    for page in pages:
        result = results[page["id"]]
        assert list(page)[: len(ITEM_CONTRACT)] == list(ITEM_CONTRACT)
        assert page["status"] == result["status"] == "succeeded"
        assert page["attempt_count"] == result["attemptCount"] == 1
        assert page["outputs"] == result["outputs"]
        assert page["error"] is None
        assert page["credits_used"] == result.get("creditsUsed", "0")
        assert page["shard"] == shards[0]["metadata"]["name"]
        assert page["provider"] == "search"
    assert pages[0]["inputs"] == shards[0]["spec"]["items"][0]["inputs"]
    assert [p["inputs"] for p in pages[1:]] == [results["1"]["inputs"], results["2"]["inputs"]]
    assert [(p["inputs"]["page"], p["inputs"]["cursor"]) for p in pages[1:]] == [(1, "c1"), (2, "c2")]
    assert [r["name"] for p in pages for r in p["outputs"]["rows"]] == [
        f"saas-{p}-{i}" for p in range(3) for i in range(2)
    ]

    with Provider(paged(fail_page=1)) as provider:
        runs.create(
            "ingest-flaky",
            {
                "kind": "ingestion",
                "table": "companies",
                "retry": {"maxAttempts": 1},
                "ingestion": {
                    "provider": "search", "url": provider.url, "query": "crm", "pageSize": 2, "maxPages": 3,
                },
            },
        )  # fmt: skip
        first = runs.wait_phase("ingest-flaky", timeout=120)
        assert first["phase"] == "completed", first
        assert first["itemsFailed"] == 1, first
        retried = cli.json("table-ingestions", "retry-failed", "ingest-flaky", "--wait")
        assert retried["retry_failed"] == 1
        assert runs.get("ingest-flaky")["status"]["observedRetryFailed"] == 1
        final = runs.wait_phase("ingest-flaky", "succeeded", "completed", timeout=120)
        # The retried page answers at once: the run moves on while the CLI prints, so its printed shape
        # is compared with the stored run once that stands still.
        stored = runs.get("ingest-flaky")
        # The run's figures as `runs get` prints them now, with the ingestion fields retry-failed printed.
        printed = {k: v for k, v in cli.json("runs", "get", "ingest-flaky").items() if k != "provider"}
        assert_ingestion_run({**retried, **printed}, stored)
    assert final["phase"] == "succeeded", final
    pages = {p["id"]: p for p in cli.json("table-runs", "items", "ingest-flaky")}
    assert sorted(pages) == ["0", "1", "2"]
    assert pages["1"]["status"] == "succeeded"
    assert pages["1"]["attempt_count"] == 2
    assert pages["0"]["attempt_count"] == 1

    # retry-failed is for ingestion runs only.
    wrong = cli("table-ingestions", "retry-failed", "ingest-missing")
    assert wrong.returncode == 3
    assert wrong.stderr.startswith('error: run "ingest-missing" not found')
