"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

This is what envtest does for Go operators, adapted: the binaries are built from pinned Go
modules (hack/controlplane), certificates are generated per cluster, every process writes its
log to a file under the cluster's directory, and `stop()` leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from oxygen.devcluster import certs
from oxygen.devcluster.binaries import controlplane_bin_dir
from oxygen.devcluster.processes import die_with_parent

# Controllers a Run needs: Jobs and their pods, garbage collection through owner references,
# namespace deletion, TTL clean-up, and service accounts (+ tokens) for shard pods.
CONTROLLERS = (
    "job-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "ttl-after-finished-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# `OXYGEN_APISERVER_AUDIT_LOG=<file>`: every request's metadata, once (at ResponseComplete).
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
- level: Metadata
"""


class ControlPlaneError(RuntimeError):
    pass


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class ControlPlane:
    """One local cluster. Use as a context manager, or call start()/stop()."""

    workdir: Path | None = None
    bin_dir: Path | None = None
    startup_timeout: float = 60.0
    api_port: int = 0
    kubeconfig: Path = field(init=False)
    _procs: list[_Process] = field(default_factory=list, init=False)
    _apiserver_argv: list[str] = field(default_factory=list, init=False)
    _pki: certs.Pki | None = field(default=None, init=False)
    _own_workdir: bool = field(default=False, init=False)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> ControlPlane:
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="oxygen-cp-"))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        bins = self.bin_dir or controlplane_bin_dir()
        pki = self._pki = certs.generate(self.workdir / "pki")
        try:
            etcd_url = self._start_etcd(bins)
            self.api_port = self.api_port or free_port()
            self._start_apiserver(bins, pki, etcd_url)
            self.kubeconfig = self._write_kubeconfig(pki)
            self._wait_ready(pki)
            self._start_controller_manager(bins, pki)
            self._wait_default_serviceaccount()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate every process (reverse start order), then SIGKILL what lingers."""
        for proc in reversed(self._procs):
            _terminate(proc.popen, grace=10.0)
        self._procs.clear()
        if self._own_workdir and self.workdir is not None and not os.environ.get("OXYGEN_KEEP_CLUSTER_DIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self._procs}

    def logs(self) -> dict[str, Path]:
        return {p.name: p.log for p in self._procs}

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster (a convenience for tests and the demo)."""
        return subprocess.run(
            ["kubectl", "--kubeconfig", str(self.kubeconfig), *args],
            check=check,
            capture_output=True,
            text=True,
            input=input,
        )

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> _Process:
        assert self.workdir is not None
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            # A new session per binary, so stop() can signal the whole process group.
            popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
            )
        proc = _Process(name, popen, log)
        self._procs.append(proc)
        return proc

    def _start_etcd(self, bins: Path) -> str:
        assert self.workdir is not None
        client, peer = free_port(), free_port()
        url = f"http://127.0.0.1:{client}"
        proc = self._spawn(
            "etcd",
            [
                str(bins / "etcd"),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                url,
                "--advertise-client-urls",
                url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes",
                str(4 * 1024**3),
                "--log-level",
                "warn",
            ],
        )
        self._wait_http(proc, f"{url}/health", ssl_context=None)
        return url

    def restart_apiserver(self, down_seconds: float) -> None:
        """SIGKILL kube-apiserver, leave it down for `down_seconds`, start it again and wait until it is
        ready: an API-server outage as clients see it (connections refused, then the same server back)."""
        assert self._pki is not None, "restart_apiserver needs a control plane this object started"
        api = next(p for p in self._procs if p.name == "kube-apiserver")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(api.popen.pid, signal.SIGKILL)
        api.popen.wait(timeout=30)
        self._procs.remove(api)
        time.sleep(down_seconds)
        self._spawn("kube-apiserver", self._apiserver_argv)
        self._wait_ready(self._pki)

    def _start_apiserver(self, bins: Path, pki: certs.Pki, etcd_url: str) -> None:
        self._apiserver_argv = [
            str(bins / "kube-apiserver"),
            "--etcd-servers",
            etcd_url,
            "--bind-address",
            "127.0.0.1",
            "--advertise-address",
            "127.0.0.1",
            "--secure-port",
            str(self.api_port),
            "--tls-cert-file",
            str(pki.serving_cert),
            "--tls-private-key-file",
            str(pki.serving_key),
            "--client-ca-file",
            str(pki.ca_cert),
            "--authorization-mode",
            "RBAC",
            "--service-account-issuer",
            "https://kubernetes.default.svc",
            "--service-account-key-file",
            str(pki.sa_public_key),
            "--service-account-signing-key-file",
            str(pki.sa_private_key),
            "--service-cluster-ip-range",
            certs.SERVICE_CLUSTER_IP_RANGE,
            # Loopback advertise addresses are rejected by the endpoint reconciler.
            "--endpoint-reconciler-type",
            "none",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--v=1",
        ]
        audit_log = os.environ.get("OXYGEN_APISERVER_AUDIT_LOG")
        if audit_log and self.workdir is not None:
            # Who made which request (user, user agent, verb, object): to find a request's origin.
            policy = self.workdir / "audit-policy.yaml"
            policy.write_text(AUDIT_POLICY)
            self._apiserver_argv += ["--audit-policy-file", str(policy), "--audit-log-path", audit_log]
        self._spawn("kube-apiserver", self._apiserver_argv)

    def _start_controller_manager(self, bins: Path, pki: certs.Pki) -> None:
        kc = str(self.kubeconfig)
        self._spawn(
            "kube-controller-manager",
            [
                str(bins / "kube-controller-manager"),
                "--kubeconfig",
                kc,
                "--authentication-kubeconfig",
                kc,
                "--authorization-kubeconfig",
                kc,
                "--leader-elect=false",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(free_port()),
                "--controllers",
                ",".join(CONTROLLERS),
                "--service-account-private-key-file",
                str(pki.sa_private_key),
                "--root-ca-file",
                str(pki.ca_cert),
                "--use-service-account-credentials=false",
                # Job status and pod churn should be seen quickly in tests and demos.
                "--concurrent-job-syncs",
                "10",
                # Client-side rate limit of the controllers (default 20/s, bursts of 30): hundreds of
                # Jobs at once would wait on it, not on the operator under test.
                "--kube-api-qps",
                "200",
                "--kube-api-burst",
                "400",
                "--v=1",
            ],
        )

    # -- readiness -------------------------------------------------------------------------

    def _wait_http(self, proc: _Process, url: str, ssl_context: ssl.SSLContext | None) -> None:
        deadline = time.monotonic() + self.startup_timeout
        last = ""
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise ControlPlaneError(
                    f"{proc.name} exited with {proc.popen.returncode}; its log ({proc.log}) ends:\n"
                    + _tail(proc.log)
                )
            try:
                with urllib.request.urlopen(url, timeout=2, context=ssl_context) as resp:
                    if resp.status == 200:
                        return
                    last = f"HTTP {resp.status}"
            except (urllib.error.URLError, OSError) as err:
                last = str(err)
            time.sleep(0.1)
        raise ControlPlaneError(
            f"{proc.name} not ready at {url} after {self.startup_timeout}s ({last}):\n" + _tail(proc.log)
        )

    def _wait_ready(self, pki: certs.Pki) -> None:
        ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
        ctx.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        api = next(p for p in self._procs if p.name == "kube-apiserver")
        self._wait_http(api, f"{self.server}/readyz", ssl_context=ctx)

    def _wait_default_serviceaccount(self) -> None:
        """Pods are only admitted once the service-account controller made `default` accounts."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0:
                return
            kcm = next(p for p in self._procs if p.name == "kube-controller-manager")
            if kcm.popen.poll() is not None:
                raise ControlPlaneError("kube-controller-manager exited:\n" + _tail(kcm.log))
            time.sleep(0.2)
        raise ControlPlaneError("the service-account controller never created default/default")

    def _write_kubeconfig(self, pki: certs.Pki) -> Path:
        assert self.workdir is not None
        path = self.workdir / "kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "oxygen-local",
                    "cluster": {"server": self.server, "certificate-authority": str(pki.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": "oxygen-admin",
                    "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
                }
            ],
            "contexts": [
                {"name": "oxygen-local", "context": {"cluster": "oxygen-local", "user": "oxygen-admin"}}
            ],
            "current-context": "oxygen-local",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


def _terminate(popen: subprocess.Popen[bytes], grace: float) -> None:
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(timeout=10)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running(workdir: Path | None = None) -> Iterator[ControlPlane]:
    cp = ControlPlane(workdir=workdir)
    with cp:
        yield cp
