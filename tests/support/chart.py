"""The Helm chart as tests use it: helm, rendering, applying a release, and the rendered Deployment's
container run as a local process authenticated as the chart's ServiceAccount."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from oxygen.api import admission
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "oxygen-operator"
CLUSTER_SCOPED = (
    "ClusterRole",
    "ClusterRoleBinding",
    "ClusterKopfPeering",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
)

# Minimal CRDs for the Prometheus Operator's kinds (not installed on our cluster), so the chart's
# optional ServiceMonitor and PrometheusRule can be validated by the API server too.
MONITORING_CRDS: list[dict[str, Any]] = [
    {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": plural[:-1], "listKind": f"{kind}List"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                            },
                        }
                    },
                }
            ],
        },
    }
    for kind, plural in (("ServiceMonitor", "servicemonitors"), ("PrometheusRule", "prometheusrules"))
]


@pytest.fixture(scope="session")
def helm() -> Path:
    done = subprocess.run(
        ["bash", str(REPO / "hack" / "tools" / "build.sh")], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"hack/tools/build.sh failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1]) / "helm"


def render(
    helm: Path, tmp_path: Path, release: str, namespace: str, values: dict[str, Any], *extra: str
) -> list[dict[str, Any]]:
    values_file = tmp_path / f"values-{release}-{uuid.uuid4().hex[:6]}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    done = subprocess.run(
        [str(helm), "template", release, str(CHART), "-n", namespace, "-f", str(values_file), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = by_kind(docs, kind)
    return doc


def kubectl(cluster: LocalCluster, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    done = cluster.controlplane.kubectl(*args, check=False, input=input)
    done.stderr = done.stderr[-3000:]  # what assertion messages show
    return done


def dump(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs)


def can_i(cluster: LocalCluster, who: str, verb: str, resource: str, *flags: str) -> bool:
    done = kubectl(cluster, "auth", "can-i", verb, resource, "--as", who, *flags)
    assert done.returncode in (0, 1) and done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


def create_namespace(api: client.ApiClient, name: str, labels: dict[str, str] | None = None) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name, "labels": labels or {}}})
    wait_for(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=30,
        what=f"serviceaccount default in {name}",
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


@pytest.fixture(scope="session")
def chart_crds(cluster: LocalCluster, crds: None) -> None:
    """The chart's crds/ (ours and kopf's peering CRDs) and minimal monitoring CRDs, established."""
    done = kubectl(cluster, "apply", "-f", str(CHART / "crds"))
    assert done.returncode == 0, done.stderr
    done = kubectl(cluster, "apply", "-f", "-", input=dump(MONITORING_CRDS))
    assert done.returncode == 0, done.stderr
    names = ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"] + [
        c["metadata"]["name"] for c in MONITORING_CRDS
    ]
    done = kubectl(
        cluster, "wait", "--for=condition=Established", "--timeout=60s", *[f"crd/{n}" for n in names]
    )
    assert done.returncode == 0, done.stderr


def sa_kubeconfig(cluster: LocalCluster, namespace: str, account: str, path: Path) -> Path:
    """A kubeconfig holding a TokenRequest token of `account` (what its pod would be given)."""
    done = kubectl(cluster, "create", "token", account, "-n", namespace, "--duration=2h")
    assert done.returncode == 0, done.stderr
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    cluster_entry = admin["clusters"][0]["cluster"]
    if "certificate-authority" in cluster_entry:
        ca = Path(cluster_entry.pop("certificate-authority")).read_bytes()
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca).decode()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": cluster_entry}],
                "users": [{"name": account, "user": {"token": done.stdout.strip()}}],
                "contexts": [{"name": "sa", "context": {"cluster": "local", "user": account}}],
                "current-context": "sa",
            }
        )
    )
    path.chmod(0o600)
    return path


class ChartOperator:
    """The rendered Deployment's container (command, args, env) run as a local process."""

    def __init__(self, deployment: dict[str, Any], kubeconfig: Path, log: Path) -> None:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        self.argv = [*container["command"], *container["args"]]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])
        for var in container["env"]:
            if "value" in var:
                self.env[var["name"]] = var["value"]
            elif var["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
                self.env[var["name"]] = "oxygen-operator-test-pod"
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert shutil.which(self.argv[0], path=self.env["PATH"]), f"{self.argv[0]} is not on PATH"
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=15)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def apply_release(
    cluster: LocalCluster, helm: Path, tmp_path: Path, namespace: str, values: dict[str, Any]
) -> tuple[str, list[dict[str, Any]]]:
    """Apply the rendered chart for real under a unique release name; returns the name and docs."""
    release = f"ox{uuid.uuid4().hex[:6]}"
    docs = render(helm, tmp_path, release, namespace, {"replicaCount": 0, **values})
    done = kubectl(cluster, "apply", "-f", "-", input=dump(docs))
    assert done.returncode == 0, done.stderr
    return release, docs


def delete_cluster_scoped(cluster: LocalCluster, docs: list[dict[str, Any]]) -> None:
    # The chart's tenant admission policies are the generated ones the session's `crds` fixture
    # installed (same names, same content): they stay, or later tests would run without them.
    shared = {(d["kind"], d["metadata"]["name"]) for d in admission.documents()}
    for doc in docs:
        if doc["kind"] in CLUSTER_SCOPED and (doc["kind"], doc["metadata"]["name"]) not in shared:
            kubectl(cluster, "delete", doc["kind"].lower(), doc["metadata"]["name"], "--ignore-not-found")
