"""High availability: two operator processes with kopf peering on the real control plane. The active
one is SIGKILLed mid-run; the passive one takes over and the run finishes with exact counts.

Takeover after a SIGKILL waits for the dead peer's keep-alive to expire (`--peering-lifetime`); the
measured figure is printed (`pytest -s`) and recorded as the test's `takeover_seconds` property.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for
from tests.support.operator_process import OperatorProcess
from tests.support.provider import Provider, echo, with_latency
from tests.support.runs import Runs

REPO = Path(__file__).resolve().parents[2]
PEERING_CRDS = REPO / "charts" / "oxygen-operator" / "crds" / "kopf.dev_peerings.yaml"
LIFETIME = 10  # seconds; the chart's default (values.yaml: peering.lifetime)


pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _paused(log: str) -> bool:
    """The replica's last peering decision was to pause (both replicas start at once, so a
    passive one may resume for an instant before it sees the active one)."""
    resumed, paused = log.rfind("Resuming operations"), log.rfind("Pausing operations")
    return resumed == -1 or paused > resumed


class Peer(OperatorProcess):
    """One operator replica as a process, with its own kopf identity (POD_ID) and priority."""

    def __init__(self, kubeconfig: Path, log_dir: Path, peering: str, priority: int) -> None:
        self.identity = f"replica-{priority}"
        super().__init__(
            kubeconfig,
            log_dir,
            extra_env={"POD_ID": self.identity},
            extra_args=[f"--peering={peering}", f"--priority={priority}", f"--peering-lifetime={LIFETIME}"],
            log_name=f"{self.identity}.log",
        )


def _peers(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    body = custom.get_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", name)
    peers: dict[str, Any] = body.get("status") or {}
    return peers


def _run_resource_version(runs: Runs, name: str) -> str:
    return str(runs.get(name)["metadata"]["resourceVersion"])


def test_passive_replica_takes_over_when_the_active_one_is_killed(
    cluster: LocalCluster,
    api: client.ApiClient,
    crds: None,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    was_running = operator.alive()
    operator.stop()  # the session's standalone operator would act regardless of the peering
    custom = client.CustomObjectsApi(api)
    peering = f"oxygen-ha-{uuid.uuid4().hex[:6]}"
    cluster.controlplane.kubectl("apply", "-f", str(PEERING_CRDS))
    cluster.controlplane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/clusterkopfpeerings.kopf.dev"
    )
    cluster.controlplane.kubectl(
        "apply",
        "-f",
        "-",
        input=f"apiVersion: kopf.dev/v1\nkind: ClusterKopfPeering\nmetadata: {{name: {peering}}}\n",
    )
    active = Peer(cluster.kubeconfig, tmp_path, peering, priority=200)
    passive = Peer(cluster.kubeconfig, tmp_path, peering, priority=100)
    try:
        active.start()
        passive.start()
        wait_for(
            lambda: set(_peers(custom, peering)) >= {active.identity, passive.identity},
            timeout=60,
            what="both replicas in the peering",
            describe=lambda: str(_peers(custom, peering)),
        )
        runs = Runs(api, namespace)
        with Provider(with_latency(0.05, echo())) as provider:
            runs.create(
                "ha",
                {
                    "items": [{"rowId": f"r{i}", "inputs": {"i": i}} for i in range(300)],
                    "producer": {"provider": "slow", "http": {"url": provider.url}},
                    "batchSize": 20,
                    "parallelism": 2,
                },
            )
            wait_for(
                lambda: runs.status("ha").get("itemsSucceeded", 0) >= 40,
                timeout=120,
                what="the active replica to make progress",
            )
            # kopf starts every replica paused; the passive one stays so while the active one lives.
            assert _paused(passive.log.read_text()), "the passive replica was active"
            before = _run_resource_version(runs, "ha")
            active.kill()
            killed_at = time.monotonic()
            # The Run's status is written only by the operator (workers write their RunShards):
            # its next change is the passive replica at work.
            wait_for(
                lambda: _run_resource_version(runs, "ha") != before,
                timeout=LIFETIME + 60,
                interval=0.1,
                what="the passive replica to take over",
            )
            takeover = time.monotonic() - killed_at
            final = runs.wait_phase("ha", timeout=180)
            successes = Counter(c.item_id for c in provider.successful_calls())
        record_property("takeover_seconds", round(takeover, 1))
        print(
            f"\ntakeover after SIGKILL of the active replica: {takeover:.1f}s (peering lifetime {LIFETIME}s)"
        )
        assert (final["phase"], final["itemsTotal"], final["itemsSucceeded"], final["itemsFailed"]) == (
            "succeeded",
            300,
            300,
            0,
        ), final
        assert len(successes) == 300, "an item was executed twice"
        assert max(successes.values()) == 1, "an item was executed twice"
        assert "Resuming operations" in passive.log.read_text()
        # Bounded by the keep-alive lifetime (plus a pass), not kopf's 60 s default.
        assert takeover < LIFETIME + 15, f"takeover took {takeover:.1f}s"
    finally:
        active.stop()
        passive.stop()
        cluster.controlplane.kubectl(
            "delete", "clusterkopfpeering", peering, "--ignore-not-found", check=False
        )
        if was_running:
            operator.start()
