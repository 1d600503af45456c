"""Issue 12, findings 4 and 5, as attacks on the real API server: the chart's RBAC and its admission
policy applied for real, and requests impersonating the operator's ServiceAccount.

- The operator may create RoleBindings (per-run worker identities), so Kubernetes' escalation check
  alone would let it bind its own ClusterRole, or anything it holds, to anyone. The chart's
  ValidatingAdmissionPolicy refuses every ServiceAccount, Role and RoleBinding it writes that is not
  a run's worker identity; the real worker identity (execution/jobs.py) is still accepted.
- Secrets: `get` only, only for webhook tokens, only where webhooks are served.

The operator as a process under exactly the chart's RBAC (retry, promotion, webhook, run page) is in
test_chart_operator.py.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from oxygen.execution.jobs import worker_identity
from tests.support.chart import (
    apply_release,
    by_kind,
    can_i,
    chart_crds,
    create_namespace,
    delete_cluster_scoped,
    helm,
    kubectl,
    render,
)
from tests.support.runs import Runs

__all__ = ["chart_crds", "helm"]  # session fixtures

RBAC = "rbac.authorization.k8s.io"
ECHO = {"provider": "echo", "builtin": "echo"}


def operator_user(namespace: str, release: str) -> str:
    return f"system:serviceaccount:{namespace}:{release}-oxygen-operator"


def as_operator(cluster: LocalCluster, who: str, verb: str, body: dict[str, Any], *flags: str) -> str:
    """`kubectl <verb> -f -` as `who`; returns stderr ('' when the API server accepted it)."""
    done = kubectl(cluster, verb, "-f", "-", "--as", who, *flags, input=json.dumps(body))
    return "" if done.returncode == 0 else done.stderr or done.stdout


def binding(
    name: str,
    namespace: str,
    role_kind: str,
    role: str,
    subjects: list[dict[str, str]],
    disguise: dict[str, Any],
) -> dict[str, Any]:
    """A RoleBinding wearing a worker identity's labels and owner (the attacker copies them)."""
    return {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, **disguise},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role},
        "subjects": subjects,
    }


def user(name: str) -> dict[str, str]:
    return {"apiGroup": RBAC, "kind": "User", "name": name}


