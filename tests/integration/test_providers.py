"""Providers against the real control plane: a Run names a Provider and runs with its URL, header
Secret and price; what a run names must exist before anything of it runs; a tenant cannot set her own
price on an account that requires Providers, nor name a Provider she may not read."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.controllers.run.observe import Reader
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from oxygen.kube.client import Kube
from tests.support.provider import Provider, echo, with_latency
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

KEY = "k-5f0c1d2e-provider-key-value"
ALICE = "alice"


def provider_manifest(
    name: str, url: str, price: str = "2", secret: str | None = "clearbit-key"
) -> dict[str, Any]:
    http: dict[str, Any] = {"url": url, "timeoutSeconds": 5}
    if secret is not None:
        http["headersFrom"] = {"secretRef": {"name": secret}}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Provider",
        "metadata": {"name": name},
        "spec": {"http": http, "price": price, "retry": {"maxAttempts": 2, "backoffSeconds": 0.1}},
    }


def create(api: client.ApiClient, ns: str, plural: str, body: dict[str, Any]) -> dict[str, Any]:
    created: dict[str, Any] = client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, ns, plural, body
    )
    return created


def secret(api: client.ApiClient, ns: str, name: str, headers: dict[str, str]) -> None:
    data = {k: base64.b64encode(v.encode()).decode() for k, v in headers.items()}
    client.CoreV1Api(api).create_namespaced_secret(ns, {"metadata": {"name": name}, "data": data})


def account(api: client.ApiClient, ns: str, granted: str | None, require: bool) -> None:
    spec: dict[str, Any] = {"onInsufficient": "fail", "requireProviders": require}
    if granted is not None:
        spec["grants"] = [{"id": "g1", "amount": granted}]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CreditAccount",
        "metadata": {"name": "default"},
        "spec": spec,
    }
    create(api, ns, "creditaccounts", body)


ITEMS = [{"rowId": f"r{i}", "inputs": {"domain": f"d{i}.example"}} for i in range(5)]


def test_a_run_naming_a_provider_uses_its_url_secret_and_price(runs: Runs, api: client.ApiClient) -> None:
    secret(api, runs.ns, "clearbit-key", {"X-Api-Key": KEY})
    account(api, runs.ns, "100", require=True)
    with Provider(echo(), required_headers={"X-Api-Key": KEY}) as endpoint:
        create(api, runs.ns, "providers", provider_manifest("clearbit", endpoint.url))
        runs.create("priced", {"items": ITEMS, "producer": {"providerRef": {"name": "clearbit"}}})
        status = runs.wait_phase("priced", timeout=120)
        calls = endpoint.calls
    assert status["phase"] == "succeeded", status
    assert len(calls) == 5 and all(c.status == 200 for c in calls)
    # The Provider's price per successful call, exactly; summaries under the Provider's name.
    assert status["creditsUsed"] == "10" and status["creditsPerItem"] == "2"
    assert [(p["provider"], p["creditsUsed"], p["itemsSucceeded"]) for p in status["providers"]] == [
        ("clearbit", "10", 5)
    ]
    (shard,) = runs.shards("priced")
    assert shard["spec"]["producer"]["http"]["url"] == endpoint.url
    assert shard["spec"]["retry"]["maxAttempts"] == 2  # the Provider's, tighter than the run's 3
    accounts = client.CustomObjectsApi(api)
    wait_for(
        lambda: (
            accounts.get_namespaced_custom_object(GROUP, VERSION, runs.ns, "creditaccounts", "default")
            .get("status", {})
            .get("captured")
            == "10"
        ),
        timeout=30,
        what="the account to capture the run's 10 credits",
    )
    assert KEY not in json.dumps(runs.get("priced")) + json.dumps(shard)


@pytest.mark.parametrize(
    ("producer", "provider_secret", "reason", "message"),
    [
        (
            {"providerRef": {"name": "nope"}},
            None,
            "ProviderNotFound",
            'providers.oxygen.dev "nope" not found (spec.producer.providerRef)',
        ),
        (
            {"providerRef": {"name": "keyless"}},
            "nope",
            "SecretNotFound",
            'secrets "nope" not found (Provider keyless\'s spec.http.headersFrom.secretRef)',
        ),
        (
            {
                "provider": "p",
                "http": {"url": "http://127.0.0.1:9/", "headersFrom": {"secretRef": {"name": "nope"}}},
            },
            None,
            "SecretNotFound",
            'secrets "nope" not found (spec.producer.http.headersFrom.secretRef)',
        ),
    ],
    ids=["provider", "providers-secret", "runs-secret"],
)
def test_a_missing_provider_or_secret_fails_the_run_at_once(
    runs: Runs,
    api: client.ApiClient,
    producer: dict[str, Any],
    provider_secret: str | None,
    reason: str,
    message: str,
) -> None:
    if provider_secret is not None:
        create(
            api,
            runs.ns,
            "providers",
            provider_manifest("keyless", "http://127.0.0.1:9/", secret=provider_secret),
        )
    runs.create("broken", {"items": ITEMS, "producer": producer})
    status = runs.wait_phase("broken", timeout=60)
    assert status["phase"] == "failed" and status["message"] == message
    (failed,) = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert (failed["status"], failed["reason"], failed["message"]) == ("True", reason, message)
    assert runs.shards("broken") == [] and runs.jobs("broken") == []
    assert [e.reason for e in runs.events("broken") if e.type == "Warning"] == [reason]


# -- tenants ---------------------------------------------------------------------------------------


def impersonating(cluster: LocalCluster, user: str) -> client.ApiClient:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    return api


def grant(api: client.ApiClient, ns: str, name: str, user: str, rules: list[dict[str, Any]]) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(ns, {"metadata": {"name": name}, "rules": rules})
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
    ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}
    rbac.create_namespaced_role_binding(
        ns, {"metadata": {"name": name}, "roleRef": ref, "subjects": [subject]}
    )


@pytest.fixture
def alice(cluster: LocalCluster, api: client.ApiClient, runs: Runs) -> Iterator[client.ApiClient]:
    """alice may create, get and list Runs here, and nothing else."""
    rules = [{"apiGroups": [GROUP], "resources": ["runs"], "verbs": ["create", "get", "list"]}]
    grant(api, runs.ns, "alice", ALICE, rules)
    tenant = impersonating(cluster, ALICE)
    yield tenant
    tenant.close()


def run_manifest(name: str, producer: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {"items": ITEMS, "producer": producer},
    }


def refusal(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(ApiException) as caught:
        call()
    message: str = json.loads(caught.value.body)["message"]
    return caught.value.status, message


def test_free_credits_are_refused_where_the_account_requires_providers(
    runs: Runs, api: client.ApiClient, alice: client.ApiClient
) -> None:
    """alice's Run sets its own price ("0") on an account with no credits that requires Providers."""
    account(api, runs.ns, None, require=True)
    with Provider(echo()) as hers:
        free = {"provider": "mine", "costPerItem": "0", "http": {"url": hers.url}}
        create(alice, runs.ns, "runs", run_manifest("free", free))
        status = runs.wait_phase("free", timeout=60)
        calls = hers.calls
    assert status["phase"] == "failed", status
    (failed,) = [c for c in status["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "UnpricedProducer"
    assert "requires priced Providers" in status["message"] and "spec.producer" in status["message"]
    assert calls == [] and runs.jobs("free") == []
    assert [e.reason for e in runs.events("free") if e.type == "Warning"] == ["UnpricedProducer"]
    # Naming a Provider and lowering its price is refused by the schema itself.
    cheap = {"providerRef": {"name": "clearbit"}, "costPerItem": "0"}
    code, message = refusal(lambda: create(alice, runs.ns, "runs", run_manifest("cheap", cheap)))
    assert code == 422 and "costPerItem is not allowed" in message, message


def _enforced(call: Callable[[], object]) -> bool:
    try:
        call()
    except ApiException as err:
        return err.status == 403 and "ValidatingAdmissionPolicy" in str(err.body)
    return False


def test_a_provider_is_named_only_by_those_who_may_get_it(
    cluster: LocalCluster, runs: Runs, api: client.ApiClient, alice: client.ApiClient
) -> None:
    secret(api, runs.ns, "clearbit-key", {"X-Api-Key": KEY})
    with Provider(echo(), required_headers={"X-Api-Key": KEY}) as endpoint:
        create(api, runs.ns, "providers", provider_manifest("clearbit", endpoint.url, price="1"))
        borrow = run_manifest("borrow", {"providerRef": {"name": "clearbit"}})
        wait_for(
            lambda: _enforced(
                lambda: client.CustomObjectsApi(alice).create_namespaced_custom_object(
                    GROUP, VERSION, runs.ns, "runs", borrow, dry_run="All"
                )
            ),
            timeout=30,
            what="the admission policies to be enforced",
        )
        code, message = refusal(lambda: create(alice, runs.ns, "runs", borrow))
        assert code == 403, message
        expected = (
            f"Run borrow names Provider clearbit (spec.producer.providerRef), but {ALICE} may not get "
            f"providers clearbit in namespace {runs.ns}"
        )
        assert expected in message, message
        # Nor may a Workflow step of hers name it (she may create Workflows).
        workflows = [{"apiGroups": [GROUP], "resources": ["workflows"], "verbs": ["create"]}]
        grant(api, runs.ns, "alice-workflows", ALICE, workflows)
        step = {"name": "enrich", "producer": {"providerRef": {"name": "clearbit"}}}
        wf = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"name": "wf"}}
        wf["spec"] = {"steps": [step]}
        code, message = refusal(lambda: create(alice, runs.ns, "workflows", wf))
        assert code == 403, message
        expected = (
            f"Workflow wf names Provider clearbit (spec.steps[enrich].producer.providerRef), but {ALICE} "
            f"may not get providers clearbit in namespace {runs.ns}"
        )
        assert expected in message, message
        assert endpoint.calls == []

        # Benign: with `get` on that Provider she may name it, and the run is charged its price.
        rules = [
            {
                "apiGroups": [GROUP],
                "resources": ["providers"],
                "resourceNames": ["clearbit"],
                "verbs": ["get"],
            }
        ]
        grant(api, runs.ns, "alice-clearbit", ALICE, rules)
        wait_for(
            lambda: (
                not _enforced(
                    lambda: client.CustomObjectsApi(alice).create_namespaced_custom_object(
                        GROUP, VERSION, runs.ns, "runs", borrow, dry_run="All"
                    )
                )
            ),
            timeout=30,
            what="alice's new permission to be seen",
        )
        create(alice, runs.ns, "runs", borrow)
        status = runs.wait_phase("borrow", timeout=120)
    assert status["phase"] == "succeeded" and status["creditsUsed"] == "5", status

    # A Provider may name a Secret only if its writer may get it: bob may create Providers only.
    grant(
        api, runs.ns, "bob", "bob", [{"apiGroups": [GROUP], "resources": ["providers"], "verbs": ["create"]}]
    )
    bob = impersonating(cluster, "bob")
    try:
        code, message = refusal(
            lambda: create(bob, runs.ns, "providers", provider_manifest("stolen", "http://127.0.0.1:9/"))
        )
    finally:
        bob.close()
    assert code == 403, message
    expected = (
        "Provider stolen names Secret clearbit-key (spec.http.headersFrom.secretRef), but bob may not get "
        f"secrets clearbit-key in namespace {runs.ns}"
    )
    assert expected in message, message


