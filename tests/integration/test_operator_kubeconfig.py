"""`oxygen operator --kubeconfig X` wins over $KUBECONFIG, for kopf's login and our client alike.

The operator starts with $KUBECONFIG naming a cluster that does not answer (a stand-in for the admin
kubeconfig a shell usually has) and `--kubeconfig` naming the real one; it must do its work, which
it can only do when both kopf's watches and our client's writes go to the cluster of the flag.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from oxygen.devcluster import LocalCluster
from tests.support.operator_process import OperatorProcess
from tests.support.runs import Runs

pytestmark = pytest.mark.cluster

FLAG_BASE_URL = "http://kubeconfig-flag.test"


def unreachable_kubeconfig(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "elsewhere", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "admin", "user": {"token": "not-this-one"}}],
                "contexts": [{"name": "elsewhere", "context": {"cluster": "elsewhere", "user": "admin"}}],
                "current-context": "elsewhere",
            }
        )
    )
    return path


@pytest.fixture
def flag_operator(
    cluster: LocalCluster, crds: None, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    operator.stop()  # the session's operator must not do the work for us
    own = OperatorProcess(
        cluster.kubeconfig,
        tmp_path / "operator",
        {
            "KUBECONFIG": str(unreachable_kubeconfig(tmp_path / "elsewhere.yaml")),
            "OXYGEN_METRICS_PORT": "0",
            "OXYGEN_WEBHOOK_PORT": "0",
        },
        ["--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace, "--web-base-url", FLAG_BASE_URL],
    ).start()
    try:
        yield own
    finally:
        own.stop()
        operator.start()


def test_the_kubeconfig_flag_wins_over_the_environment(
    flag_operator: OperatorProcess, api: client.ApiClient, namespace: str
) -> None:
    runs = Runs(api, namespace)  # not the `runs` fixture: it would restart the session's operator
    runs.create(
        "flagged", {"items": [{"inputs": {"i": 1}}], "producer": {"provider": "echo", "builtin": "echo"}}
    )
    status = runs.wait_phase("flagged", timeout=120, describe=lambda: flag_operator.tail(30))
    assert status["phase"] == "succeeded", status
    # Written by this operator (the session's one has another base URL), through our client.
    assert status["webUrl"] == f"{FLAG_BASE_URL}/runs/{runs.ns}/flagged"
    assert "127.0.0.1:1" not in flag_operator.tail(200)
