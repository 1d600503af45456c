"""Items from ConfigMaps, run-level failures, dry_run and smoke_test with promotion."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from oxygen.devcluster.wait import wait_for
from tests.support.provider import Provider, echo
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ECHO = {"provider": "echo", "builtin": "echo"}


def config_map(api: client.ApiClient, ns: str, name: str, key: str, text: str) -> None:
    client.CoreV1Api(api).create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {key: text}})


def test_items_from_jsonl_and_csv(runs: Runs, api: client.ApiClient) -> None:
    jsonl = "\n".join(json.dumps({"rowId": f"j{i}", "inputs": {"i": i}}) for i in range(30))
    config_map(api, runs.ns, "rows-jsonl", "rows.jsonl", jsonl)
    config_map(api, runs.ns, "rows-csv", "rows.csv", "rowId,company\nc1,Acme\nc2,Globex\nc3,Initech\n")
    runs.create(
        "from-jsonl",
        {
            "itemsFrom": {"configMapKeyRef": {"name": "rows-jsonl", "key": "rows.jsonl"}},
            "producer": ECHO,
            "batchSize": 10,
        },
    )
    runs.create(
        "from-csv",
        {"itemsFrom": {"configMapKeyRef": {"name": "rows-csv", "key": "rows.csv"}}, "producer": ECHO},
    )
    assert runs.wait_phase("from-jsonl")["itemsSucceeded"] == 30
    assert runs.wait_phase("from-csv")["itemsSucceeded"] == 3
    csv_items = {i["rowId"]: i for i in runs.items("from-csv").values()}
    assert csv_items["c2"]["outputs"] == {"company": "Globex"}


def test_bad_items_source_fails_the_run_with_a_clear_message(runs: Runs, api: client.ApiClient) -> None:
    config_map(
        api, runs.ns, "broken", "rows.jsonl", '{"inputs": {"a": 1}}\n{"inputs": {"a": 2}}\n{"inputs": oops}\n'
    )
    runs.create(
        "missing", {"itemsFrom": {"configMapKeyRef": {"name": "nope", "key": "rows.jsonl"}}, "producer": ECHO}
    )
    runs.create(
        "malformed",
        {"itemsFrom": {"configMapKeyRef": {"name": "broken", "key": "rows.jsonl"}}, "producer": ECHO},
    )
    missing = runs.wait_phase("missing")
    assert missing["phase"] == "failed"
    assert "ConfigMap 'nope' not found" in missing["message"]
    malformed = runs.wait_phase("malformed")
    assert malformed["phase"] == "failed"
    assert "line 3" in malformed["message"]
    failed = {c["type"]: c for c in malformed["conditions"]}["Failed"]
    assert failed["status"] == "True"
    assert failed["reason"] == "ItemsSourceMalformed"
    assert any(e.reason == "ItemsSourceMalformed" and "line 3" in e.message for e in runs.events("malformed"))
    # The operator survived both: a healthy run still completes.
    runs.create("after", {"items": [{"inputs": {"x": 1}}], "producer": ECHO})
    assert runs.wait_phase("after")["phase"] == "succeeded"


def test_dry_run_calls_nothing_and_creates_no_job(runs: Runs) -> None:
    with Provider(echo()) as provider:
        runs.create(
            "dry",
            {
                "mode": "dry_run",
                "items": [{"inputs": {"i": i}} for i in range(12)],
                "batchSize": 5,
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "0.5"},
            },
        )
        status = runs.wait_phase("dry")
        assert provider.calls == []
    assert status["phase"] == "succeeded"
    assert status["itemsSkipped"] == 12
    assert status["itemsSucceeded"] == 0
    assert status["creditsEstimated"] == "6"
    assert status["creditsUsed"] == "0"
    assert runs.jobs("dry") == []
    assert len(runs.shards("dry")) == 3


def test_smoke_test_then_promotion_runs_exactly_the_rest(runs: Runs) -> None:
    with Provider(echo()) as provider:
        runs.create(
            "smoke",
            {
                "mode": "smoke_test",
                "smokeTest": {"sampleSize": 5},
                "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(40)],
                "batchSize": 10,
                "producer": {"provider": "p", "http": {"url": provider.url}},
            },
        )
        status = runs.wait_phase("smoke")
        assert (status["itemsSucceeded"], status["itemsSkipped"]) == (5, 35)
        assert {c.row_id for c in provider.calls} == {f"r{i}" for i in range(5)}
        runs.patch("smoke", {"mode": "live"})
        wait_for(
            lambda: runs.status("smoke").get("itemsSucceeded") == 40,
            timeout=120,
            what="promotion to finish",
            describe=lambda: str(runs.status("smoke")),
        )
        status = runs.wait_phase("smoke", "succeeded")
        calls = provider.calls
    assert len(calls) == 40
    assert len({c.row_id for c in calls}) == 40
    assert (status["itemsSucceeded"], status["itemsSkipped"], status["itemsTotal"]) == (40, 0, 40)
