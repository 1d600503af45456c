"""Pure conversions of `oxygen workflows` and `oxygen table-ingestions`: inputs, shapes, manifests."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from oxygen.cli.errors import EXIT_USAGE, CliError
from oxygen.cli.ingestions import ingestion_manifest, ingestion_run_shape
from oxygen.cli.main import build_parser
from oxygen.cli.shapes import item_shape, shard_items
from oxygen.cli.workflows import failure_shape, is_workflow_run, parse_inputs, workflow_run_shape


def test_inputs_are_json_when_they_parse_else_strings() -> None:
    assert parse_inputs(
        ["company=Acme", "n=42", "ok=true", "x=1.5", 'o={"a": [1]}', "empty=", "eq=a=b", "null=null"]
    ) == {
        "company": "Acme",
        "n": 42,
        "ok": True,
        "x": 1.5,
        "o": {"a": [1]},
        "empty": "",
        "eq": "a=b",
        "null": None,
    }
    assert parse_inputs(['quoted="42"', "k=1", "k=2"]) == {"quoted": "42", "k": 2}
    assert parse_inputs([]) == {}


@pytest.mark.parametrize("bad", ["novalue", "=v", " =v"])
def test_an_input_without_a_key_is_a_usage_error(bad: str) -> None:
    with pytest.raises(CliError) as err:
        parse_inputs([bad])
    assert err.value.code == EXIT_USAGE
    assert "key=value" in err.value.message


def step_shard() -> dict[str, Any]:
    return {
        "metadata": {"name": "wf1-r0-0000"},
        "spec": {
            "round": 0,
            "sequence": "steps",
            "producer": {"provider": "workflow", "builtin": "echo"},
            "items": [
                {"id": "0", "inputs": {}, "step": "lookup", "producer": {"provider": "dns"}},
                {"id": "1", "inputs": {}, "step": "enrich", "producer": {"provider": "clearbit"}},
                {"id": "2", "inputs": {}, "step": "score", "producer": {"provider": "echo"}},
            ],
        },
        "status": {
            "items": [
                {
                    "id": "0",
                    "step": "lookup",
                    "provider": "dns",
                    "inputs": {"company": "Acme"},
                    "status": "succeeded",
                    "attemptCount": 1,
                    "outputs": {"domain": "acme.com"},
                },
                {
                    "id": "1",
                    "step": "enrich",
                    "provider": "clearbit",
                    "inputs": {"domain": "acme.com"},
                    "status": "failed",
                    "attemptCount": 3,
                    "error": "HTTP 400: quota",
                    "errorClass": "http_4xx",
                },
            ]
        },
    }


def test_step_items_carry_step_provider_and_resolved_inputs() -> None:
    steps = list(shard_items(step_shard()))
    assert [(s["id"], s["step"], s["provider"], s["status"]) for s in steps] == [
        ("0", "lookup", "dns", "succeeded"),
        ("1", "enrich", "clearbit", "failed"),
        ("2", "score", "echo", "pending"),
    ]
    assert steps[0]["inputs"] == {"company": "Acme"}
    assert steps[0]["outputs"] == {"domain": "acme.com"}
    assert steps[2]["inputs"] == {}
    assert steps[2]["attempt_count"] == 0
    assert list(steps[0])[:8] == [
        "id", "row_id", "status", "attempt_count", "inputs", "outputs", "error", "credits_used",
    ]  # fmt: skip
    # Column items keep their shape: no `step` key.
    assert "step" not in item_shape({"id": "0", "inputs": {"x": 1}}, {"status": "succeeded"})


def test_pages_found_while_running_are_items_too() -> None:
    shard = {
        "metadata": {"name": "ing-r0-0000"},
        "spec": {"producer": {"provider": "search"}, "items": [{"id": "0", "inputs": {"page": 0}}]},
        "status": {
            "items": [
                {"id": "0", "status": "succeeded", "attemptCount": 1, "outputs": {"rows": [1]}},
                {"id": "1", "inputs": {"page": 1, "cursor": "c1"}, "status": "failed", "attemptCount": 3},
                {"id": "2", "inputs": {"page": 2}, "status": "succeeded", "supersededBy": "ing-r1-0000"},
            ]
        },
    }
    pages = list(shard_items(shard))
    assert [(p["id"], p["status"], p["provider"]) for p in pages] == [
        ("0", "succeeded", "search"),
        ("1", "failed", "search"),
    ]
    assert pages[0]["inputs"] == {"page": 0}
    assert pages[1]["inputs"] == {"page": 1, "cursor": "c1"}
    assert [p["id"] for p in shard_items(shard, "failed")] == ["1"]


RUN: dict[str, Any] = {
    "metadata": {"name": "wf1", "namespace": "ns", "uid": "u-1", "labels": {"oxygen.dev/workflow": "enrich"}},
    "spec": {"kind": "workflow", "workflowRef": {"name": "enrich"}, "inputs": {"company": "Acme"}},
    "status": {"phase": "completed", "kind": "workflow", "itemsTotal": 3, "itemsFailed": 1},
}


def test_workflow_run_and_failure_shapes() -> None:
    shape = workflow_run_shape(RUN)
    assert (shape["id"], shape["kind"], shape["status"], shape["items_total"]) == (
        "u-1",
        "workflow",
        "completed",
        3,
    )
    assert (shape["workflow"], shape["inputs"]) == ("enrich", {"company": "Acme"})
    steps = [s for s in shard_items(step_shard()) if s["status"] == "failed"]
    failure = failure_shape(RUN, steps)
    assert failure["name"] == "wf1"
    assert failure["workflow"] == "enrich"
    assert failure["failed_steps"] == [
        {
            "id": "1",
            "step": "enrich",
            "provider": "clearbit",
            "error": "HTTP 400: quota",
            "attempt_count": 3,
            "error_class": "http_4xx",
            "finished_at": None,
        }
    ]
    assert is_workflow_run(RUN)
    assert is_workflow_run(RUN, "enrich")
    assert not is_workflow_run(RUN, "other")
    assert not is_workflow_run({"metadata": {}, "spec": {"kind": "column"}})


def ingestion_args(**overrides: Any) -> argparse.Namespace:
    argv = ["table-ingestions", "create-tool-page", "--table", "leads", "--provider", "search"]
    argv += ["--url", "http://127.0.0.1:9/search", "--query", "saas"]
    for flag, value in overrides.items():
        argv += [f"--{flag.replace('_', '-')}", str(value)]
    return build_parser().parse_args(argv)


def test_ingestion_manifest_sets_only_what_was_given() -> None:
    minimal = ingestion_manifest(ingestion_args(), "leads-x", "ns")
    assert minimal == {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "Run",
        "metadata": {"name": "leads-x", "namespace": "ns"},
        "spec": {
            "kind": "ingestion",
            "trigger": "user",
            "table": "leads",
            "ingestion": {"provider": "search", "url": "http://127.0.0.1:9/search", "query": "saas"},
        },
    }
    full = ingestion_manifest(
        ingestion_args(page_size=5, max_pages=3, cost_per_page="0.5", mode="dry_run"), "n", "ns"
    )
    assert full["spec"]["mode"] == "dry_run"
    assert full["spec"]["ingestion"] == {
        "provider": "search",
        "url": "http://127.0.0.1:9/search",
        "query": "saas",
        "pageSize": 5,
        "maxPages": 3,
        "costPerPage": "0.5",
    }
    shape = ingestion_run_shape({"metadata": {"name": "n"}, **full})
    assert (shape["kind"], shape["provider"], shape["query"], shape["page_size"], shape["max_pages"]) == (
        "ingestion", "search", "saas", 5, 3,
    )  # fmt: skip


def test_max_pages_must_be_positive() -> None:
    with pytest.raises(SystemExit) as exit_:
        ingestion_args(max_pages=0)
    assert exit_.value.code == EXIT_USAGE
