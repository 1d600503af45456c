"""The Helm chart against the real control plane: lint and template, server-side dry-run, the
`restricted` Pod Security Standard, least-privilege RBAC proven by running Runs as the chart's
identities, and the Argo CD health check (docs/argocd-health.lua) on real Run objects.

helm comes from hack/tools/build.sh (built from its Go module, cached); Lua is Debian's lua5.4
(`make setup` installs it).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from oxygen.api import admission
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.chart import (
    CHART,
    REPO,
    RESTRICTED,
    ChartOperator,
    apply_release,
    by_kind,
    can_i,
    chart_crds,
    create_namespace,
    delete_cluster_scoped,
    dump,
    free_port,
    helm,
    kubectl,
    only,
    render,
    sa_kubeconfig,
)
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, Reply, echo, with_latency
from tests.support.runs import Runs

HEALTH_LUA = REPO / "docs" / "argocd-health.lua"
__all__ = ["chart_crds", "helm"]  # session fixtures, shared with test_chart_rbac.py


EVERYTHING_ON = {
    "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}},
    "grafanaDashboard": {"enabled": True},
    "worker": {
        "image": {"repository": "registry.example/oxygen-worker", "tag": "1.2.3"},
        "resources": {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "nodeSelector": {"pool": "batch"},
        "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        "serviceAccountName": "shared-worker",
    },
    "webBaseUrl": "https://oxygen.example.com",
    "logLevel": "DEBUG",
}


# -- helpers ----------------------------------------------------------------------------------------


# -- lint and template (no cluster) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [{}, {"watchNamespaces": ["team-a", "team-b"], **EVERYTHING_ON}, {"peering": {"enabled": False}}],
    ids=["defaults", "listed-namespaces-everything-on", "standalone"],
)
def test_helm_lint_and_template(helm: Path, tmp_path: Path, values: dict[str, Any]) -> None:
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    lint = subprocess.run(
        [str(helm), "lint", "--strict", str(CHART), "-f", str(values_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    docs = render(helm, tmp_path, "oxy", "oxygen-system", values)
    kinds = sorted(d["kind"] for d in docs)
    base = [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "Service",
        "Service",  # the run pages
        "ServiceAccount",
        *ADMISSION_KINDS,
        # The admission policy confining the operator's RoleBindings and Roles to worker identities.
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        # Webhook tokens: Secret get, bound where webhooks are served.
        "ClusterRole",
    ]
    if values.get("watchNamespaces"):
        expected = [*base, "ConfigMap", "KopfPeering", "KopfPeering", "PrometheusRule"]
        expected += ["RoleBinding", "RoleBinding", "ServiceMonitor", "RoleBinding", "RoleBinding"]
    elif values.get("peering", {}).get("enabled", True):
        expected = [*base, "ClusterKopfPeering", "ClusterRoleBinding", "ClusterRoleBinding"]
    else:
        expected = [*base, "ClusterRoleBinding", "ClusterRoleBinding"]
    assert kinds == sorted(expected)
    # Every object has a name and, unless cluster-scoped, the namespace it belongs in.
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering", *ADMISSION_KINDS}
    for doc in docs:
        assert doc["metadata"]["name"]
        if doc["kind"] not in cluster_scoped:
            assert doc["metadata"]["namespace"] in ("oxygen-system", "team-a", "team-b"), doc["metadata"]


# The admission policies (oxygen/api/admission.py): a policy and its binding per guarded resource
# (Runs and Workflows twice, Providers, Tables) and the Run's Table Secret check.
ADMISSION_KINDS = [doc["kind"] for doc in admission.documents()]


def test_admission_policies_are_the_generated_ones_behind_their_toggle(helm: Path, tmp_path: Path) -> None:
    def key(doc: dict[str, Any]) -> tuple[str, str]:
        return doc["kind"], doc["metadata"]["name"]

    def generated(doc: dict[str, Any]) -> bool:  # not the chart's own worker-identity policy
        return doc["kind"] in ADMISSION_KINDS and not doc["metadata"]["name"].endswith("-worker-identity")

    docs = render(helm, tmp_path, "oxy", "oxygen-system", {})
    shipped = sorted((d for d in docs if generated(d)), key=key)
    assert shipped == sorted(admission.documents(), key=key)
    docs = render(helm, tmp_path, "oxy", "oxygen-system", {"admissionPolicies": {"enabled": False}})
    assert not [d for d in docs if generated(d)]


def test_values_reach_the_operator_and_its_workers(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, "oxy", "oxygen-system", {"watchNamespaces": ["team-a"], **EVERYTHING_ON})
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["oxygen"]
    assert container["args"] == [
        "operator",
        "--log-level=DEBUG",
        "--web-base-url=https://oxygen.example.com",
        "--liveness=http://0.0.0.0:8081/healthz",
        "--namespace=team-a",
        "--peering=oxygen-operator",
        "--peering-lifetime=10",
    ]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["OXYGEN_WORKER_IMAGE"] == "registry.example/oxygen-worker:1.2.3"
    assert json.loads(env["OXYGEN_WORKER_RESOURCES"]) == EVERYTHING_ON["worker"]["resources"]
    assert json.loads(env["OXYGEN_WORKER_NODE_SELECTOR"]) == {"pool": "batch"}
    assert json.loads(env["OXYGEN_WORKER_TOLERATIONS"]) == EVERYTHING_ON["worker"]["tolerations"]
    assert env["OXYGEN_WORKER_SERVICE_ACCOUNT"] == "shared-worker"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "metrics": 8080,
        "health": 8081,
        "webhook": 8082,
        "web": 8083,
    }
    assert env["OXYGEN_WEBHOOK_PORT"] == "8082" and env["OXYGEN_METRICS_PORT"] == "8080"
    assert env["OXYGEN_WEB_PORT"] == "8083"  # the run pages, apart from /metrics
    services = {s["metadata"]["name"].rsplit("-", 1)[-1]: s for s in docs if s["kind"] == "Service"}
    assert services["metrics"]["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert services["webhook"]["spec"]["ports"] == [
        {"name": "webhook", "port": 8082, "targetPort": "webhook", "protocol": "TCP"}
    ]
    assert services["web"]["spec"]["ports"] == [
        {"name": "web", "port": 8083, "targetPort": "web", "protocol": "TCP"}
    ]
    assert only(docs, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    dashboard = only(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    json.loads(dashboard["data"]["oxygen-operator.json"])
    # Listed namespaces: the namespaced rules are bound per namespace, never cluster-wide.
    bindings = by_kind(docs, "ClusterRoleBinding")
    assert [b["roleRef"]["name"] for b in bindings] == ["oxy-oxygen-operator-cluster"]
    assert sorted(
        (b["metadata"]["namespace"], b["roleRef"]["name"]) for b in by_kind(docs, "RoleBinding")
    ) == [("team-a", "oxy-oxygen-operator"), ("team-a", "oxy-oxygen-operator-webhook-tokens")]
    # The worker image defaults to the operator's; the image tag to the chart's appVersion.
    defaults = render(helm, tmp_path, "oxy", "oxygen-system", {})
    (default_container,) = only(defaults, "Deployment")["spec"]["template"]["spec"]["containers"]
    default_env = {e["name"]: e.get("value") for e in default_container["env"]}
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert (
        default_container["image"] == default_env["OXYGEN_WORKER_IMAGE"] == f"oxygen-operator:{app_version}"
    )


# -- against the API server ---------------------------------------------------------------------------


@pytest.mark.cluster
@pytest.mark.parametrize("mode", ["all-namespaces", "listed-namespaces"])
def test_rendered_chart_passes_server_side_dry_run(
    cluster: LocalCluster, chart_crds: None, helm: Path, namespace: str, tmp_path: Path, mode: str
) -> None:
    values: dict[str, Any] = dict(EVERYTHING_ON)
    if mode == "listed-namespaces":
        values["watchNamespaces"] = [namespace, "default"]
    docs = render(helm, tmp_path, "oxy", namespace, values, "--include-crds")
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(dump(docs))
    done = kubectl(cluster, "apply", "--dry-run=server", "-f", str(manifest))
    assert done.returncode == 0, done.stderr
    accepted = [line for line in done.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(docs), done.stdout
    assert "Warning" not in done.stderr, done.stderr


@pytest.mark.cluster
def test_operator_pod_is_admitted_under_the_restricted_pod_security_standard(
    cluster: LocalCluster, api: client.ApiClient, helm: Path, tmp_path: Path
) -> None:
    ns = f"restricted-{uuid.uuid4().hex[:6]}"
    create_namespace(api, ns, RESTRICTED)
    try:
        docs = render(helm, tmp_path, "oxy", ns, {})
        deployment = only(docs, "Deployment")
        done = kubectl(cluster, "apply", "-f", "-", input=dump([only(docs, "ServiceAccount")]))
        assert done.returncode == 0, done.stderr
        # warn=restricted: the API server names any violation of the workload's pod template.
        done = kubectl(cluster, "apply", "--dry-run=server", "-f", "-", input=dump([deployment]))
        assert done.returncode == 0 and "PodSecurity" not in done.stderr, done.stderr
        template = deployment["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "operator-from-template", "namespace": ns, **template["metadata"]},
            "spec": template["spec"],
        }
        done = kubectl(cluster, "create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
        assert done.returncode == 0, done.stderr
        # The control: the same pod without the hardening is refused (enforcement is on).
        weak = copy.deepcopy(pod)
        del weak["spec"]["containers"][0]["securityContext"]
        del weak["spec"]["securityContext"]
        done = kubectl(cluster, "create", "--dry-run=server", "-f", "-", input=json.dumps(weak))
        assert done.returncode != 0 and "violates PodSecurity" in done.stderr, done.stderr
    finally:
        client.CoreV1Api(api).delete_namespace(ns, propagation_policy="Background")


@pytest.mark.cluster
def test_runs_complete_with_only_the_charts_rbac_and_nothing_more(
    cluster: LocalCluster,
    api: client.ApiClient,
    chart_crds: None,
    helm: Path,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
) -> None:
    """The operator runs as the chart's ServiceAccount (a TokenRequest token), watching one namespace
    that enforces the `restricted` standard; shard pods run as their runs' worker identities."""
    work = f"work-{uuid.uuid4().hex[:6]}"
    create_namespace(api, work, RESTRICTED)
    was_running = operator.alive()
    operator.stop()  # the session's cluster-admin operator must not do the work for us
    docs: list[dict[str, Any]] = []
    chart_operator: ChartOperator | None = None
    try:
        values = {
            "watchNamespaces": [work],
            "peering": {"enabled": False},
            "health": {"port": free_port()},
            "metrics": {"port": free_port()},
            "web": {"port": free_port()},
            "webBaseUrl": "https://oxygen.example.com",
        }
        release, docs = apply_release(cluster, helm, tmp_path, namespace, values)
        account = f"{release}-oxygen-operator"
        kubeconfig = sa_kubeconfig(cluster, namespace, account, tmp_path / "operator.kubeconfig")
        chart_operator = ChartOperator(only(docs, "Deployment"), kubeconfig, tmp_path / "operator.log")
        chart_operator.start()
        runs = Runs(api, work)
        core = client.CoreV1Api(api)

        # A full run: items from a ConfigMap, 3 shards, 2 at a time, workers writing shard status.
        rows = "\n".join(json.dumps({"rowId": f"r{i}", "inputs": {"i": i}}) for i in range(12))
        core.create_namespaced_config_map(work, {"metadata": {"name": "rows"}, "data": {"rows.jsonl": rows}})
        runs.create(
            "alpha",
            {
                "itemsFrom": {"configMapKeyRef": {"name": "rows", "key": "rows.jsonl"}},
                "producer": {"provider": "echo", "builtin": "echo"},
                "batchSize": 4,
                "parallelism": 2,
            },
        )
        # Pause (Jobs suspended by patch) and cancel (Jobs deleted) a slower second run.
        with Provider(with_latency(0.2, echo())) as provider:
            runs.create(
                "beta",
                {
                    "items": [{"rowId": f"b{i}", "inputs": {"i": i}} for i in range(40)],
                    "producer": {"provider": "slow", "http": {"url": provider.url}},
                    "batchSize": 10,
                    "parallelism": 1,
                },
            )
            alpha = runs.wait_phase("alpha", timeout=120)
            wait_for(lambda: runs.status("beta").get("itemsSucceeded", 0) >= 3, timeout=60, what="beta runs")
            runs.patch("beta", {"paused": True})
            runs.wait_phase("beta", "paused", timeout=60)
            assert all(j.spec.suspend for j in runs.jobs("beta") if not j.status.succeeded)
            runs.patch("beta", {"cancel": True})
            beta = runs.wait_phase("beta", "canceled", timeout=60)
        assert (alpha["phase"], alpha["itemsTotal"], alpha["itemsSucceeded"], alpha["itemsFailed"]) == (
            "succeeded",
            12,
            12,
            0,
        ), alpha
        assert alpha["webUrl"] == f"https://oxygen.example.com/runs/{work}/alpha"
        assert beta["itemsSucceeded"] + beta["itemsSkipped"] == 40 and runs.jobs("beta") == []
        # Shard pods were admitted in a namespace enforcing `restricted`, and ran as the run's worker.
        pods = runs.pods("alpha")
        assert len(pods) >= 3 and all(p.spec.service_account_name == "alpha-worker" for p in pods)
        assert {"Planned", "Succeeded"} <= {e.reason for e in runs.events("alpha")}
        # A run naming a Provider (its header Secret checked by a metadata-only read, its price
        # charged, its status written) and one naming a Provider that does not exist (failed at once).
        core.create_namespaced_secret(
            work, {"metadata": {"name": "gamma-key"}, "stringData": {"X-Api-Key": "g-key"}}
        )
        with Provider(echo(), required_headers={"X-Api-Key": "g-key"}) as priced:
            http = {"url": priced.url, "headersFrom": {"secretRef": {"name": "gamma-key"}}}
            runs.custom.create_namespaced_custom_object(
                "oxygen.dev",
                "v1alpha1",
                work,
                "providers",
                {
                    "apiVersion": "oxygen.dev/v1alpha1",
                    "kind": "Provider",
                    "metadata": {"name": "priced"},
                    "spec": {"http": http, "price": "1"},
                },
            )
            rows3 = [{"inputs": {"i": i}} for i in range(3)]
            runs.create("gamma", {"items": rows3, "producer": {"providerRef": {"name": "priced"}}})
            runs.create("delta", {"items": rows3, "producer": {"providerRef": {"name": "absent"}}})
            gamma = runs.wait_phase("gamma", timeout=120)
            delta = runs.wait_phase("delta", timeout=60)
        assert (gamma["phase"], gamma["creditsUsed"]) == ("succeeded", "3"), gamma
        assert delta["phase"] == "failed", delta
        assert delta["message"].startswith('providers.oxygen.dev "absent" not found'), delta

        def provider_ready() -> bool:
            found = runs.custom.get_namespaced_custom_object(
                "oxygen.dev", "v1alpha1", work, "providers", "priced"
            )
            return any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in found.get("status", {}).get("conditions", [])
            )

        wait_for(provider_ready, timeout=30, what="the Provider's status written under the chart's RBAC")
        log = chart_operator.text()
        assert "403" not in log and "Forbidden" not in log, log[-4000:]

        # -- the operator's identity: what it needs in the watched namespace, and nothing else --
        me = f"system:serviceaccount:{namespace}:{account}"
        allowed = [
            ("list", "runs.oxygen.dev"),
            ("watch", "runs.oxygen.dev"),
            ("patch", "runs.oxygen.dev"),
            ("patch", "runs.oxygen.dev", "--subresource=status"),
            ("create", "runshards.oxygen.dev"),
            ("watch", "runshards.oxygen.dev"),
            ("patch", "runshards.oxygen.dev", "--subresource=status"),
            ("create", "jobs.batch"),
            ("patch", "jobs.batch"),
            ("delete", "jobs.batch"),
            ("get", "configmaps"),
            ("create", "events"),
            ("list", "events"),  # the run page
            ("create", "serviceaccounts"),
            ("get", "serviceaccounts"),  # an existing worker identity is read back (retry rounds)
            ("update", "roles.rbac.authorization.k8s.io"),
            ("create", "rolebindings.rbac.authorization.k8s.io"),
            ("get", "rolebindings.rbac.authorization.k8s.io"),
            # Workflow triggers create runs and prune history; webhooks read their token Secret.
            ("create", "runs.oxygen.dev"),
            ("delete", "runs.oxygen.dev"),
            ("get", "secrets"),
            # Providers: read when a run names one, their status written by the Provider controller.
            ("get", "providers.oxygen.dev"),
            ("watch", "providers.oxygen.dev"),
            ("patch", "providers.oxygen.dev", "--subresource=status"),
            # The rate-share annotation of a Provider's shards (the spec is immutable by CRD rule).
            ("patch", "runshards.oxygen.dev"),
            # Never-run shards of a round whose recording failed, replaced when it is planned again.
            ("delete", "runshards.oxygen.dev"),
        ]
        refused = [
            ("list", "secrets"),
            ("watch", "secrets"),
            ("create", "pods"),
            ("update", "runs.oxygen.dev"),
            ("update", "runshards.oxygen.dev"),  # a shard's spec is immutable; workers get only `get`
            ("update", "rolebindings.rbac.authorization.k8s.io"),
            ("delete", "roles.rbac.authorization.k8s.io"),
            ("escalate", "roles.rbac.authorization.k8s.io"),
            ("bind", "roles.rbac.authorization.k8s.io"),
            ("delete", "serviceaccounts"),
            ("create", "serviceaccounts", "--subresource=token"),
            ("impersonate", "serviceaccounts"),
            ("list", "configmaps"),
        ]
        for verb, resource, *flags in allowed:
            assert can_i(cluster, me, verb, resource, "-n", work, *flags), (
                f"operator cannot {verb} {resource}"
            )
        for verb, resource, *flags in refused:
            assert not can_i(cluster, me, verb, resource, "-n", work, *flags), (
                f"operator may {verb} {resource}"
            )
        # Outside the watched namespace, and cluster-wide, it holds nothing of the namespaced rules.
        for verb, resource in (("list", "runs.oxygen.dev"), ("create", "jobs.batch"), ("get", "configmaps")):
            assert not can_i(cluster, me, verb, resource, "-n", namespace)
            assert not can_i(cluster, me, verb, resource, "--all-namespaces")
        for verb, resource in (("create", "clusterroles"), ("list", "nodes"), ("delete", "namespaces")):
            assert not can_i(cluster, me, verb, resource)
        # kopf lists the namespaces when it watches a list of them (read-only).
        assert can_i(cluster, me, "watch", "namespaces")
        assert can_i(cluster, me, "watch", "customresourcedefinitions.apiextensions.k8s.io")
        assert not can_i(cluster, me, "update", "customresourcedefinitions.apiextensions.k8s.io")

        # -- a worker's identity: its own run's shards, get and patch, and nothing else --
        worker = f"system:serviceaccount:{work}:alpha-worker"
        own = [s["metadata"]["name"] for s in runs.shards("alpha")]
        other = [s["metadata"]["name"] for s in runs.shards("beta")]
        assert len(own) == 3 and other
        for shard in own:
            assert can_i(cluster, worker, "get", f"runshards.oxygen.dev/{shard}", "-n", work)
            assert can_i(
                cluster, worker, "patch", f"runshards.oxygen.dev/{shard}", "-n", work, "--subresource=status"
            )
            assert not can_i(cluster, worker, "delete", f"runshards.oxygen.dev/{shard}", "-n", work)
        for shard in other:
            assert not can_i(cluster, worker, "get", f"runshards.oxygen.dev/{shard}", "-n", work)
            assert not can_i(
                cluster, worker, "patch", f"runshards.oxygen.dev/{shard}", "-n", work, "--subresource=status"
            )
        for verb, resource in (
            ("list", "runshards.oxygen.dev"),
            ("get", "secrets"),
            ("list", "secrets"),
            ("patch", "runs.oxygen.dev/alpha"),
            ("get", "runs.oxygen.dev/alpha"),
            ("get", "configmaps/rows"),
            ("create", "jobs.batch"),
            ("create", "events"),
        ):
            assert not can_i(cluster, worker, verb, resource, "-n", work), f"worker may {verb} {resource}"
        # And as real requests made with the worker's identity: refused by the API server.
        core.create_namespaced_secret(work, {"metadata": {"name": "provider-key"}, "stringData": {"k": "v"}})
        for args in (
            ("get", "secret", "provider-key"),
            ("get", "runshard", other[0]),
            ("patch", "run", "alpha", "--type=merge", "-p", '{"spec": {"paused": true}}'),
            ("patch", "run", "alpha", "--subresource=status", "--type=merge", "-p", '{"status": {}}'),
        ):
            done = kubectl(cluster, *args, "-n", work, "--as", worker)
            assert done.returncode != 0 and "Forbidden" in done.stderr, (args, done.stdout, done.stderr)
    finally:
        if chart_operator is not None:
            chart_operator.stop()
        delete_cluster_scoped(cluster, docs)
        client.CoreV1Api(api).delete_namespace(work, propagation_policy="Background")
        if was_running:
            operator.start()


