"""A tenant's ways to read Secrets through a Run's worker, tried on the real control plane; each fails.

- Another step's credentials (finding 6): a workflow whose `command` step prints its environment
  (to stdout as its outputs, and to stderr in a failure) while an earlier step holds an API key from
  its own Secret.
- Echoed credentials (finding 7): a provider that echoes the request's headers in a 200 body and in
  a 400 error.

The unique secret values are then searched for in everything the tenant can read: the Run, its
RunShards, the namespace's Events and the worker pods' logs.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

import pytest

from oxygen.devcluster import LocalCluster
from tests.support.header_echo import HeaderEcho
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

PRINT_ENV = "import json,os,sys; sys.stdin.read(); print(json.dumps(dict(os.environ)))"
FAIL_WITH_ENV = (
    "import os,sys; sys.stdin.read(); sys.stderr.write(repr(sorted(os.environ.items()))); sys.exit(2)"
)


def secret(runs: Runs, name: str, data: dict[str, str]) -> None:
    runs.core.create_namespaced_secret(runs.ns, {"metadata": {"name": name}, "stringData": data})


def tenant_view(runs: Runs, cluster: LocalCluster, name: str) -> str:
    """Everything a user who may read Runs, RunShards, Events and pod logs in the namespace reads."""
    api = runs.api
    parts: list[Any] = [runs.get(name), runs.shards(name)]
    parts += [api.sanitize_for_serialization(e) for e in runs.core.list_namespaced_event(runs.ns).items]
    logs = sorted((cluster.workdir / "node" / "pods").glob(f"{runs.ns}_*/*.log"))
    assert logs, "the worker pods left no logs to search"
    parts += [path.read_text(errors="replace") for path in logs]
    return json.dumps(parts, default=str)


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex}"


def test_a_command_step_cannot_read_another_steps_secret(runs: Runs, cluster: LocalCluster) -> None:
    api_key = unique("step-key")
    secret(runs, "lookup-account", {"X-Api-Key": api_key})
    with HeaderEcho() as echo:
        steps = [
            {
                "name": "lookup",
                "producer": {
                    "provider": "lookup",
                    "http": {"url": echo.url("ok"), "headersFrom": {"secretRef": {"name": "lookup-account"}}},
                },
            },
            {"name": "dump", "producer": {"provider": "dump", "command": [sys.executable, "-c", PRINT_ENV]}},
            {
                "name": "dump-err",
                "producer": {"provider": "dump", "command": [sys.executable, "-c", FAIL_WITH_ENV]},
            },
        ]
        runs.custom.create_namespaced_custom_object(
            "oxygen.dev",
            "v1alpha1",
            runs.ns,
            "workflows",
            {
                "apiVersion": "oxygen.dev/v1alpha1",
                "kind": "Workflow",
                "metadata": {"name": "dumper"},
                "spec": {"steps": steps},
            },
        )
        runs.create(
            "wf-dump", {"kind": "workflow", "workflowRef": {"name": "dumper"}, "retry": {"maxAttempts": 1}}
        )
        status = runs.wait_phase("wf-dump", timeout=180)
        # The attack had something to steal: the lookup step did send the key.
        assert echo.seen("X-Api-Key") == {api_key}
    items = {i["step"]: i for i in runs.items("wf-dump").values()}
    assert [items[s]["status"] for s in ("lookup", "dump", "dump-err")] == [
        "succeeded",
        "succeeded",
        "failed",
    ]
    printed = items["dump"]["outputs"]
    assert "OXYGEN_SHARD" in printed, "the step printed its environment"
    assert not [k for k in printed if "HEADER" in k], (
        f"a header variable reached the command: {sorted(printed)}"
    )
    assert "OXYGEN_SHARD" in items["dump-err"]["error"] and "HEADER" not in items["dump-err"]["error"]
    assert status["phase"] in ("failed", "completed"), status
    assert api_key not in tenant_view(runs, cluster, "wf-dump")


def test_a_provider_echoing_the_headers_gets_them_redacted(runs: Runs, cluster: LocalCluster) -> None:
    token = unique("tok")
    secret(runs, "provider-account", {"Authorization": f"Bearer {token}", "X-Api-Key": token[::-1]})
    headers_from = {"secretRef": {"name": "provider-account"}}
    with HeaderEcho() as echo:
        for name, path in (("echo-ok", "ok"), ("echo-bad", "bad")):
            runs.create(
                name,
                {
                    "items": [{"rowId": f"row-{i}", "inputs": {"i": i}} for i in range(3)],
                    "producer": {
                        "provider": "echoing",
                        "http": {"url": echo.url(path), "headersFrom": headers_from},
                    },
                    "retry": {"maxAttempts": 1},
                },
            )
        ok = runs.wait_phase("echo-ok", timeout=180)
        bad = runs.wait_phase("echo-bad", timeout=180)
        assert echo.seen("Authorization") == {f"Bearer {token}"} and echo.seen("X-Api-Key") == {token[::-1]}
    assert (ok["phase"], ok["itemsSucceeded"]) == ("succeeded", 3), ok
    assert (bad["itemsFailed"], bad["itemsSucceeded"]) == (3, 0), bad
    outputs = next(iter(runs.items("echo-ok").values()))["outputs"]
    assert outputs["echo"]["Authorization"] == "[redacted]" and outputs["echo"]["X-Api-Key"] == "[redacted]"
    assert "[redacted]" in json.dumps(bad.get("failedItems") or runs.items("echo-bad"))
    for name in ("echo-ok", "echo-bad"):
        seen = tenant_view(runs, cluster, name)
        assert token not in seen and token[::-1] not in seen