def test_the_secret_check_needs_get_and_says_when_it_cannot_tell(
    cluster: LocalCluster, runs: Runs, api: client.ApiClient
) -> None:
    """Exists, missing, or (without `get` on secrets) unknown: then the run is not failed for it."""
    secret(api, runs.ns, "present", {"X-Api-Key": KEY})
    admin = Reader(Kube(api))
    assert (admin.secret_exists(runs.ns, "present"), admin.secret_exists(runs.ns, "absent")) == (True, False)
    nobody = impersonating(cluster, "nobody")
    try:
        assert Reader(Kube(nobody)).secret_exists(runs.ns, "present") is None
    finally:
        nobody.close()


def provider_status(api: client.ApiClient, ns: str, name: str) -> dict[str, Any]:
    body = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, ns, "providers", name)
    status: dict[str, Any] = body.get("status") or {}
    return status


def ready(status: dict[str, Any]) -> tuple[str, str] | None:
    found = [(c["status"], c["reason"]) for c in status.get("conditions", []) if c["type"] == "Ready"]
    return found[0] if found else None


def test_a_providers_status_counts_the_runs_using_it_and_says_when_it_is_not_ready(
    runs: Runs, api: client.ApiClient
) -> None:
    create(api, runs.ns, "providers", provider_manifest("keyless", "http://127.0.0.1:9/", secret="later"))
    wait_for(
        lambda: ready(provider_status(api, runs.ns, "keyless")) == ("False", "SecretNotFound"),
        timeout=30,
        what="the Provider without its Secret to be not Ready",
    )
    secret(api, runs.ns, "later", {"X-Api-Key": KEY})
    wait_for(
        lambda: ready(provider_status(api, runs.ns, "keyless")) == ("True", "Ready"),
        timeout=30,
        what="the Provider to be Ready once its Secret exists",
    )

    with Provider(with_latency(0.3, echo())) as endpoint:
        create(api, runs.ns, "providers", provider_manifest("slow", endpoint.url, secret=None))
        rows = [{"inputs": {"i": i}} for i in range(30)]
        # One call at a time (9 s in all): the Provider's status is written every 5 s and must see the run.
        producer = {"providerRef": {"name": "slow"}, "concurrency": 1}
        runs.create("busy", {"items": rows, "producer": producer, "parallelism": 1})
        wait_for(
            lambda: provider_status(api, runs.ns, "slow").get("runs") == 1,
            timeout=30,
            what="the Provider to count the run using it",
        )
        assert runs.wait_phase("busy", timeout=120)["phase"] == "succeeded"
    assert all(s["metadata"]["labels"][f"{GROUP}/provider"] == "slow" for s in runs.shards("busy"))
    wait_for(
        lambda: (
            (s := provider_status(api, runs.ns, "slow")).get("runs", 0) == 0 and s.get("inFlight", 0) == 0
        ),
        timeout=30,
        what="the finished run to be no longer counted",
    )