@pytest.mark.cluster
def test_cluster_wide_install_binds_cluster_wide_and_peers_cluster_wide(
    cluster: LocalCluster, chart_crds: None, helm: Path, namespace: str, tmp_path: Path
) -> None:
    release, docs = apply_release(cluster, helm, tmp_path, namespace, {})
    try:
        me = f"system:serviceaccount:{namespace}:{release}-oxygen-operator"
        for verb, resource in (("watch", "runs.oxygen.dev"), ("create", "jobs.batch"), ("create", "events")):
            assert can_i(cluster, me, verb, resource, "--all-namespaces")
        for verb in ("get", "list", "watch", "patch"):
            assert can_i(cluster, me, verb, "clusterkopfpeerings.kopf.dev/oxygen-operator")
        assert not can_i(cluster, me, "delete", "clusterkopfpeerings.kopf.dev/oxygen-operator")
        assert not can_i(cluster, me, "list", "secrets", "--all-namespaces")
        assert not can_i(cluster, me, "list", "namespaces")
        assert can_i(cluster, me, "create", "tokenreviews.authentication.k8s.io")
        assert can_i(cluster, me, "create", "subjectaccessreviews.authorization.k8s.io")
        done = kubectl(cluster, "get", "clusterkopfpeering", "oxygen-operator", "-o", "name")
        assert done.stdout.strip() == "clusterkopfpeering.kopf.dev/oxygen-operator", done.stderr
    finally:
        delete_cluster_scoped(cluster, docs)


