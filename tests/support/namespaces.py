"""Test namespaces."""

from __future__ import annotations

from kubernetes import client

from oxygen.devcluster.wait import wait_for


def create_namespace(api: client.ApiClient, name: str) -> str:
    """A new namespace, once pods can be admitted in it (the service-account controller made the
    `default` account)."""
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        what=f"serviceaccount default in {name}",
    )
    return name