def account(name: str, namespace: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def policy_in_force(cluster: LocalCluster, who: str, worker_account: dict[str, Any]) -> None:
    """Wait until the API server enforces the freshly applied admission policy: a ServiceAccount not
    named like a worker, otherwise valid, is refused for the operator only by the policy."""
    probe = managed_like(worker_account, name="policy-probe")
    wait_for(
        lambda: "denied request" in as_operator(cluster, who, "create", probe, "--dry-run=server"),
        timeout=30,
        what="the worker-identity admission policy to be enforced",
    )


def managed_like(manifest: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a real worker-identity manifest with some fields replaced (the attacker's edit)."""
    copy: dict[str, Any] = json.loads(json.dumps(manifest))
    for key, value in changes.items():
        if key == "name":
            copy["metadata"]["name"] = value
        else:
            copy[key] = value
    return copy


@pytest.mark.cluster
@pytest.mark.parametrize("mode", ["all-namespaces", "listed-namespaces"])
def test_operator_identity_can_write_worker_identities_and_nothing_else(
    cluster: LocalCluster,
    api: client.ApiClient,
    chart_crds: None,
    helm: Path,
    namespace: str,
    tmp_path: Path,
    mode: str,
) -> None:
    work = f"work-{uuid.uuid4().hex[:6]}"
    create_namespace(api, work)
    values: dict[str, Any] = {"watchNamespaces": [work]} if mode == "listed-namespaces" else {}
    release, docs = apply_release(cluster, helm, tmp_path, namespace, values)
    me = operator_user(namespace, release)
    own_role = f"{release}-oxygen-operator"
    rbac = client.RbacAuthorizationV1Api(api)
    try:
        # -- legitimate: a run's worker identity, exactly as the operator builds it --
        # A real Run owns them (the garbage collector removes objects whose owner does not exist);
        # its items come from a ConfigMap that does not exist, so no operator ever plans it.
        absent = {"configMapKeyRef": {"name": "absent", "key": "rows.jsonl"}}
        run = Runs(api, work).create("alpha", {"itemsFrom": absent, "producer": ECHO})
        identity = dict(worker_identity(run, ["alpha-r0-s0", "alpha-r0-s1"]))
        policy_in_force(cluster, me, identity["ServiceAccount"])
        for kind in ("ServiceAccount", "Role", "RoleBinding"):
            refused = as_operator(cluster, me, "create", identity[kind])
            assert refused == "", (kind, refused)
        # A retry round adds shards: the Role is updated in place.
        more = dict(worker_identity(run, ["alpha-r0-s0", "alpha-r0-s1", "alpha-r1-s0"]))
        assert as_operator(cluster, me, "replace", more["Role"]) == ""
        role = rbac.read_namespaced_role("alpha-worker", work)
        assert role.rules[-1].resource_names == ["alpha-r0-s0", "alpha-r0-s1", "alpha-r1-s0"]
        # A second run's Role, not yet bound: the bindings below would pass the escalation check.
        beta = dict(
            worker_identity(Runs(api, work).create("beta", {"itemsFrom": absent, "producer": ECHO}), ["b"])
        )
        assert as_operator(cluster, me, "create", beta["Role"]) == ""

        # -- the attacks: each refused for the operator; the control (admin, same manifest) passes --
        rbac.create_namespaced_role(
            work,
            {
                "metadata": {"name": "ops-worker"},  # a tenant's own Role that merely looks like one
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
            },
        )
        tenant_role = rbac.read_namespaced_role("ops-worker", work)
        disguise = {k: identity["RoleBinding"]["metadata"][k] for k in ("labels", "ownerReferences")}
        evil_rules = {
            "Secrets": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
            "every shard": [{"apiGroups": ["oxygen.dev"], "resources": ["runshards"], "verbs": ["get"]}],
            "shard spec": [
                {
                    "apiGroups": ["oxygen.dev"],
                    "resources": ["runshards"],
                    "resourceNames": ["alpha-r0-s0"],
                    "verbs": ["get", "patch"],
                }
            ],
        }
        attacks: dict[str, tuple[str, dict[str, Any]]] = {
            "its own ClusterRole to mallory in kube-system": (
                "create",
                binding(
                    "oxygen-mallory", "kube-system", "ClusterRole", own_role, [user("mallory")], disguise
                ),
            ),
            "its own ClusterRole to mallory under a worker's name in kube-system": (
                "create",
                binding(
                    "mallory-worker", "kube-system", "ClusterRole", own_role, [user("mallory")], disguise
                ),
            ),
            "its own ClusterRole to mallory in a served namespace": (
                "create",
                binding("oxygen-mallory", work, "ClusterRole", own_role, [user("mallory")], disguise),
            ),
            "cluster-admin in a served namespace": (
                "create",
                binding(
                    "admin-worker",
                    work,
                    "ClusterRole",
                    "cluster-admin",
                    [account("admin-worker", work)],
                    disguise,
                ),
            ),
            "cluster-admin in kube-system": (
                "create",
                binding(
                    "x-worker", "kube-system", "ClusterRole", "cluster-admin", [user("mallory")], disguise
                ),
            ),
            "its ClusterRole under a worker's name": (
                "create",
                binding(
                    "beta-worker", work, "ClusterRole", own_role, [account("beta-worker", work)], disguise
                ),
            ),
            "a worker Role to one more subject": (
                "create",
                managed_like(beta["RoleBinding"], subjects=[account("beta-worker", work), user("mallory")]),
            ),
            "another run's Role to a run's account": (
                "create",
                managed_like(
                    beta["RoleBinding"], roleRef={**beta["RoleBinding"]["roleRef"], "name": "alpha-worker"}
                ),
            ),
            "a worker Role to an account of another namespace": (
                "create",
                managed_like(beta["RoleBinding"], subjects=[account("beta-worker", "kube-system")]),
            ),
            "a tenant's Role under a worker's name": (
                "create",
                binding(
                    "gamma-worker", work, "Role", "ops-worker", [account("gamma-worker", work)], disguise
                ),
            ),
            **{
                f"a worker Role granting {what}": (
                    "create",
                    managed_like(identity["Role"], name="evil-worker", rules=rules),
                )
                for what, rules in evil_rules.items()
            },
            "a Role not named like a worker": (
                "create",
                managed_like(identity["Role"], name="evil"),
            ),
            "a tenant's Role rewritten as a worker Role": (
                "replace",
                {
                    **managed_like(identity["Role"], name="ops-worker"),
                    "metadata": {
                        **identity["Role"]["metadata"],
                        "name": "ops-worker",
                        "resourceVersion": tenant_role.metadata.resource_version,
                    },
                },
            ),
            "a ServiceAccount not named like a worker": (
                "create",
                managed_like(identity["ServiceAccount"], name="deployer"),
            ),
        }
        for attack, (verb, manifest) in attacks.items():
            refused = as_operator(cluster, me, verb, manifest, "--dry-run=server")
            assert "forbidden" in refused.lower(), f"the operator could write {attack}: {refused!r}"
            control = kubectl(cluster, verb, "-f", "-", "--dry-run=server", input=json.dumps(manifest))
            assert control.returncode == 0, (attack, control.stderr)
        # The tenant's Role is untouched, and mallory holds nothing.
        assert rbac.read_namespaced_role("ops-worker", work).rules[0].resources == ["configmaps"]
        for ns in (work, "kube-system"):
            done = kubectl(cluster, "auth", "can-i", "list", "runs.oxygen.dev", "-n", ns, "--as", "mallory")
            assert done.stdout.strip() == "no", done.stdout
    finally:
        delete_cluster_scoped(cluster, docs)
        client.CoreV1Api(api).delete_namespace(work, propagation_policy="Background")


def test_secret_access_is_rendered_only_for_webhook_tokens(helm: Path, tmp_path: Path) -> None:
    """No rule anywhere lists or watches Secrets; `get` exists only in the webhook-tokens role,
    bound only in the namespaces that serve webhooks, and not at all with webhooks off."""
    cases: dict[str, tuple[dict[str, Any], list[tuple[str, str]] | None]] = {
        "all namespaces": ({}, []),
        "listed": ({"watchNamespaces": ["a", "b"]}, [("RoleBinding", "a"), ("RoleBinding", "b")]),
        "narrowed": (
            {"watchNamespaces": ["a", "b"], "webhook": {"namespaces": ["b"]}},
            [("RoleBinding", "b")],
        ),
        "webhooks off": ({"webhook": {"enabled": False}}, None),
    }
    for case, (values, bound) in cases.items():
        docs = render(helm, tmp_path, "oxy", "oxygen-system", values)
        secret_roles = [
            role
            for role in by_kind(docs, "ClusterRole")
            if any("secrets" in rule.get("resources", []) for rule in role["rules"])
        ]
        if bound is None:
            assert secret_roles == [], case
            continue
        (role,) = secret_roles
        assert role["metadata"]["name"] == "oxy-oxygen-operator-webhook-tokens", case
        assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}], case
        grants = [
            (b["kind"], b["metadata"].get("namespace", ""))
            for b in docs
            if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
            and b["roleRef"]["name"] == role["metadata"]["name"]
        ]
        assert sorted(grants) == (bound or [("ClusterRoleBinding", "")]), (case, grants)
    # Narrowest: only the Secret names the platform allows for webhook tokens.
    docs = render(helm, tmp_path, "oxy", "oxygen-system", {"webhook": {"tokenSecretNames": ["hook"]}})
    (role,) = [r for r in by_kind(docs, "ClusterRole") if r["metadata"]["name"].endswith("-webhook-tokens")]
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["hook"]}
    ]


