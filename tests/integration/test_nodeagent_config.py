"""The local node agent treats a missing Secret as the kubelet does: the pod stays Pending with its
container waiting in CreateContainerConfigError, and starts once the Secret exists (issue 20, finding 2)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from kubernetes import client

from oxygen.devcluster.wait import wait_for

pytestmark = pytest.mark.cluster


def test_a_pod_whose_secret_is_missing_waits_in_create_container_config_error(
    api: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(api)
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "needs-secret"},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "main",
                    "image": "local",
                    "command": [
                        sys.executable,
                        "-c",
                        "import os, sys; sys.exit(os.environ['TOKEN'] != 's3')",
                    ],
                    "envFrom": [{"secretRef": {"name": "later"}}],
                }
            ],
        },
    }
    core.create_namespaced_pod(namespace, pod)

    def waiting() -> dict[str, Any] | None:
        status = core.read_namespaced_pod("needs-secret", namespace).status
        states = status.container_statuses or []
        found = states[0].state.waiting if states else None
        return {"phase": status.phase, "reason": found.reason, "message": found.message} if found else None

    seen = wait_for(waiting, timeout=60, what="the container to wait for its Secret")
    assert seen == {
        "phase": "Pending",
        "reason": "CreateContainerConfigError",
        "message": 'secret "later" not found',
    }

    core.create_namespaced_secret(namespace, {"metadata": {"name": "later"}, "stringData": {"TOKEN": "s3"}})
    wait_for(
        lambda: core.read_namespaced_pod("needs-secret", namespace).status.phase == "Succeeded",
        timeout=60,
        what="the pod to run once its Secret exists",
        describe=lambda: str(core.read_namespaced_pod("needs-secret", namespace).status),
    )