# -- the Argo CD health check --------------------------------------------------------------------------


def lua_string(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        out.append(ch if 32 <= byte < 127 and ch not in '"\\' else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def lua_literal(value: Any) -> str:
    """A JSON value as a Lua table constructor (what Argo CD hands the script as `obj`)."""
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    return "{" + ", ".join(f"[{lua_string(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    lua = shutil.which("lua5.4")
    if lua is None:
        pytest.fail("lua5.4 is not installed: run `make setup` (it installs Debian's lua5.4)")
    script = (
        f"obj = {lua_literal(obj)}\n"
        f"local hs = dofile({lua_string(str(HEALTH_LUA))})\n"
        'io.write(hs.status, "\\n", hs.message)\n'
    )
    done = subprocess.run([lua, "-"], input=script, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    status, message = done.stdout.split("\n", 1)
    return status, message


@pytest.mark.cluster
def test_argocd_health_check_on_real_runs(runs: Runs) -> None:
    echo_producer = {"provider": "echo", "builtin": "echo"}
    fresh = runs.create("fresh", {"items": [{"inputs": {"i": 0}}], "producer": echo_producer})
    assert "status" not in fresh or not fresh["status"].get("phase")
    assert health(fresh) == ("Progressing", "Waiting for the operator to pick up the run")

    def odd_items_fail(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        if int(item_id) % 2:
            return Reply(400, {"error": "no such company"})
        return echo()(item_id, attempt, body)

    with Provider(odd_items_fail) as failing, Provider(with_latency(0.3, echo())) as slow:
        runs.create(
            "mixed",
            {
                "items": [{"inputs": {"i": i}} for i in range(6)],
                "producer": {"provider": "flaky", "http": {"url": failing.url}},
                "retry": {"maxAttempts": 1},
            },
        )
        runs.create(
            "broken",
            {
                "itemsFrom": {"configMapKeyRef": {"name": "nope", "key": "rows.jsonl"}},
                "producer": echo_producer,
            },
        )
        runs.create(
            "slow",
            {
                "items": [{"inputs": {"i": i}} for i in range(60)],
                "producer": {"provider": "slow", "http": {"url": slow.url}},
                "batchSize": 20,
                "parallelism": 1,
            },
        )
        runs.wait_phase("fresh", timeout=120)
        runs.wait_phase("mixed", timeout=120)
        runs.wait_phase("broken", timeout=120)
        running = wait_for(
            lambda: (r := runs.get("slow")).get("status", {}).get("phase") == "running" and r,
            timeout=60,
            what="slow to run",
        )
        runs.patch("slow", {"paused": True})
        runs.wait_phase("slow", "paused", timeout=60)
        paused = runs.get("slow")
        runs.patch("slow", {"cancel": True})
        runs.wait_phase("slow", "canceled", timeout=60)
        canceled = runs.get("slow")

    succeeded = runs.get("fresh")
    mixed, broken = runs.get("mixed"), runs.get("broken")
    assert (mixed["status"]["phase"], broken["status"]["phase"]) == ("completed", "failed")
    assert health(running)[0] == "Progressing" and "running" in health(running)[1]
    assert health(succeeded) == ("Healthy", "Run succeeded: 1/1 items succeeded, 0 failed")
    assert health(mixed) == ("Degraded", "Run completed with failed items: 3/6 items succeeded, 3 failed")
    status, message = health(broken)
    assert status == "Degraded" and "ConfigMap 'nope' not found" in message
    assert health(paused)[0] == "Suspended"
    assert health(canceled)[0] == "Degraded" and health(canceled)[1].startswith("Run canceled")
    # kstatus' rule: a status older than the spec says nothing yet. The real succeeded Run, as it is
    # right after an edit of its spec (generation moves first, the operator's status follows).
    edited = copy.deepcopy(succeeded)
    edited["metadata"]["generation"] = succeeded["status"]["observedGeneration"] + 1
    assert health(edited)[0] == "Progressing"
    # Argo CD only sees objects as JSON; keep the captured objects valid JSON (no Python-only types).
    json.dumps([running, succeeded, mixed, broken, paused, canceled])
