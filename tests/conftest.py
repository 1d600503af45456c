"""Fixtures: one real control plane per test session, a fresh namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    workdir = (
        Path(os.environ["OXYGEN_TEST_CLUSTER_DIR"])
        if os.environ.get("OXYGEN_TEST_CLUSTER_DIR")
        else tmp_path_factory.mktemp("cluster")
    )
    local = LocalCluster(workdir=workdir)
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def api(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (its pods go with it)."""
    base = request.node.name.lower().replace("_", "-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    # Pods are admitted only once the service-account controller made the `default` account.
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        what=f"serviceaccount default in {name}",
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")
