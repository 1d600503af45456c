"""Issue 12, finding 5: the operator under exactly the chart's RBAC, through what users do after a run
was created — a retryFailed bump, a smoke_test promoted to live, a Workflow fired by its webhook and
the run page — with no 403 anywhere in its log. (Pause and cancel under the chart's RBAC are in
test_chart.py.)

The operator is the rendered Deployment's command line, authenticated as the chart's ServiceAccount
with a TokenRequest token, watching one namespace that enforces the `restricted` standard; its run
page and webhook listen on the ports the chart's values give them.
"""

from __future__ import annotations

import http.client
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.chart import (
    RESTRICTED,
    ChartOperator,
    apply_release,
    chart_crds,
    create_namespace,
    delete_cluster_scoped,
    free_port,
    helm,
    only,
    sa_kubeconfig,
)
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, Reply, echo
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster
__all__ = ["chart_crds", "helm"]  # session fixtures

ECHO = {"provider": "echo", "builtin": "echo"}
RUN_PAGE_AUDIENCE = "oxygen-run-page"  # the run pages accept only tokens minted for them
REFUSED = re.compile(r"\b403\b|Forbidden|forbidden")


@dataclass
class ChartEnv:
    api: client.ApiClient
    work: str
    runs: Runs
    operator: ChartOperator
    metrics_port: int
    page_port: int
    webhook_port: int

    def log_mark(self) -> int:
        return len(self.operator.text())

    def refusals_since(self, mark: int) -> list[str]:
        return [line for line in self.operator.text()[mark:].splitlines() if REFUSED.search(line)]


@pytest.fixture(scope="module")
def chart_env(
    cluster: LocalCluster,
    api: client.ApiClient,
    chart_crds: None,
    helm: Path,
    operator: OperatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ChartEnv]:
    tmp = tmp_path_factory.mktemp("chart-operator")
    system, work = f"oxygen-system-{uuid.uuid4().hex[:5]}", f"work-{uuid.uuid4().hex[:6]}"
    create_namespace(api, system)
    create_namespace(api, work, RESTRICTED)
    was_running = operator.alive()
    operator.stop()  # the session's cluster-admin operator must not do the work for us
    docs: list[dict[str, Any]] = []
    process: ChartOperator | None = None
    try:
        metrics_port, page_port, webhook_port = free_port(), free_port(), free_port()
        values = {
            "watchNamespaces": [work],
            "peering": {"enabled": False},
            "health": {"port": free_port()},
            "metrics": {"port": metrics_port},
            "web": {"port": page_port},
            "webhook": {"port": webhook_port},
            "webBaseUrl": "https://oxygen.example.com",
        }
        release, docs = apply_release(cluster, helm, tmp, system, values)
        kubeconfig = sa_kubeconfig(cluster, system, f"{release}-oxygen-operator", tmp / "operator.kubeconfig")
        process = ChartOperator(only(docs, "Deployment"), kubeconfig, tmp / "operator.log")
        process.start()
        wait_for(
            lambda: fetch(f"http://127.0.0.1:{metrics_port}/healthz")[0] == 200,
            timeout=60,
            what="the operator's web server",
            describe=lambda: process.text()[-2000:] if process else "",
        )
        yield ChartEnv(api, work, Runs(api, work), process, metrics_port, page_port, webhook_port)
    finally:
        if process is not None:
            process.stop()
        delete_cluster_scoped(cluster, docs)
        core = client.CoreV1Api(api)
        for ns in (work, system):
            core.delete_namespace(ns, propagation_policy="Background")
        if was_running:
            operator.start()


