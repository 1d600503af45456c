"""The Workflow controller's test environment: the operator as a subprocess on a fake clock, with its
webhook server on a free loopback port, and helpers for Workflows and their Runs.

The operator here runs with the test-only fake clock (`OXYGEN_FAKE_CLOCK_FILE`): schedules are driven
by rewriting a file, not by waiting minutes. The session's own operator is stopped meanwhile (two
operators would both act on the same Workflows) and restarted afterwards. Test modules import the
`triggers` fixture (module scope: one operator per module) and the helpers from here.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.controllers.workflow.apply import record_created
from oxygen.controllers.workflow.runs import LABEL_WORKFLOW
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from oxygen.kube.client import Kube
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, with_latency

# The webhook's rate limit in these tests: a burst of 12 calls per workflow, then one per 100 s.
WEBHOOK_BURST = 12
WEBHOOK_RATE = 0.01
# Short enough that a rotated token is seen within a test, long enough to serve a burst from memory.
WEBHOOK_CACHE_SECONDS = 2

BASE = dt.datetime(2030, 1, 1, 0, 0, 30, tzinfo=dt.UTC)  # fake "now": 30 s past a minute
TOKEN = "s3cret-hook-token"


@dataclass
class Env:
    proc: OperatorProcess
    clock_file: Path
    port: int
    custom: client.CustomObjectsApi
    core: client.CoreV1Api

    def set_clock(self, at: dt.datetime) -> None:
        tmp = self.clock_file.with_suffix(".tmp")
        tmp.write_text(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        tmp.replace(self.clock_file)  # atomic: the operator never reads half a timestamp

    def restart(self) -> None:
        self.proc.kill(signal.SIGKILL)
        self.proc.start()
        self.wait_webhook()

    def wait_webhook(self) -> None:
        def up() -> bool:
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(up, timeout=60, what="the operator's webhook port", describe=lambda: self.proc.tail(30))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def triggers(
    cluster: LocalCluster,
    crds: None,
    api: client.ApiClient,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    was_running = operator.alive()
    operator.stop()
    workdir = tmp_path_factory.mktemp("trigger-operator")
    clock_file = workdir / "clock"
    port = _free_port()
    proc = OperatorProcess(
        cluster.kubeconfig,
        workdir,
        extra_env={
            "OXYGEN_FAKE_CLOCK_FILE": str(clock_file),
            "OXYGEN_WEBHOOK_PORT": str(port),
            "OXYGEN_WEBHOOK_HOST": "127.0.0.1",
            "OXYGEN_WEBHOOK_BURST": str(WEBHOOK_BURST),
            "OXYGEN_WEBHOOK_RATE": str(WEBHOOK_RATE),
            "OXYGEN_WEBHOOK_CACHE_SECONDS": str(WEBHOOK_CACHE_SECONDS),
        },
    )
    env = Env(proc, clock_file, port, client.CustomObjectsApi(api), client.CoreV1Api(api))
    env.set_clock(BASE)
    proc.start()
    try:
        env.wait_webhook()
        yield env
    finally:
        proc.stop()
        if was_running:
            operator.start()


@pytest.fixture(autouse=True)
def operator_log_on_failure(triggers: Env) -> Iterator[None]:
    """Printed at teardown; pytest shows it only for a failed test."""
    yield
    print(f"--- trigger operator log (tail) ---\n{triggers.proc.tail(150)}")


# -- helpers ---------------------------------------------------------------------------------------

ECHO_STEP = {"name": "only", "producer": {"provider": "echo", "builtin": "echo"}}


@pytest.fixture
def slow_provider() -> Iterator[Provider]:
    """A provider that answers after 10 minutes: a run calling it stays unfinished until canceled."""
    with Provider(with_latency(600)) as provider:
        yield provider


def slow_step(provider: Provider) -> dict[str, Any]:
    return {
        "name": "wait",
        "producer": {"provider": "slow", "http": {"url": provider.url, "timeoutSeconds": 900}},
    }


def create_workflow(
    env: Env, ns: str, name: str, steps: list[dict[str, Any]] | None = None, **spec: Any
) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {
            "steps": steps or [ECHO_STEP],
            "runTemplate": {"mode": "live", "retry": {"maxAttempts": 1}},
            **spec,
        },
    }
    created: dict[str, Any] = env.custom.create_namespaced_custom_object(
        GROUP, VERSION, ns, "workflows", body
    )
    return created


def get_workflow(env: Env, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = env.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "workflows", name)
    return result


def runs_of(env: Env, ns: str, workflow: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = env.custom.list_namespaced_custom_object(
        GROUP, VERSION, ns, "runs", label_selector=f"{LABEL_WORKFLOW}={workflow}"
    )["items"]
    return sorted(items, key=lambda r: r["metadata"]["name"])


def names(runs: list[dict[str, Any]]) -> list[str]:
    return [r["metadata"]["name"] for r in runs]


def get_run(env: Env, ns: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = env.custom.get_namespaced_custom_object(GROUP, VERSION, ns, "runs", name)
    return result


def cancel(env: Env, ns: str, name: str) -> None:
    env.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "runs", name, {"spec": {"cancel": True}})
    wait_for(
        lambda: (get_run(env, ns, name).get("status") or {}).get("phase") == "canceled",
        timeout=60,
        what=f"run {name} to be canceled",
    )


def workflow_events(env: Env, ns: str, name: str) -> list[str]:
    return [e.reason for e in env.core.list_namespaced_event(ns).items if e.involved_object.name == name]


def column_run(
    env: Env, ns: str, name: str, labels: dict[str, str], owner: dict[str, Any] | None = None
) -> None:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if owner is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Workflow",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
            }
        ]
    env.custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "runs",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Run",
            "metadata": meta,
            "spec": {"items": [{"inputs": {"a": 1}}], "producer": {"provider": "echo", "builtin": "echo"}},
        },
    )


def record_runs(env: Env, ns: str, workflow: str, run_names: list[str]) -> None:
    """Record runs in the workflow's status as created by it (what `oxygen workflows run` does)."""
    runs = {name: get_run(env, ns, name)["metadata"]["uid"] for name in run_names}
    record_created(Kube(env.custom.api_client), ns, workflow, runs)


def wait_phase(env: Env, ns: str, name: str, phase: str) -> None:
    wait_for(
        lambda: (get_run(env, ns, name).get("status") or {}).get("phase") == phase,
        timeout=90,
        what=f"run {name} to reach {phase}",
        describe=lambda: json.dumps(get_run(env, ns, name).get("status"))[:500],
    )


def post(
    env: Env, path: str, body: bytes, headers: dict[str, str] | None = None, chunked: bool = False
) -> tuple[int, dict[str, Any]]:
    status, reply, _ = post_reply(env, path, body, headers, chunked)
    return status, reply


def post_reply(
    env: Env, path: str, body: bytes, headers: dict[str, str] | None = None, chunked: bool = False
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST to the operator's webhook server: (status, JSON body, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=30)
    try:
        if chunked:
            conn.request("POST", path, body=iter([body]), headers=headers or {}, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"{}"), dict(reply.getheaders())
    finally:
        conn.close()
