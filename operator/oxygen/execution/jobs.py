"""Manifests of a shard's execution: its Job, and the worker's narrow identity per Run.

Each Run gets its own ServiceAccount and a Role that names its RunShards one by one
(`resourceNames`): a shard's pod can read its own run's shards and write their status, nothing else
(not their spec: what a Job runs as and runs must not be writable by the code the Job runs).
Everything in a Job that grants or identifies comes from the owning Run, never from the shard.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from oxygen.api.common import GROUP
from oxygen.api.labels import (
    LABEL_ROUND,
    LABEL_RUN,
    LABEL_RUN_UID,
    LABEL_SHARD,
    MANAGED_BY,
    label_value,
    owner_reference,
    subdomain_name,
)
from oxygen.api.run import Run
from oxygen.api.runshard import RunShard
from oxygen.execution.headers import waterfall_header_prefix
from oxygen.execution.producers import HEADER_ENV_PREFIX, step_header_prefix

# What a worker container asks for and may use unless the chart says otherwise (worker.resources).
DEFAULT_WORKER_RESOURCES: dict[str, Any] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}


@dataclass(frozen=True)
class WorkerDefaults:
    """Pod settings for shard workers (chart values reach them through oxygen.settings)."""

    image: str = "oxygen-operator:dev"
    image_pull_policy: str = "IfNotPresent"
    resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_WORKER_RESOURCES))
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    # A fixed account for every shard pod (chart value); unset: one narrow account per Run.
    service_account: str | None = None
    backoff_limit: int = 6
    termination_grace_seconds: int = 30
    # A hung worker is stopped at last (the shard's unfinished items then fail as worker_failed).
    active_deadline_seconds: int = 24 * 3600


def worker_account(run_name: str) -> str:
    return subdomain_name(run_name, "-worker")


# With an item store: the Secret (owned by the Run) holding the DSN of the run's worker role.
ITEM_STORE_SECRET_KEY: Final = "dsn"
ITEM_STORE_DSN_ENV: Final = "OXYGEN_ITEM_STORE_DSN"


def item_store_secret(run_name: str) -> str:
    return subdomain_name(run_name, "-item-store")


def restricted_container_security() -> dict[str, Any]:
    """The `restricted` Pod Security Standard for a container."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def shard_job(
    run: Run, shard: RunShard, shard_body: dict[str, Any], suspend: bool, defaults: WorkerDefaults
) -> dict[str, Any]:
    """The Job of one shard of `run` (the Run that controls the shard, found by its ownerReference).

    The identity (service account) and the run labels come from `run`, never from the shard's spec.
    No `ttlSecondsAfterFinished`: a finished Job is how the Run controller tells a shard whose worker
    gave up (its items fail) from a shard that never started (it gets a Job); a Job deleted by a TTL
    would be started again. Jobs go with their shard, and shards with their Run (ownerReferences).
    """
    spec = shard.spec
    labels = {
        LABEL_RUN: label_value(run.metadata.name),
        LABEL_RUN_UID: run.metadata.uid,
        LABEL_SHARD: shard.metadata.name,
        LABEL_ROUND: str(spec.round),
        **MANAGED_BY,
    }
    env = [
        {"name": "OXYGEN_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "OXYGEN_SHARD", "value": shard.metadata.name},
        {"name": "OXYGEN_SHARD_UID", "value": shard.metadata.uid},
    ]
    if spec.range is not None:
        secret = {"name": item_store_secret(run.metadata.name), "key": ITEM_STORE_SECRET_KEY}
        env.append({"name": ITEM_STORE_DSN_ENV, "valueFrom": {"secretKeyRef": secret}})
    container: dict[str, Any] = {
        "name": "worker",
        "image": defaults.image,
        "imagePullPolicy": defaults.image_pull_policy,
        "command": ["oxygen", "worker"],
        "args": ["--shard", shard.metadata.name],
        "env": env,
        "securityContext": restricted_container_security(),
    }
    if defaults.resources:
        container["resources"] = defaults.resources
    # Header values reach the pod from their Secrets by reference; they are never copied.
    env_from = []
    http = spec.producer.http
    if http is not None and http.headers_from is not None:
        env_from.append(
            {"prefix": HEADER_ENV_PREFIX, "secretRef": {"name": http.headers_from.secret_ref.name}}
        )
    for k, step in enumerate(spec.producer.waterfall or []):
        if step.http is not None and step.http.headers_from is not None:
            env_from.append(
                {
                    "prefix": waterfall_header_prefix(k),
                    "secretRef": {"name": step.http.headers_from.secret_ref.name},
                }
            )
    for item in spec.items:
        own = item.producer.http if item.producer is not None else None
        if own is not None and own.headers_from is not None:
            env_from.append(
                {
                    "prefix": step_header_prefix(item.id),
                    "secretRef": {"name": own.headers_from.secret_ref.name},
                }
            )
    if env_from:
        container["envFrom"] = env_from
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "serviceAccountName": defaults.service_account or worker_account(run.metadata.name),
        "terminationGracePeriodSeconds": defaults.termination_grace_seconds,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if defaults.node_selector:
        pod_spec["nodeSelector"] = defaults.node_selector
    if defaults.tolerations:
        pod_spec["tolerations"] = defaults.tolerations
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": shard.metadata.name,
            "namespace": run.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(shard_body)],
        },
        "spec": {
            "suspend": suspend,
            "completions": 1,
            "parallelism": 1,
            # Pod deaths (node loss, eviction, deletion) are retried; the worker resumes the shard.
            "backoffLimit": defaults.backoff_limit,
            "activeDeadlineSeconds": defaults.active_deadline_seconds,
            # A replacement pod starts only once the old one is gone: never two workers on a shard.
            "podReplacementPolicy": "Failed",
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def worker_identity(run_body: dict[str, Any], shard_names: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """ServiceAccount, Role (this run's shards only) and RoleBinding for a run's workers.

    None for a run without shards: RBAC reads empty `resourceNames` as every RunShard of the namespace,
    and a run with no shards has no worker to grant anything to.
    """
    if not shard_names:
        return []
    name = worker_account(run_body["metadata"]["name"])
    namespace = run_body["metadata"]["namespace"]
    meta = {
        "name": name,
        "namespace": namespace,
        "labels": {LABEL_RUN: label_value(run_body["metadata"]["name"]), **MANAGED_BY},
        "ownerReferences": [owner_reference(run_body)],
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta,
        # Read the shard, write its status; never its spec (what the Job runs and runs as).
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["runshards"],
                "resourceNames": sorted(shard_names),
                "verbs": ["get"],
            },
            {
                "apiGroups": [GROUP],
                "resources": ["runshards/status"],
                "resourceNames": sorted(shard_names),
                "verbs": ["patch"],
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    }
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta,
        "automountServiceAccountToken": True,
    }
    return [("ServiceAccount", account), ("Role", role), ("RoleBinding", binding)]