def fetch(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError as err:
        return 0, str(err)


def post(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read() or b"{}")
    finally:
        conn.close()


def run_page_token(api: client.ApiClient, ns: str, name: str) -> str:
    """A token of a new ServiceAccount, minted for the run pages' audience."""
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
    spec = {"expirationSeconds": 3600, "audiences": [RUN_PAGE_AUDIENCE]}
    request = core.create_namespaced_service_account_token(name, ns, {"spec": spec})
    token: str = request.status.token
    return token


def test_retry_failed_bump_under_the_charts_rbac(chart_env: ChartEnv) -> None:
    env, runs = chart_env, chart_env.runs
    mark = env.log_mark()
    failing = {"0", "5", "10"}

    def picky(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        if item_id in failing:
            return Reply(status=400, body={"error": "unknown company"})
        return Reply(body=body["item"]["inputs"])

    with Provider(picky) as provider:
        spec = {
            "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(12)],
            "producer": {"provider": "picky", "http": {"url": provider.url}},
            "batchSize": 4,
        }
        runs.create("retry", spec)
        first = runs.wait_phase("retry", timeout=120)
        assert (first["phase"], first["itemsSucceeded"], first["itemsFailed"]) == ("completed", 9, 3), first
        provider.behaviour = echo()
        runs.patch("retry", {"retryFailed": 1})
        wait_for(
            lambda: runs.status("retry").get("observedRetryFailed") == 1, timeout=60, what="retry started"
        )
        final = runs.wait_phase("retry", "succeeded", "completed", timeout=120)
    assert (final["phase"], final["itemsSucceeded"], final["itemsFailed"]) == ("succeeded", 12, 0), final
    # The retry round's shard was added to the run's worker Role (an update) before it ran.
    shards = [s["metadata"]["name"] for s in runs.shards("retry")]
    assert len(shards) == 4
    role = client.RbacAuthorizationV1Api(env.api).read_namespaced_role("retry-worker", env.work)
    assert all(sorted(rule.resource_names) == sorted(shards) for rule in role.rules), role.rules
    assert env.refusals_since(mark) == []


def test_smoke_test_promotion_under_the_charts_rbac(chart_env: ChartEnv) -> None:
    env, runs = chart_env, chart_env.runs
    mark = env.log_mark()
    with Provider(echo()) as provider:
        runs.create(
            "smoke",
            {
                "mode": "smoke_test",
                "smokeTest": {"sampleSize": 3},
                "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(12)],
                "batchSize": 4,
                "producer": {"provider": "p", "http": {"url": provider.url}},
            },
        )
        sampled = runs.wait_phase("smoke", timeout=120)
        assert (sampled["itemsSucceeded"], sampled["itemsSkipped"]) == (3, 9), sampled
        runs.patch("smoke", {"mode": "live"})
        wait_for(
            lambda: runs.status("smoke").get("itemsSucceeded") == 12,
            timeout=120,
            what="promotion to finish",
            describe=lambda: str(runs.status("smoke")),
        )
        final = runs.wait_phase("smoke", "succeeded", timeout=60)
        assert len(provider.calls) == 12
    assert (final["itemsSucceeded"], final["itemsSkipped"], final["itemsTotal"]) == (12, 0, 12)
    assert "Promoted" in {e.reason for e in runs.events("smoke")}
    assert env.refusals_since(mark) == []


def test_webhook_fire_under_the_charts_rbac(chart_env: ChartEnv) -> None:
    env, ns = chart_env, chart_env.work
    mark = env.log_mark()
    token = f"hook-{uuid.uuid4().hex}"
    client.CoreV1Api(env.api).create_namespaced_secret(
        ns, {"metadata": {"name": "hook"}, "stringData": {"token": token}}
    )
    custom = client.CustomObjectsApi(env.api)
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "workflows",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Workflow",
            "metadata": {"name": "hooked"},
            "spec": {
                "steps": [{"name": "only", "producer": ECHO}],
                "runTemplate": {"mode": "live", "retry": {"maxAttempts": 1}},
                "triggers": {"webhook": {"tokenSecretRef": {"name": "hook"}}},
            },
        },
    )
    path = f"/hooks/{ns}/hooked"
    status, reply = post(env.webhook_port, path, b"{}", {"Authorization": "Bearer wrong"})
    assert status == 401, reply  # the Secret was read, and the token compared
    status, reply = post(env.webhook_port, path, b'{"lead": "ada"}', {"Authorization": f"Bearer {token}"})
    assert status == 201, reply
    run = env.runs.wait_phase(reply["name"], timeout=120)
    assert run["phase"] == "succeeded", run
    wait_for(
        lambda: (
            custom.get_namespaced_custom_object(GROUP, VERSION, ns, "workflows", "hooked")
            .get("status", {})
            .get("runsCreated")
            == 1
        ),
        timeout=30,
        what="the Workflow's runsCreated",
    )
    log = env.operator.text()
    assert token not in log
    assert env.refusals_since(mark) == []


def test_run_page_under_the_charts_rbac(chart_env: ChartEnv) -> None:
    env, runs = chart_env, chart_env.runs
    mark = env.log_mark()
    runs.create(
        "paged", {"items": [{"rowId": f"p{i}", "inputs": {"i": i}} for i in range(4)], "producer": ECHO}
    )
    assert runs.wait_phase("paged", timeout=120)["phase"] == "succeeded"
    viewer = run_page_token(env.api, env.work, "viewer")
    stranger = run_page_token(env.api, env.work, "stranger")
    rbac = client.RbacAuthorizationV1Api(env.api)
    rbac.create_namespaced_role(
        env.work,
        {
            "metadata": {"name": "run-viewer"},
            "rules": [{"apiGroups": [GROUP], "resources": ["runs"], "verbs": ["get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        env.work,
        {
            "metadata": {"name": "run-viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "run-viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": env.work}],
        },
    )
    page = f"http://127.0.0.1:{env.page_port}/runs/{env.work}/paged"
    assert fetch(page, stranger)[0] == 403
    code, html = fetch(page, viewer)
    assert code == 200, html
    # The page shows the run's Events: the operator listed them with its own identity.
    reasons = {e.reason for e in runs.events("paged")}
    assert "Planned" in reasons and "Planned" in html, html[-2000:]
    assert env.refusals_since(mark) == []


def test_metered_run_under_the_charts_rbac(chart_env: ChartEnv) -> None:
    """The credit ledger: the account is listed and read, its status written, its daemon finalized."""
    env, runs = chart_env, chart_env.runs
    mark = env.log_mark()
    runs.custom.create_namespaced_custom_object(
        GROUP,
        "v1alpha1",
        env.work,
        "creditaccounts",
        {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": "CreditAccount",
            "metadata": {"name": "default"},
            "spec": {"grants": [{"id": "plan", "amount": "20"}], "onInsufficient": "queue"},
        },
    )
    with Provider(echo()) as provider:
        runs.create(
            "metered",
            {
                "items": [{"rowId": f"m{i}", "inputs": {"i": i}} for i in range(6)],
                "producer": {"provider": "p", "http": {"url": provider.url}, "costPerItem": "1"},
            },
        )
        final = runs.wait_phase("metered", timeout=120)
    assert (final["phase"], final["creditsUsed"], final["creditAccount"]) == ("succeeded", "6", "default")

    def account() -> dict[str, Any]:
        body = runs.custom.get_namespaced_custom_object(
            GROUP, "v1alpha1", env.work, "creditaccounts", "default"
        )
        status: dict[str, Any] = body.get("status") or {}
        return status

    wait_for(
        lambda: (s := account()).get("captured") == "6" and s.get("available") == "14",
        timeout=60,
        what="the account to capture 6 credits",
        describe=lambda: str(account()),
    )
    assert env.refusals_since(mark) == []
