"""Workflow triggers against the real control plane, with the operator as a subprocess.

The operator here runs with the test-only fake clock (`OXYGEN_FAKE_CLOCK_FILE`): schedules are driven
by rewriting a file, not by waiting minutes. Its webhook server listens on a free loopback port
(`OXYGEN_WEBHOOK_PORT`). The session's own operator is stopped meanwhile (two operators would both
act on the same Workflows) and restarted afterwards.

These tests assert on what the triggers do: Run creation, names, labels, inputs, owners, the
Workflow's status, pruning. Phases come from the real operator, never from status patches: the
schedule tests' workflow step calls a provider that answers after 10 minutes, so its runs stay
unfinished until the test sets `spec.cancel: true` (then the operator marks them canceled); the
succeeded runs of the history test and the sources of event triggers are column runs (echo).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

import oxygen.cli.operator as operator_cli
from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from oxygen.triggers.events import fired_annotation
from oxygen.triggers.runs import LABEL_TRIGGER, LABEL_WORKFLOW, event_run_name, schedule_run_name
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, with_latency

pytestmark = pytest.mark.cluster

BASE = dt.datetime(2030, 1, 1, 0, 0, 30, tzinfo=dt.UTC)  # fake "now": 30 s past a minute
TOKEN = "s3cret-hook-token"


class TriggerOperator(OperatorProcess):
    """The operator with the trigger handlers loaded even before cli/operator.py imports them."""

    def start(self) -> TriggerOperator:
        if "oxygen.triggers.handlers" in Path(operator_cli.__file__).read_text():
            super().start()
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        boot = (
            "import sys, oxygen.triggers.handlers; from oxygen.cli.main import main; "
            "sys.exit(main(['operator', '--log-level', 'INFO']))"
        )
        with self.log.open("ab") as out:
            out.write(f"\n===== operator start #{self.starts + 1} (with trigger handlers) =====\n".encode())
            self.popen = subprocess.Popen(
                [sys.executable, "-c", boot],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self


@dataclass
class Env:
    proc: TriggerOperator
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
    proc = TriggerOperator(
        cluster.kubeconfig,
        workdir,
        extra_env={
            "OXYGEN_FAKE_CLOCK_FILE": str(clock_file),
            "OXYGEN_WEBHOOK_PORT": str(port),
            "OXYGEN_WEBHOOK_HOST": "127.0.0.1",
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
    conn = http.client.HTTPConnection("127.0.0.1", env.port, timeout=30)
    try:
        if chunked:
            conn.request("POST", path, body=iter([body]), headers=headers or {}, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"{}")
    finally:
        conn.close()


# -- (a) schedule ----------------------------------------------------------------------------------


def test_schedule_fires_on_the_fake_clock_and_forbid_skips_while_a_run_is_active(
    triggers: Env, namespace: str, slow_provider: Provider
) -> None:
    env, ns = triggers, namespace
    env.set_clock(BASE)
    schedule = {"cron": "* * * * *", "concurrencyPolicy": "Forbid"}
    wf = create_workflow(
        env,
        ns,
        "tick",
        [slow_step(slow_provider)],
        inputs={"table": "leads"},
        triggers={"schedule": schedule},
    )

    # Created years "before" the fake now: one catch-up fire (the latest minute), not a storm.
    first = schedule_run_name("tick", BASE.replace(second=0))
    wait_for(lambda: names(runs_of(env, ns, "tick")) == [first], timeout=30, what=f"run {first}")
    run = get_run(env, ns, first)
    assert run["metadata"]["labels"][LABEL_WORKFLOW] == "tick"
    assert run["metadata"]["labels"][LABEL_TRIGGER] == "schedule"
    assert run["metadata"]["ownerReferences"][0]["uid"] == wf["metadata"]["uid"]
    assert run["metadata"]["ownerReferences"][0]["controller"] is True
    assert run["spec"]["kind"] == "workflow"
    assert run["spec"]["trigger"] == "schedule"
    assert run["spec"]["workflowRef"] == {"name": "tick"}
    assert run["spec"]["inputs"] == {"table": "leads"}
    status = wait_for(
        lambda: (s := get_workflow(env, ns, "tick").get("status") or {}).get("runsCreated") == 1 and s,
        timeout=30,
        what="workflow status",
    )
    assert status["lastScheduleTime"] == "2030-01-01T00:00:00Z"
    assert status["active"] == [first]

    # A minute later the first run is still unfinished: Forbid skips the fire.
    env.set_clock(BASE + dt.timedelta(minutes=1))
    wait_for(
        lambda: "SkippedConcurrent" in workflow_events(env, ns, "tick"), timeout=30, what="a skipped fire"
    )
    assert names(runs_of(env, ns, "tick")) == [first]

    # Once it is finished, the next minute fires again; the skipped one is not started late.
    cancel(env, ns, first)
    wait_for(
        lambda: get_workflow(env, ns, "tick")["status"]["active"] == [], timeout=30, what="no active run"
    )
    time.sleep(2)
    assert names(runs_of(env, ns, "tick")) == [first]
    env.set_clock(BASE + dt.timedelta(minutes=2))
    second = schedule_run_name("tick", BASE.replace(second=0) + dt.timedelta(minutes=2))
    wait_for(
        lambda: names(runs_of(env, ns, "tick")) == sorted([first, second]), timeout=30, what=f"run {second}"
    )
    # The count and the fire's lastScheduleTime are one status write.
    status = wait_for(
        lambda: (s := get_workflow(env, ns, "tick")["status"]).get("runsCreated") == 2 and s,
        timeout=30,
        what="runsCreated 2",
    )
    assert status["lastScheduleTime"] == "2030-01-01T00:02:00Z"
    assert status["active"] == [second]


def test_history_limit_prunes_the_oldest_finished_runs(
    triggers: Env, namespace: str, slow_provider: Provider
) -> None:
    env, ns = triggers, namespace
    env.set_clock(BASE)
    wf = create_workflow(
        env,
        ns,
        "hist",
        [slow_step(slow_provider)],
        triggers={"schedule": {"cron": "* * * * *"}},
        successfulRunsHistoryLimit=1,
        failedRunsHistoryLimit=1,
    )
    fired: list[str] = []
    for minute in range(3):
        env.set_clock(BASE + dt.timedelta(minutes=minute))
        name = schedule_run_name("hist", BASE.replace(second=0) + dt.timedelta(minutes=minute))
        wait_for(lambda: name in names(runs_of(env, ns, "hist")), timeout=30, what=f"run {name}")  # noqa: B023
        fired.append(name)
        if minute < 2:
            cancel(env, ns, name)  # finished: canceled counts against failedRunsHistoryLimit
    # Two canceled runs, limit 1: the older goes; the unfinished newest is never pruned.
    wait_for(
        lambda: names(runs_of(env, ns, "hist")) == fired[1:],
        timeout=30,
        what="the oldest canceled run pruned",
    )
    assert "PrunedRun" in workflow_events(env, ns, "hist")

    # Succeeded runs of the workflow (column runs it owns stand in for them), limit 1: the newest stays.
    for name in ("hist-s1", "hist-s2", "hist-s3"):
        column_run(env, ns, name, {LABEL_WORKFLOW: "hist", LABEL_TRIGGER: "user"}, owner=wf)
        wait_phase(env, ns, name, "succeeded")
    wait_for(
        lambda: names(runs_of(env, ns, "hist")) == sorted([*fired[1:], "hist-s3"]),
        timeout=30,
        what="the older succeeded runs pruned",
        describe=lambda: str(names(runs_of(env, ns, "hist"))),
    )


# -- (b) webhook -----------------------------------------------------------------------------------


def test_webhook_token_size_and_body_checks(triggers: Env, namespace: str) -> None:
    env, ns = triggers, namespace
    env.core.create_namespaced_secret(
        ns,
        {
            "metadata": {"name": "hook"},
            "stringData": {"token": TOKEN + "\n"},
        },  # a trailing newline is ignored
    )
    create_workflow(
        env,
        ns,
        "hooked",
        inputs={"source": "default", "limit": 5},
        triggers={"webhook": {"tokenSecretRef": {"name": "hook"}, "maxBodyBytes": 256}},
    )
    create_workflow(env, ns, "no-hook")
    path = f"/hooks/{ns}/hooked"
    good = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    status, reply1 = post(env, path, json.dumps({"lead": "ada", "limit": 7}).encode(), good)
    assert status == 201, reply1
    run = get_run(env, ns, reply1["name"])
    assert run["metadata"]["uid"] == reply1["uid"]
    assert reply1["name"].startswith("hooked-")
    assert run["spec"]["trigger"] == "webhook"
    assert run["metadata"]["labels"][LABEL_TRIGGER] == "webhook"
    assert run["spec"]["inputs"] == {"source": "default", "limit": 7, "lead": "ada"}
    status, reply2 = post(env, path, b'{"lead": "grace"}', {"X-Oxygen-Token": TOKEN})
    assert status == 201, reply2

    refused = {
        "wrong token": (401, post(env, path, b"{}", {"Authorization": "Bearer nope"})),
        "missing token": (401, post(env, path, b"{}")),
        "token of another scheme": (401, post(env, path, b"{}", {"Authorization": f"Basic {TOKEN}"})),
        "oversized": (413, post(env, path, json.dumps({"x": "y" * 300}).encode(), good)),
        "oversized, chunked": (
            413,
            post(env, path, json.dumps({"x": "y" * 300}).encode(), good, chunked=True),
        ),
        "not JSON": (400, post(env, path, b"{not json", good)),
        "not an object": (400, post(env, path, b"[1, 2]", good)),
        "unknown workflow": (404, post(env, f"/hooks/{ns}/nope", b"{}", good)),
        "no webhook trigger": (404, post(env, f"/hooks/{ns}/no-hook", b"{}", good)),
    }
    for case, (expected, (status, reply)) in refused.items():
        assert status == expected, (case, status, reply)
        assert reply.get("error"), case
    assert "not valid JSON" in refused["not JSON"][1][1]["error"]
    assert "JSON object" in refused["not an object"][1][1]["error"]
    assert "maxBodyBytes (256 bytes)" in refused["oversized"][1][1]["error"]

    assert names(runs_of(env, ns, "hooked")) == sorted([reply1["name"], reply2["name"]])
    assert runs_of(env, ns, "no-hook") == []
    wait_for(
        lambda: get_workflow(env, ns, "hooked").get("status", {}).get("runsCreated") == 2,
        timeout=30,
        what="runsCreated 2",
    )
    assert TOKEN not in env.proc.log.read_text(errors="replace")


# -- (c) event triggers ----------------------------------------------------------------------------


def test_event_trigger_fires_once_per_finished_run_also_across_a_restart(
    triggers: Env, namespace: str
) -> None:
    env, ns = triggers, namespace
    trigger = {
        "selector": {"matchLabels": {"stage": "enrich"}},
        "phase": "succeeded",
        "inputs": {"mode": "clean"},
    }
    create_workflow(env, ns, "cleanup", inputs={"mode": "full", "keep": 3}, triggers={"events": [trigger]})

    def fired_for(source: str) -> list[dict[str, Any]]:
        uid = get_run(env, ns, source)["metadata"]["uid"]
        wanted = event_run_name("cleanup", uid, 0)
        return [r for r in runs_of(env, ns, "cleanup") if r["metadata"]["name"] == wanted]

    column_run(env, ns, "enrich-1", {"stage": "enrich"})
    column_run(env, ns, "score-1", {"stage": "score"})  # does not match the selector
    wait_phase(env, ns, "enrich-1", "succeeded")
    wait_phase(env, ns, "score-1", "succeeded")
    wait_for(lambda: fired_for("enrich-1"), timeout=30, what="the event run for enrich-1")
    (run,) = runs_of(env, ns, "cleanup")
    assert run["spec"]["trigger"] == "event"
    assert run["metadata"]["labels"][LABEL_TRIGGER] == "event"
    assert run["spec"]["inputs"] == {"mode": "clean", "keep": 3}
    assert run["metadata"]["annotations"]["oxygen.dev/source-run"] == "enrich-1"
    mark = fired_annotation("cleanup")
    wait_for(
        lambda: get_run(env, ns, "enrich-1")["metadata"].get("annotations", {}).get(mark) == "0",
        timeout=30,
        what="enrich-1 marked as fired",
    )

    # SIGKILL and restart: the finished run is seen again, and fires nothing new.
    env.restart()
    column_run(env, ns, "enrich-2", {"stage": "enrich"})
    wait_phase(env, ns, "enrich-2", "succeeded")
    wait_for(lambda: fired_for("enrich-2"), timeout=60, what="the event run for enrich-2 after the restart")
    assert len(fired_for("enrich-1")) == 1
    assert len(runs_of(env, ns, "cleanup")) == 2

    # A crash between creating the run and marking the source: the deterministic name makes the
    # repeated create a no-op, and the source is marked again.
    env.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, "runs", "enrich-1", {"metadata": {"annotations": {mark: None}}}
    )
    wait_for(
        lambda: get_run(env, ns, "enrich-1")["metadata"].get("annotations", {}).get(mark) == "0",
        timeout=30,
        what="enrich-1 marked again",
    )
    assert len(fired_for("enrich-1")) == 1
    assert len(runs_of(env, ns, "cleanup")) == 2

    # The event run deleted (as the history limit would): the marked source does not fire again.
    (gone,) = fired_for("enrich-1")
    env.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "runs", gone["metadata"]["name"])
    env.restart()
    column_run(env, ns, "enrich-3", {"stage": "enrich"})
    wait_phase(env, ns, "enrich-3", "succeeded")
    wait_for(lambda: fired_for("enrich-3"), timeout=60, what="the event run for enrich-3")
    time.sleep(2)
    assert fired_for("enrich-1") == []
    assert len(runs_of(env, ns, "cleanup")) == 2  # enrich-2's and enrich-3's
    assert all(
        r["metadata"]["annotations"]["oxygen.dev/source-run"] != "score-1"
        for r in runs_of(env, ns, "cleanup")
    )