def test_a_fixed_worker_account_leaves_the_operator_no_identity_rules(helm: Path, tmp_path: Path) -> None:
    """With worker.serviceAccountName the operator creates no worker identities: no rules for them."""
    identity_resources = {"serviceaccounts", "roles", "rolebindings"}

    def identity_rules(values: dict[str, Any]) -> list[dict[str, Any]]:
        docs = render(helm, tmp_path, "oxy", "oxygen-system", values)
        return [
            rule
            for role in by_kind(docs, "ClusterRole")
            for rule in role["rules"]
            if identity_resources & set(rule["resources"])
        ]

    assert len(identity_rules({})) == 3
    assert identity_rules({"worker": {"serviceAccountName": "shared-worker"}}) == []


@pytest.mark.cluster
def test_operator_identity_gets_secrets_only_where_webhooks_are_served(
    cluster: LocalCluster,
    api: client.ApiClient,
    chart_crds: None,
    helm: Path,
    namespace: str,
    tmp_path: Path,
) -> None:
    hooks, quiet, outside = (f"{kind}-{uuid.uuid4().hex[:6]}" for kind in ("hooks", "quiet", "outside"))
    core = client.CoreV1Api(api)
    for ns in (hooks, quiet, outside):
        create_namespace(api, ns)
        core.create_namespaced_secret(ns, {"metadata": {"name": "db"}, "stringData": {"password": "pw"}})
    core.create_namespaced_secret(hooks, {"metadata": {"name": "hook"}, "stringData": {"token": "t"}})
    values = {"watchNamespaces": [hooks, quiet], "webhook": {"namespaces": [hooks]}}
    release, docs = apply_release(cluster, helm, tmp_path, namespace, values)
    off, off_docs = apply_release(
        cluster, helm, tmp_path, namespace, {"watchNamespaces": [hooks], "webhook": {"enabled": False}}
    )
    named, named_docs = apply_release(
        cluster,
        helm,
        tmp_path,
        namespace,
        {"watchNamespaces": [hooks], "webhook": {"tokenSecretNames": ["hook"]}},
    )
    try:
        me, without = operator_user(namespace, release), operator_user(namespace, off)
        only_hook = operator_user(namespace, named)

        def read(who: str, ns: str, *args: str) -> str:
            done = kubectl(cluster, *args, "-n", ns, "--as", who)
            assert done.returncode == 0 or "Forbidden" in done.stderr, done.stderr
            return "" if done.returncode == 0 else "Forbidden"

        # The design's need: a webhook token Secret, by name, where webhooks are served.
        assert read(me, hooks, "get", "secret", "db") == ""
        assert read(only_hook, hooks, "get", "secret", "hook") == ""
        # Everything else: refused by the API server.
        attempts = {
            "list in the webhook namespace": (me, hooks, ("get", "secrets")),
            "get in a watched namespace without webhooks": (me, quiet, ("get", "secret", "db")),
            "get outside the watched namespaces": (me, outside, ("get", "secret", "db")),
            "list in the release's own namespace": (me, namespace, ("get", "secrets")),
            "get with webhooks off": (without, hooks, ("get", "secret", "db")),
            "get of a name not allowed for tokens": (only_hook, hooks, ("get", "secret", "db")),
        }
        for attempt, (who, ns, args) in attempts.items():
            assert read(who, ns, *args) == "Forbidden", attempt
        # A watch would block if it were allowed: asked as an access review instead.
        for ns in (hooks, quiet):
            assert not can_i(cluster, me, "watch", "secrets", "-n", ns)
        assert not can_i(cluster, me, "get", "secrets", "--all-namespaces")
    finally:
        delete_cluster_scoped(cluster, docs)
        delete_cluster_scoped(cluster, off_docs)
        delete_cluster_scoped(cluster, named_docs)
        for ns in (hooks, quiet, outside):
            core.delete_namespace(ns, propagation_policy="Background")
