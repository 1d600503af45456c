"""Tenancy, written as the attacks: a Run or Workflow can do no more than the user who writes it.

`alice` (impersonated by the admin kubeconfig) may create, get, list and patch Runs and create and
patch Workflows in her namespace, and nothing else: not get its Secrets, ConfigMaps or Workflows, not
create pods. Each attack has the operator read or use one of those for her; the API server refuses it
at admission (crds/admission-policies.yaml, applied with the CRDs by the `crds` fixture) with a
message naming the object and the permission she lacks. The benign counterpart (alice *with* `get` on
the Secret) runs. A RunShard's spec cannot be rewritten by anyone (finding 2): its Job is derived
from it.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.provider import Provider, echo
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

ALICE = "alice"
SECRET = "db-secret"


def impersonating(cluster: LocalCluster, user: str) -> client.ApiClient:
    """The admin kubeconfig acting as `user` (the admin may impersonate anyone)."""
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    return api


def grant(api: client.ApiClient, ns: str, name: str, user: str, rules: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(ns, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(
        ns,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


def manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}


def refused(call: Callable[[], object]) -> str:
    """The API server's message for a request it refused at admission (403)."""
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, caught.value.body
    message: str = json.loads(caught.value.body)["message"]
    assert "ValidatingAdmissionPolicy" in message, message
    return message


class Tenant:
    """alice's view of one namespace, and the admin's objects she must not reach through the operator."""

    def __init__(self, cluster: LocalCluster, api: client.ApiClient, ns: str) -> None:
        self.ns = ns
        self.admin = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.api = impersonating(cluster, ALICE)
        self.custom = client.CustomObjectsApi(self.api)
        # A value that exists only in the Secret: searched for in everything alice can read.
        self.secret_value = f"v-{uuid.uuid4().hex}"

    def create(self, plural: str, body: dict[str, Any], dry_run: str | None = None) -> dict[str, Any]:
        kwargs = {"dry_run": dry_run} if dry_run else {}
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, plural, body, **kwargs
        )
        return created

    def patch(self, plural: str, name: str, body: Any, content_type: str | None = None) -> None:
        kwargs = {"_content_type": content_type} if content_type else {}
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, plural, name, body, **kwargs)

    def readable(self) -> str:
        """Everything alice can read here (Runs with their status) and the namespace's Events."""
        runs = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.ns, "runs")
        events = self.core.list_namespaced_event(self.ns).items
        return json.dumps(runs) + str(events)


@pytest.fixture
def tenant(cluster: LocalCluster, api: client.ApiClient, crds: None, namespace: str) -> Iterator[Tenant]:
    tenant = Tenant(cluster, api, namespace)
    rules = [
        {"apiGroups": [GROUP], "resources": ["runs"], "verbs": ["create", "get", "list", "patch"]},
        {"apiGroups": [GROUP], "resources": ["workflows"], "verbs": ["create", "patch"]},
    ]
    grant(api, namespace, "alice", ALICE, rules)
    value = base64.b64encode(tenant.secret_value.encode()).decode()
    tenant.core.create_namespaced_secret(
        namespace, {"metadata": {"name": SECRET}, "data": {"X-Api-Key": value}}
    )
    rows = json.dumps({"rowId": "r0", "inputs": {"secretish": tenant.secret_value}})
    tenant.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "rows"}, "data": {"rows": rows}}
    )
    tenant.admin.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "workflows", manifest("Workflow", "ops", {"steps": [ECHO_STEP]})
    )
    # The policies reach the API server's admission within seconds of being applied: wait until a
    # dry run of an attack is refused.
    probe = manifest("Run", "probe", {"items": [{}], "producer": http_producer("http://127.0.0.1:9/")})
    wait_for(
        lambda: _refused_by_policy(lambda: tenant.create("runs", probe, dry_run="All")),
        timeout=30,
        what="the admission policies to be enforced",
    )
    yield tenant
    tenant.api.close()


