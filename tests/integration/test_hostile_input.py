"""Hostile input against the real control plane (issues 19.1, 20.1, 20.2 schema part, 20.4).

What the API server can check is refused at apply with a clear message (provider URLs, credit
amounts); what it accepts ends as a phase or a Failed condition with a message on that Run alone
(inputs nested up to the API server's own limit), and never stops the operator or other Runs."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from oxygen.api.common import CREDITS_PATTERN, MAX_INPUT_KEYS, PORT_MESSAGE, URL_MESSAGE
from oxygen.api.labels import label_value
from oxygen.devcluster.wait import wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ECHO = {"provider": "echo", "builtin": "echo"}
# Issue 20's name: a `-` at position 63 (the old label cut ended there), 253 characters in all.
LONG_NAME = ("n-0050" + "y" * 56 + "-" + "z" * 253)[:253]
TOP = "999999999999999999.999999999"


@contextlib.contextmanager
def deep_json() -> Iterator[None]:
    """This test process sends and reads objects nested ~10,000 levels deep, as the operator does."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(25_000)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def failed(runs: Runs, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := runs.status(name)) and (c := condition(s, "Failed")) and c["status"] == "True" and s,
        timeout=60,
        what=f"run {name} to fail",
        describe=lambda: str(runs.status(name))[:500],
    )


def log_since(operator: OperatorProcess, offset: int) -> str:
    return operator.log.read_bytes()[offset:].decode(errors="replace")


def refusal(err: pytest.ExceptionInfo[ApiException]) -> str:
    assert err.value.status == 422
    return str(json.loads(err.value.body)["message"])


def test_deep_inputs_fail_their_run_alone(runs: Runs, operator: OperatorProcess) -> None:
    """Issue 19.1: 500-900 levels gave no status, 1,000 stopped the operator and every later Run."""
    offset = operator.log.stat().st_size
    applied: dict[str, float] = {}
    with deep_json():
        for levels in (40, 900, 1000, 5000, 9990):
            name = f"deep-{levels}"
            runs.create(
                name, {"items": [{"inputs": {"ok": 1}}, {"inputs": nested(levels)}], "producer": ECHO}
            )
            applied[name] = time.monotonic()
        # Rows from a ConfigMap are inputs too (the API server sees only a string there).
        row = json.dumps({"rowId": "deep", "inputs": nested(2000)})
        runs.core.create_namespaced_config_map(
            runs.ns, {"metadata": {"name": "rows"}, "data": {"rows.jsonl": row}}
        )
        runs.create(
            "deep-rows",
            {"itemsFrom": {"configMapKeyRef": {"name": "rows", "key": "rows.jsonl"}}, "producer": ECHO},
        )
        applied["deep-rows"] = time.monotonic()
        runs.create_from_rows("valid", 100)
        seconds = {}
        for name, started in applied.items():
            status = failed(runs, name)
            seconds[name] = round(time.monotonic() - started, 1)
            assert status["phase"] == "failed"
            where = "item '0' inputs" if name == "deep-rows" else "spec.items[1].inputs"
            assert status["message"].startswith(f"{where} nests deeper than 32 levels"), status["message"]
            assert condition(status, "Failed")["reason"] == "InputsTooDeep"  # type: ignore[index]
            assert runs.shards(name) == []
        assert runs.wait_phase("valid", timeout=120)["phase"] == "succeeded"
        time.sleep(3)  # a pass that repeated the failure would have posted again by now
        for name in applied:
            warnings = [e for e in runs.events(name) if e.reason == "InputsTooDeep"]
            assert len(warnings) == 1 and warnings[0].type == "Warning"
    print("seconds from apply to Failed:", seconds)
    assert operator.alive()
    assert "Traceback" not in log_since(operator, offset)


def test_inputs_with_too_many_keys_are_refused_at_apply(runs: Runs) -> None:
    wide = {f"k{i}": i for i in range(MAX_INPUT_KEYS + 1)}
    with pytest.raises(ApiException) as err:
        runs.create("wide", {"items": [{"inputs": wide}], "producer": ECHO})
    assert (
        f"spec.items[0].inputs: Too many: {MAX_INPUT_KEYS + 1}: must have at most {MAX_INPUT_KEYS}"
        in refusal(err)
    )


def test_a_name_of_253_characters_runs(runs: Runs, operator: OperatorProcess) -> None:
    """Issue 20.1: the label cut to 63 characters ended in `-`; the ServiceAccount got a 422, forever."""
    offset = operator.log.stat().st_size
    runs.create(LONG_NAME, {"items": [{"inputs": {"i": i}} for i in range(5)], "producer": ECHO})
    status = runs.wait_phase(LONG_NAME, timeout=120)
    assert status["phase"] == "succeeded" and status["itemsSucceeded"] == 5
    label = label_value(LONG_NAME)
    assert len(label) == 63 and label[-11] == "-"
    assert runs.shards(LONG_NAME) and runs.jobs(LONG_NAME)
    assert "Traceback" not in log_since(operator, offset)


