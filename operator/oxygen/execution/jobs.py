"""Manifests of a shard's execution: its Job, and the worker's narrow identity per Run.

Each Run gets its own ServiceAccount and a Role that names its RunShards one by one
(`resourceNames`), so a shard's pod can read and write only its own run's shards and nothing else.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from oxygen.api.common import GROUP
from oxygen.api.labels import LABEL_ROUND, LABEL_RUN, LABEL_RUN_UID, LABEL_SHARD, MANAGED_BY, owner_reference
from oxygen.api.runshard import RunShard
from oxygen.execution.producers import HEADER_ENV_PREFIX, step_header_prefix


@dataclass(frozen=True)
class WorkerDefaults:
    """Pod settings for shard workers (chart values end up here through the environment)."""

    image: str = "oxygen-operator:dev"
    image_pull_policy: str = "IfNotPresent"
    resources: dict[str, Any] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    # A fixed account for every shard pod (chart value); unset: one narrow account per Run.
    service_account: str | None = None
    backoff_limit: int = 6
    termination_grace_seconds: int = 30

    @classmethod
    def from_env(cls) -> WorkerDefaults:
        """The chart's worker values, passed to the operator as environment variables (JSON)."""

        def json_env(name: str, default: Any) -> Any:
            raw = os.environ.get(name, "").strip()
            return json.loads(raw) if raw else default

        return cls(
            image=os.environ.get("OXYGEN_WORKER_IMAGE", cls.image),
            image_pull_policy=os.environ.get("OXYGEN_WORKER_IMAGE_PULL_POLICY", cls.image_pull_policy),
            resources=json_env("OXYGEN_WORKER_RESOURCES", {}),
            node_selector=json_env("OXYGEN_WORKER_NODE_SELECTOR", {}),
            tolerations=json_env("OXYGEN_WORKER_TOLERATIONS", []),
            service_account=os.environ.get("OXYGEN_WORKER_SERVICE_ACCOUNT") or None,
        )


def worker_account(run_name: str) -> str:
    return f"{run_name[:240]}-worker"


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
    shard: RunShard, shard_body: dict[str, Any], suspend: bool, defaults: WorkerDefaults
) -> dict[str, Any]:
    spec = shard.spec
    labels = {
        LABEL_RUN: spec.run_name[:63],
        LABEL_RUN_UID: spec.run_uid,
        LABEL_SHARD: shard.metadata.name,
        LABEL_ROUND: str(spec.round),
        **MANAGED_BY,
    }
    env = [
        {"name": "OXYGEN_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "OXYGEN_SHARD", "value": shard.metadata.name},
    ]
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
        "serviceAccountName": defaults.service_account or worker_account(spec.run_name),
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
            "namespace": shard.metadata.namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(shard_body)],
        },
        "spec": {
            "suspend": suspend,
            "completions": 1,
            "parallelism": 1,
            # Pod deaths (node loss, eviction, deletion) are retried; the worker resumes the shard.
            "backoffLimit": defaults.backoff_limit,
            # A replacement pod starts only once the old one is gone: never two workers on a shard.
            "podReplacementPolicy": "Failed",
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def worker_identity(run_body: dict[str, Any], shard_names: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """ServiceAccount, Role (this run's shards only) and RoleBinding for a run's workers."""
    name = worker_account(run_body["metadata"]["name"])
    namespace = run_body["metadata"]["namespace"]
    meta = {
        "name": name,
        "namespace": namespace,
        "labels": {LABEL_RUN: run_body["metadata"]["name"][:63], **MANAGED_BY},
        "ownerReferences": [owner_reference(run_body)],
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": meta,
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": ["runshards", "runshards/status"],
                "resourceNames": sorted(shard_names),
                "verbs": ["get", "patch"],
            }
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