def _refused_by_policy(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiException as err:
        return err.status == 403 and "ValidatingAdmissionPolicy" in str(err.body)
    return False


ECHO_STEP = {"name": "echo", "producer": {"provider": "echo", "builtin": "echo"}}


def http_producer(url: str, secret: str = SECRET) -> dict[str, Any]:
    return {"provider": "p", "http": {"url": url, "headersFrom": {"secretRef": {"name": secret}}}}


def forbidden(kind: str, name: str, names: str, field: str, lacks: str, ns: str) -> str:
    return f"{kind} {name} names {names} ({field}), but {ALICE} may not {lacks} in namespace {ns}"


def secret_forbidden(kind: str, name: str, field: str, ns: str) -> str:
    return forbidden(kind, name, f"Secret {SECRET}", field, f"get secrets {SECRET}", ns)


# -- finding 1: Runs -------------------------------------------------------------------------------


def test_a_run_cannot_send_a_secret_its_writer_cannot_read(tenant: Tenant) -> None:
    with Provider(echo()) as evil:
        run = manifest("Run", "steal", {"items": [{"inputs": {"a": 1}}], "producer": http_producer(evil.url)})
        message = refused(lambda: tenant.create("runs", run))
        ingestion = {
            "provider": "p",
            "url": evil.url,
            "query": "q",
            "headersFrom": {"secretRef": {"name": SECRET}},
        }
        pages = manifest("Run", "steal-pages", {"kind": "ingestion", "ingestion": ingestion})
        pages_message = refused(lambda: tenant.create("runs", pages))
        assert evil.calls == []
    field = "spec.producer.http.headersFrom.secretRef"
    assert secret_forbidden("Run", "steal", field, tenant.ns) in message, message
    field = "spec.ingestion.headersFrom.secretRef"
    assert secret_forbidden("Run", "steal-pages", field, tenant.ns) in pages_message, pages_message
    assert tenant.secret_value not in tenant.readable()


def test_a_run_cannot_read_items_from_a_configmap_its_writer_cannot_read(tenant: Tenant) -> None:
    spec = {
        "itemsFrom": {"configMapKeyRef": {"name": "rows", "key": "rows"}},
        "producer": {"provider": "echo", "builtin": "echo"},
    }
    message = refused(lambda: tenant.create("runs", manifest("Run", "peek", spec)))
    field = "spec.itemsFrom.configMapKeyRef"
    expected = forbidden("Run", "peek", "ConfigMap rows", field, "get configmaps rows", tenant.ns)
    assert expected in message, message
    assert tenant.secret_value not in tenant.readable()


def test_a_run_cannot_use_a_workflow_its_writer_cannot_read(tenant: Tenant) -> None:
    spec = {"kind": "workflow", "workflowRef": {"name": "ops"}}
    message = refused(lambda: tenant.create("runs", manifest("Run", "borrow", spec)))
    expected = forbidden("Run", "borrow", "Workflow ops", "spec.workflowRef", "get workflows ops", tenant.ns)
    assert expected in message, message


def test_a_run_cannot_run_a_command_unless_its_writer_may_create_pods(tenant: Tenant) -> None:
    spec = {"items": [{}], "producer": {"provider": "sh", "command": ["sh", "-c", "cat >&2"]}}
    message = refused(lambda: tenant.create("runs", manifest("Run", "shell", spec)))
    assert (
        f"Run shell runs a command in a pod (spec.producer.command), but {ALICE} may not create pods "
        f"in namespace {tenant.ns}"
    ) in message


def test_an_update_is_checked_when_it_changes_what_a_run_uses(tenant: Tenant) -> None:
    """alice may patch Runs: adding a Secret to her own, or pointing the admin's Run (which uses one)
    at her server, is refused; pausing the admin's Run, which changes nothing it uses, is not."""
    spec = {"items": [{}], "producer": {"provider": "echo", "builtin": "echo"}, "paused": True}
    tenant.create("runs", manifest("Run", "mine", spec))
    add_secret = {"spec": {"producer": {"builtin": None, **http_producer("http://127.0.0.1:9/")}}}
    message = refused(lambda: tenant.patch("runs", "mine", add_secret))
    field = "spec.producer.http.headersFrom.secretRef"
    assert secret_forbidden("Run", "mine", field, tenant.ns) in message, message

    admins = {"items": [{}], "producer": http_producer("http://127.0.0.1:9/ok"), "paused": True}
    tenant.admin.create_namespaced_custom_object(
        GROUP, VERSION, tenant.ns, "runs", manifest("Run", "ops", admins)
    )
    redirect = {"spec": {"producer": {"http": {"url": "http://127.0.0.1:9/evil"}}}}
    message = refused(lambda: tenant.patch("runs", "ops", redirect))
    assert secret_forbidden("Run", "ops", field, tenant.ns) in message, message
    tenant.patch("runs", "ops", {"spec": {"paused": False, "cancel": True}})
    run = tenant.custom.get_namespaced_custom_object(GROUP, VERSION, tenant.ns, "runs", "ops")
    assert run["spec"]["cancel"] is True and run["spec"]["producer"]["http"]["url"] == "http://127.0.0.1:9/ok"


# -- finding 1: Workflows --------------------------------------------------------------------------


def test_a_workflow_is_held_to_the_same_rules(tenant: Tenant) -> None:
    def step(name: str, producer: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "producer": producer}

    secret_step = manifest(
        "Workflow", "wf-secret", {"steps": [ECHO_STEP, step("call", http_producer("http://x/"))]}
    )
    message = refused(lambda: tenant.create("workflows", secret_step))
    field = "spec.steps[call].producer.http.headersFrom.secretRef"
    assert secret_forbidden("Workflow", "wf-secret", field, tenant.ns) in message, message

    command = step("sh", {"provider": "sh", "command": ["sh", "-c", "env >&2"]})
    message = refused(lambda: tenant.create("workflows", manifest("Workflow", "wf-sh", {"steps": [command]})))
    assert (
        f"Workflow wf-sh runs a command in a pod (spec.steps[sh].producer.command), but {ALICE} may not "
        f"create pods in namespace {tenant.ns}"
    ) in message

    hook = {
        "steps": [ECHO_STEP],
        "triggers": {"webhook": {"tokenSecretRef": {"name": SECRET, "key": "X-Api-Key"}}},
    }
    message = refused(lambda: tenant.create("workflows", manifest("Workflow", "wf-hook", hook)))
    field = "spec.triggers.webhook.tokenSecretRef"
    assert secret_forbidden("Workflow", "wf-hook", field, tenant.ns) in message, message

    # The admin's Workflow with a Secret step: alice may change its inputs, not where the Secret goes.
    steps = [ECHO_STEP, step("call", http_producer("http://127.0.0.1:9/ok"))]
    tenant.admin.create_namespaced_custom_object(
        GROUP, VERSION, tenant.ns, "workflows", manifest("Workflow", "enrich", {"steps": steps})
    )
    tenant.patch("workflows", "enrich", {"spec": {"inputs": {"company": "acme"}}})
    redirect = [
        {"op": "replace", "path": "/spec/steps/1/producer/http/url", "value": "http://127.0.0.1:9/evil"}
    ]
    message = refused(lambda: tenant.patch("workflows", "enrich", redirect, "application/json-patch+json"))
    field = "spec.steps[call].producer.http.headersFrom.secretRef"
    assert secret_forbidden("Workflow", "enrich", field, tenant.ns) in message, message
    assert tenant.secret_value not in tenant.readable()


# -- the benign counterparts -------------------------------------------------------------------------


def test_alice_with_get_on_the_secret_runs_it(tenant: Tenant, runs: Runs, api: client.ApiClient) -> None:
    grant(
        api,
        tenant.ns,
        "alice-db-secret",
        ALICE,
        [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET], "verbs": ["get"]}],
    )
    with Provider(echo(), required_headers={"X-Api-Key": tenant.secret_value}) as provider:
        spec = {"items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(3)]}
        run = manifest("Run", "allowed", {**spec, "producer": http_producer(provider.url)})
        # The authorizer reads RBAC from the API server's cache: wait until a dry run is admitted.
        wait_for(
            lambda: tenant.create("runs", run, dry_run="All"),
            timeout=30,
            what="alice's get on the Secret to be authorized",
        )
        tenant.create("runs", run)
        status = runs.wait_phase("allowed", timeout=120)
        calls = provider.calls
    assert status["phase"] == "succeeded", status
    assert status["itemsSucceeded"] == 3 and all(c.status == 200 for c in calls), calls
    assert tenant.secret_value not in tenant.readable()


def test_the_operators_workflow_runs_pass_as_its_own_identity(cluster: LocalCluster, tenant: Tenant) -> None:
    """A Workflow fire is a Run naming only the Workflow; the operator may get Workflows (the chart's
    ClusterRole), so its Runs are admitted even for a Workflow with Secret and command steps."""
    steps = [ECHO_STEP, {"name": "call", "producer": http_producer("http://127.0.0.1:9/")}]
    tenant.admin.create_namespaced_custom_object(
        GROUP, VERSION, tenant.ns, "workflows", manifest("Workflow", "nightly", {"steps": steps})
    )
    operator = f"system:serviceaccount:{tenant.ns}:operator"
    rules = [
        {
            "apiGroups": [GROUP],
            "resources": ["runs"],
            "verbs": ["get", "list", "watch", "patch", "create", "delete"],
        },
        {"apiGroups": [GROUP], "resources": ["workflows"], "verbs": ["get", "list", "watch", "patch"]},
    ]
    rbac = client.RbacAuthorizationV1Api(tenant.admin.api_client)
    rbac.create_namespaced_role(tenant.ns, {"metadata": {"name": "operator"}, "rules": rules})
    rbac.create_namespaced_role_binding(
        tenant.ns,
        {
            "metadata": {"name": "operator"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "operator"},
            "subjects": [{"kind": "ServiceAccount", "name": "operator", "namespace": tenant.ns}],
        },
    )
    fire = manifest(
        "Run",
        "nightly-29000000",
        {"kind": "workflow", "workflowRef": {"name": "nightly"}, "trigger": "schedule", "inputs": {"a": 1}},
    )
    with impersonating(cluster, operator) as as_operator:
        custom = client.CustomObjectsApi(as_operator)
        created = wait_for(
            lambda: custom.create_namespaced_custom_object(GROUP, VERSION, tenant.ns, "runs", fire),
            timeout=30,
            what="the operator's identity to create the workflow's run",
        )
        assert created["spec"]["workflowRef"] == {"name": "nightly"}
        # The operator's own spec-less writes (annotations, as when it marks fired triggers) and its
        # cancel patches (a Replace schedule) pass too.
        patch = {"metadata": {"annotations": {f"{GROUP}/checked": "yes"}}, "spec": {"cancel": True}}
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, tenant.ns, "runs", fire["metadata"]["name"], patch
        )


# -- finding 2: a RunShard's spec is immutable ---------------------------------------------------------


def test_a_runshards_spec_cannot_be_rewritten_even_by_the_admin(runs: Runs) -> None:
    runs.create_from_rows("shards", 4, batchSize=2)
    runs.wait_phase("shards", timeout=120)
    shard = runs.shards("shards")[0]
    name = shard["metadata"]["name"]
    for change in ({"runName": "ops"}, {"runUid": str(uuid.uuid4())}, {"execute": False}):
        with pytest.raises(ApiException) as caught:
            runs.custom.patch_namespaced_custom_object(
                GROUP, VERSION, runs.ns, "runshards", name, {"spec": change}
            )
        assert caught.value.status == 422, caught.value.body
        assert "a RunShard's spec is immutable" in json.loads(caught.value.body)["message"]
    assert (
        runs.custom.get_namespaced_custom_object(GROUP, VERSION, runs.ns, "runshards", name)["spec"]
        == (shard["spec"])
    )
    # Its metadata and status stay writable (labels; the worker's and the operator's status writes).
    runs.custom.patch_namespaced_custom_object(
        GROUP, VERSION, runs.ns, "runshards", name, {"metadata": {"labels": {"checked": "yes"}}}
    )