def test_provider_urls_are_refused_at_apply(runs: Runs) -> None:
    """Issue 20.2: these were accepted and failed 7 worker pods over 11.5 minutes."""
    for url, message in (("http://127.0.0.1:99999/x", PORT_MESSAGE), ("http://", URL_MESSAGE)):
        with pytest.raises(ApiException) as err:
            runs.create(
                "bad-url", {"items": [{"inputs": {}}], "producer": {"provider": "p", "http": {"url": url}}}
            )
        assert f'spec.producer.http.url: Invalid value: "{url}": {message}' in refusal(err)
        with pytest.raises(ApiException) as err:
            ingestion = {"provider": "p", "url": url, "query": "q"}
            runs.create("bad-ingestion", {"kind": "ingestion", "ingestion": ingestion})
        assert message in refusal(err)
        step = {"name": "s", "producer": {"provider": "p", "http": {"url": url}}}
        with pytest.raises(ApiException) as err:
            runs.custom.create_namespaced_custom_object(
                "oxygen.dev",
                "v1alpha1",
                runs.ns,
                "workflows",
                {
                    "apiVersion": "oxygen.dev/v1alpha1",
                    "kind": "Workflow",
                    "metadata": {"name": "w"},
                    "spec": {"steps": [step]},
                },
            )
        assert message in refusal(err)


def test_credit_amounts_are_bounded_and_exact_at_the_bound(runs: Runs) -> None:
    """Issue 20.4: the arithmetic rounded 1.0000000000000000000000000000001 times 2 to 2."""
    for cost in ("1.0000000000000000000000000000001", "9" * 300, "1e999", "NaN", "-1"):
        with pytest.raises(ApiException) as err:
            runs.create("too-precise", {"items": [{"inputs": {}}], "producer": {**ECHO, "costPerItem": cost}})
        # The pattern the API server quotes is the message: 18 digits, a point, 9 digits.
        assert f"spec.producer.costPerItem in body should match '{CREDITS_PATTERN}'" in refusal(err)
    grants = [{"id": f"g{i}", "amount": TOP} for i in range(4)]
    runs.custom.create_namespaced_custom_object(
        "oxygen.dev",
        "v1alpha1",
        runs.ns,
        "creditaccounts",
        {
            "apiVersion": "oxygen.dev/v1alpha1",
            "kind": "CreditAccount",
            "metadata": {"name": "default"},
            "spec": {"grants": grants},
        },
    )
    runs.create(
        "at-the-bound",
        {"items": [{"inputs": {"i": i}} for i in range(3)], "producer": {**ECHO, "costPerItem": TOP}},
    )
    status = runs.wait_phase("at-the-bound", timeout=120)
    assert status["phase"] == "succeeded"
    assert status["creditsUsed"] == "2999999999999999999.999999997"

    def account() -> dict[str, Any]:
        body = runs.custom.get_namespaced_custom_object(
            "oxygen.dev", "v1alpha1", runs.ns, "creditaccounts", "default"
        )
        return body.get("status") or {}

    settled = wait_for(
        lambda: (s := account()).get("captured") == "2999999999999999999.999999997" and s,
        timeout=60,
        what="the account to capture the run's credits",
        describe=lambda: str(account()),
    )
    assert settled["granted"] == "3999999999999999999.999999996"
    assert settled["available"] == "999999999999999999.999999999"
    total = Decimal(settled["captured"]) + Decimal(settled["reserved"]) + Decimal(settled["available"])
    assert Decimal(settled["granted"]) == total


def test_an_error_that_is_not_the_runs_fault_stalls_then_recovers(
    runs: Runs, operator: OperatorProcess
) -> None:
    """Job creation forbidden (403: a policy, a quota; it may lift) is retried with backoff and said on
    the run as Stalled, not failed; once allowed, the run finishes."""
    offset = operator.log.stat().st_size
    admission = client.AdmissionregistrationV1Api(runs.api)
    name = f"no-jobs-{runs.ns}"[:63]
    admission.create_validating_admission_policy(
        {
            "metadata": {"name": name},
            "spec": {
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["batch"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["jobs"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": "no jobs here", "reason": "Forbidden"}],
            },
        }
    )
    binding = {
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": runs.ns}}
            },
        },
    }
    admission.create_validating_admission_policy_binding(binding)
    try:
        wait_for(lambda: refuses_jobs(runs), timeout=30, what="the policy to refuse Jobs")
        runs.create("forbidden", {"items": [{"inputs": {"i": i}} for i in range(3)], "producer": ECHO})
        stalled = wait_for(
            lambda: (c := condition(runs.status("forbidden"), "Stalled")) and c["status"] == "True" and c,
            timeout=60,
            what="a Stalled condition",
            describe=lambda: str(runs.status("forbidden"))[:500],
        )
        assert stalled["reason"] == "ReconcileError"
        assert "403 Forbidden" in stalled["message"] and "no jobs here" in stalled["message"]
        assert runs.status("forbidden")["phase"] != "failed"
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)
    status = runs.wait_phase("forbidden", timeout=180)
    assert status["phase"] == "succeeded"
    assert condition(status, "Stalled")["status"] == "False"  # type: ignore[index]
    log = log_since(operator, offset)
    lines = [line for line in log.splitlines() if "forbidden: reconcile failed" in line]
    # Backoff 2, 4, 8, … s: a handful of lines, not one every 2 s; the traceback once.
    assert 1 <= len(lines) <= 8, lines
    assert log.count("Traceback") <= 1


def refuses_jobs(runs: Runs) -> bool:
    job = {
        "metadata": {"generateName": "probe-"},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}
        },
    }
    try:
        created = runs.batch.create_namespaced_job(runs.ns, job, dry_run="All")
    except ApiException as err:
        return bool(err.status == 403)
    return created is None
