"""Fixtures: one real control plane per test session, a fresh namespace per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.postgres import LocalPostgres
from oxygen.devcluster.wait import wait_for
from tests.support.item_store import StoreRuns
from tests.support.namespaces import create_namespace
from tests.support.operator_process import OperatorProcess
from tests.support.runs import Runs


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The session's cluster: a fresh local control plane, or the running `oxygen dev up` one whose
    kubeconfig OXYGEN_TEST_KUBECONFIG names (saves the ~20 s start while iterating)."""
    if os.environ.get("OXYGEN_TEST_KUBECONFIG"):
        yield LocalCluster.attach(Path(os.environ["OXYGEN_TEST_KUBECONFIG"]))
        return
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
    name = create_namespace(api, f"{base}-{uuid.uuid4().hex[:5]}")
    yield name
    client.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def crds(cluster: LocalCluster) -> None:
    """The generated CRDs, applied and established."""
    cluster.controlplane.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.controlplane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


@pytest.fixture(scope="session")
def shared_operator(
    cluster: LocalCluster, crds: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator as a subprocess (tests may SIGKILL and restart it); its log is printed on failure."""
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("operator")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def operator(shared_operator: OperatorProcess) -> OperatorProcess:
    """The operator the tests' runs use (a module may override it: test_item_store_acceptance.py)."""
    return shared_operator


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """The superuser DSN of a real PostgreSQL: a fresh local server (stopped at the end of the session),
    or the running one OXYGEN_TEST_POSTGRES names (`oxygen dev up --postgres` writes it to postgres.dsn)."""
    if os.environ.get("OXYGEN_TEST_POSTGRES"):
        yield os.environ["OXYGEN_TEST_POSTGRES"]
        return
    # Its own directory under /tmp, not pytest's: as root the server runs as the `postgres` user, which
    # must traverse the directories above its data, and a concurrent pytest session resets the
    # permissions of /tmp/pytest-of-root.
    with LocalPostgres() as server:
        yield server.dsn


@pytest.fixture
def runs(api: client.ApiClient, namespace: str, operator: OperatorProcess) -> Iterator[Runs]:
    if not operator.alive():
        operator.start()
    yield Runs(api, namespace)


@pytest.fixture(scope="module")
def store_operator(
    cluster: LocalCluster,
    crds: None,
    shared_operator: OperatorProcess,
    postgres: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator with `--item-store <postgres>` in place of the shared one (restarted afterwards)."""
    shared_operator.stop()
    own = OperatorProcess(
        cluster.kubeconfig, tmp_path_factory.mktemp("store-operator"), extra_args=["--item-store", postgres]
    ).start()
    try:
        yield own
        # The tests' namespaces go in the background: their Runs' rows must be deleted (the finalizer
        # only this operator removes) before it stops.
        wait_for(
            lambda: not _runs_holding_rows(cluster),
            # A module's last test may SIGKILL this operator: its replacement lists every Run first,
            # and a 50,000-row run's rows go in batches.
            timeout=150,
            what="deleted runs to release their item-store rows",
        )
    finally:
        own.stop()
        shared_operator.start()


def _runs_holding_rows(cluster: LocalCluster) -> list[str]:
    with config.new_client_from_config(config_file=str(cluster.kubeconfig)) as api_client:
        found = client.CustomObjectsApi(api_client).list_cluster_custom_object(
            "oxygen.dev", "v1alpha1", "runs"
        )
    return [
        r["metadata"]["name"]
        for r in found["items"]
        if "oxygen.dev/item-store" in (r["metadata"].get("finalizers") or [])
        and r["metadata"].get("deletionTimestamp")
    ]


@pytest.fixture
def store_runs(
    api: client.ApiClient, namespace: str, store_operator: OperatorProcess, postgres: str
) -> Iterator[StoreRuns]:
    if not store_operator.alive():
        store_operator.start()
    runs = StoreRuns(api, namespace, postgres)
    yield runs
    runs.store.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    funcargs = item.funcargs if hasattr(item, "funcargs") else {}
    proc = funcargs.get("store_operator") or funcargs.get("operator")
    if report.when == "call" and report.failed and isinstance(proc, OperatorProcess):
        report.sections.append(("operator log (tail)", proc.tail(80)))
