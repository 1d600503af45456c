"""The foundation: a real control plane, real Jobs, pods as local processes."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for

pytestmark = pytest.mark.cluster


def job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{"name": "main", "image": "local", "command": ["sh", "-c", script]}],
                }
            },
        },
    }


def job_condition(batch: client.BatchV1Api, ns: str, name: str, kind: str) -> bool:
    status = batch.read_namespaced_job_status(name, ns).status
    return any(c.type == kind and c.status == "True" for c in (status.conditions or []))


def pid_in(pidfile: Path) -> int | None:
    """The pid a process wrote to `pidfile`, once it did."""
    text = pidfile.read_text().strip() if pidfile.exists() else ""
    return int(text) if text else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_indexed_job_runs_three_processes_to_complete(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    batch = client.BatchV1Api(api)
    script = f'echo "$JOB_COMPLETION_INDEX $$" > {tmp_path}/pod-$JOB_COMPLETION_INDEX'
    batch.create_namespaced_job(
        namespace, job("three", script, completions=3, parallelism=2, completionMode="Indexed")
    )
    wait_for(
        lambda: job_condition(batch, namespace, "three", "Complete"),
        timeout=90,
        what="Job three Complete",
        describe=lambda: str(batch.read_namespaced_job_status("three", namespace).status),
    )
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["pod-0", "pod-1", "pod-2"]
    pids = {p.read_text().split()[1] for p in tmp_path.iterdir()}
    assert len(pids) == 3, "each completion ran in a process of its own"
    assert batch.read_namespaced_job_status("three", namespace).status.succeeded == 3


def test_failing_job_reaches_failed_with_exit_code(api: client.ApiClient, namespace: str) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(namespace, job("fails", "exit 3", backoffLimit=1))
    wait_for(
        lambda: job_condition(batch, namespace, "fails", "Failed"),
        timeout=120,
        what="Job fails Failed",
        describe=lambda: str(batch.read_namespaced_job_status("fails", namespace).status),
    )
    status = batch.read_namespaced_job_status("fails", namespace).status
    assert status.failed == 2  # the first attempt plus backoffLimit=1 retry
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=fails").items
    codes = [
        cs.state.terminated.exit_code
        for p in pods
        for cs in (p.status.container_statuses or [])
        if cs.state.terminated
    ]
    assert codes
    assert set(codes) == {3}
    assert all(p.status.phase == "Failed" for p in pods)


def test_suspending_a_job_terminates_its_process(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    batch = client.BatchV1Api(api)
    pidfile = tmp_path / "pid"
    batch.create_namespaced_job(namespace, job("sleeper", f"echo $$ > {pidfile}; exec sleep 300"))
    pid = wait_for(
        lambda: pid_in(pidfile),
        timeout=60,
        what="the sleeper's process to start",
    )
    assert alive(pid)
    batch.patch_namespaced_job("sleeper", namespace, {"spec": {"suspend": True}})
    wait_for(lambda: not alive(pid), timeout=60, what=f"process {pid} to end after suspend")
    wait_for(
        lambda: job_condition(batch, namespace, "sleeper", "Suspended"),
        timeout=30,
        what="Job sleeper Suspended",
    )


def test_deleting_a_job_in_background_removes_its_pods(
    api: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    pidfile = tmp_path / "pid"
    batch.create_namespaced_job(namespace, job("doomed", f"echo $$ > {pidfile}; exec sleep 300"))
    pid = wait_for(
        lambda: pid_in(pidfile),
        timeout=60,
        what="the doomed process to start",
    )
    batch.delete_namespaced_job("doomed", namespace, propagation_policy="Background")
    wait_for(
        lambda: not core.list_namespaced_pod(namespace, label_selector="job-name=doomed").items,
        timeout=60,
        what="the garbage collector to delete the Job's pods",
    )
    assert not alive(pid)


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.oxygen.dev}
spec:
  group: example.oxygen.dev
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
            x-kubernetes-validations:
            - rule: "self.size <= 10"
              message: "size must be at most 10"
"""


def test_crd_rejects_invalid_manifest_with_apiserver_message(cluster: LocalCluster, namespace: str) -> None:
    cluster.controlplane.kubectl("apply", "-f", "-", input=CRD)
    cluster.controlplane.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.example.oxygen.dev", "--timeout=30s"
    )

    def apply(size: int) -> Any:
        manifest = (
            f"apiVersion: example.oxygen.dev/v1\nkind: Widget\nmetadata: {{name: w{size}}}\n"
            f"spec: {{size: {size}}}\n"
        )
        return cluster.controlplane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest, check=False)

    # The CRD's schema may take a moment to be served after Established.
    wait_for(lambda: apply(3).returncode == 0, timeout=30, what="a valid Widget to be accepted")
    too_small = apply(0)
    assert too_small.returncode != 0
    assert "spec.size" in too_small.stderr
    assert "should be greater than or equal to 1" in too_small.stderr
    too_big = apply(11)
    assert too_big.returncode != 0
    assert "size must be at most 10" in too_big.stderr


def test_stopping_leaves_no_process_behind(tmp_path: Path) -> None:
    local = LocalCluster(workdir=tmp_path / "c").start()
    pidfile = tmp_path / "pid"
    try:
        api_client = client.ApiClient()
        from kubernetes import config

        api_client = config.new_client_from_config(config_file=str(local.kubeconfig))
        client.BatchV1Api(api_client).create_namespaced_job(
            "default", job("lingers", f"echo $$ > {pidfile}; exec sleep 300")
        )
        pod_pid = wait_for(
            lambda: pid_in(pidfile),
            timeout=60,
            what="the pod process to start",
        )
        api_client.close()
        pids = {**local.controlplane.pids, "pod": pod_pid}
        assert all(alive(p) for p in pids.values())
    finally:
        local.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
        time.sleep(0.1)
    assert {name: pid for name, pid in pids.items() if alive(pid)} == {}


@pytest.mark.slow
def test_a_killed_harness_leaves_no_process_behind(tmp_path: Path) -> None:
    """Even SIGKILL of the process that started the cluster (no clean-up runs) ends every child."""
    import json
    import signal
    import subprocess
    import sys

    script = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from oxygen.devcluster import LocalCluster\n"
        f"c = LocalCluster(workdir=Path({str(tmp_path / 'c')!r})).start()\n"
        "print(json.dumps(c.controlplane.pids), flush=True)\n"
        "time.sleep(600)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert harness.stdout is not None
    pids = json.loads(harness.stdout.readline())
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager"}
    assert all(map(alive, pids.values()))
    harness.send_signal(signal.SIGKILL)
    harness.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(p) for p in pids.values()):
        time.sleep(0.1)
    assert {name: pid for name, pid in pids.items() if alive(pid)} == {}