def test_a_workflow_step_names_a_provider_and_is_charged_its_price(runs: Runs, api: client.ApiClient) -> None:
    secret(api, runs.ns, "clearbit-key", {"X-Api-Key": KEY})
    with Provider(echo(), required_headers={"X-Api-Key": KEY}) as endpoint:
        create(api, runs.ns, "providers", provider_manifest("clearbit", endpoint.url, price="3"))
        steps = [
            {
                "name": "enrich",
                "producer": {"providerRef": {"name": "clearbit"}},
                "inputs": {"d": "${inputs.d}"},
            },
            {"name": "score", "producer": {"provider": "echo", "builtin": "echo"}, "inputs": {"x": 1}},
        ]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"name": "wf"}}
        create(api, runs.ns, "workflows", {**body, "spec": {"steps": steps}})
        runs.create(
            "wf-run", {"kind": "workflow", "workflowRef": {"name": "wf"}, "inputs": {"d": "a.example"}}
        )
        status = runs.wait_phase("wf-run", timeout=120)
        calls = endpoint.calls
    assert status["phase"] == "succeeded", status
    assert len(calls) == 1 and status["creditsUsed"] == "3"
    by_provider = {p["provider"]: p["creditsUsed"] for p in status["providers"]}
    assert by_provider["clearbit"] == "3", status["providers"]
