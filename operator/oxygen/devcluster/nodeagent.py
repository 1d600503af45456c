"""A node agent that runs pods as local processes (there is no container runtime here).

It plays the parts of kube-scheduler and kubelet that Jobs depend on, against the real API server:
registers a Node; binds unscheduled pods to it; runs each container's command and args as a
subprocess with the pod's environment (fieldRefs such as the Job completion index, Secret and
ConfigMap references, a service-account token as a kubeconfig); reports phase, conditions and exit
codes; and honours deletion with SIGTERM, the grace period, then SIGKILL. Images are not pulled:
the command must exist on this machine.

Simulated pods (for benchmarks and scale tests, which measure the operator, not this machine): with
`simulate=True` (or OXYGEN_NODEAGENT_SIMULATE=1) every pod, otherwise the pods of namespaces labelled
`oxygen.dev/simulate-pods=true`, run no process. A container whose command is `oxygen worker` runs
the real worker in a thread of the agent (its own service-account kubeconfig, its shard, its status
writes: a Run still finishes with exact counts); any other container completes at once with exit 0.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from oxygen.devcluster.processes import die_with_parent
from oxygen.kube.client import with_pool
from oxygen.kube.failures import is_transient
from oxygen.timefmt import rfc3339

log = logging.getLogger("oxygen.nodeagent")

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
SIMULATE_ENV = "OXYGEN_NODEAGENT_SIMULATE"
SIMULATE_LABEL = "oxygen.dev/simulate-pods"
# A namespace's simulate label is read again after this many seconds.
SIMULATE_CACHE_SECONDS = 30.0
_FIELD_SUBSCRIPT = re.compile(r"^metadata\.(annotations|labels)\['(.+)'\]$")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command/args/env; $$(VAR) escapes."""
    out = _VAR_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text.replace("$$(", "\0"))
    return out.replace("\0", "$(")


def field_value(pod: dict[str, Any], path: str) -> str:
    meta = pod["metadata"]
    m = _FIELD_SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": pod["spec"].get("nodeName"),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


# How often a pod waiting for a missing Secret or ConfigMap looks again.
CONFIG_RETRY_SECONDS = 5.0


class _ConfigMissing(Exception):
    """A Secret or ConfigMap a container's environment names does not exist (yet)."""


class _NeverStarted(Exception):
    """The pod was deleted before its containers could start."""


@dataclass
class _PodRun:
    """What the agent knows of one pod it runs."""

    uid: str
    namespace: str
    name: str
    directory: Path
    popen: subprocess.Popen[bytes] | None = None
    thread: threading.Thread | None = None
    stopping: threading.Event = field(default_factory=threading.Event)
    deleting: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    grace_seconds: float = 30.0


class NodeAgent:
    """Run with start()/stop(), or as a context manager. Thread-based; one per node name."""

    def __init__(
        self,
        kubeconfig: Path,
        workdir: Path,
        node_name: str = "oxygen-local",
        extra_path: list[str] | None = None,
        simulate: bool | None = None,
    ) -> None:
        from kubernetes import config as kconfig

        self.simulate = os.environ.get(SIMULATE_ENV) == "1" if simulate is None else simulate
        self._simulated_namespaces: dict[str, tuple[float, bool]] = {}
        self.node_name = node_name
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        # One connection per pod thread that may report at once (the library keeps 10, then handshakes).
        self.api_client = with_pool(kconfig.new_client_from_config(config_file=str(kubeconfig)), 64)
        self.core = client.CoreV1Api(self.api_client)
        # Pod processes find `oxygen` (and this Python) first on PATH, as an image would ship it.
        self.path = os.pathsep.join(
            [*(extra_path or []), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
        )
        self._pods: dict[str, _PodRun] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._watch: watch.Watch | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> NodeAgent:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self._watcher = threading.Thread(target=self._watch_loop, name="nodeagent-watch", daemon=True)
        self._watcher.start()
        return self

    def stop(self, grace: float = 5.0) -> None:
        """Stop watching and end every pod process (SIGTERM, then SIGKILL after `grace`)."""
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        with self._lock:
            runs = list(self._pods.values())
        for run in runs:
            run.grace_seconds = min(run.grace_seconds, grace)
            self._kill(run)
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=grace + 5)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.api_client.close()

    def __enter__(self) -> NodeAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def running_pids(self) -> dict[str, int]:
        with self._lock:
            return {
                f"{r.namespace}/{r.name}": r.popen.pid
                for r in self._pods.values()
                if r.popen is not None and r.popen.poll() is None
            }

    # -- node --------------------------------------------------------------------------------

    def _register_node(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "oxygen.dev/local-node-agent": "true",
                },
            },
        }
        with contextlib.suppress(ApiException):
            self.core.create_node(body)
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "10000"}
        status = {
            "status": {
                "capacity": capacity,
                "allocatable": capacity,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "LocalNodeAgentReady",
                        "message": "oxygen local node agent runs pods as processes",
                        "lastHeartbeatTime": rfc3339(),
                        "lastTransitionTime": rfc3339(),
                    }
                ],
                "addresses": [
                    {"type": "InternalIP", "address": "127.0.0.1"},
                    {"type": "Hostname", "address": self.node_name},
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                    "kubeletVersion": "oxygen-nodeagent",
                    "kubeProxyVersion": "",
                    "osImage": "local",
                    "kernelVersion": os.uname().release,
                    "containerRuntimeVersion": "process://",
                    "bootID": "",
                    "machineID": "",
                    "systemUUID": "",
                },
            }
        }
        self.core.patch_node_status(self.node_name, status)

    # -- watch -------------------------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self.core.list_pod_for_all_namespaces(_preload_content=False)
                data = json.loads(listed.data)  # JSON: yaml parses a list of 1,000 pods for minutes
                for pod in data.get("items", []):
                    self._on_pod(pod)
                self._watch = watch.Watch()
                stream = self._watch.stream(
                    self.core.list_pod_for_all_namespaces,
                    resource_version=data["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                    allow_watch_bookmarks=True,
                    _request_timeout=75,
                )
                for event in stream:
                    if self._stop.is_set():
                        break
                    if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                        pod = self.api_client.sanitize_for_serialization(event["object"])
                        self._on_pod(pod, deleted=event["type"] == "DELETED")
            except Exception as err:  # a dropped watch is relisted, never fatal
                if not self._stop.is_set():
                    log.warning("pod watch restarts: %s", err)
                    time.sleep(0.5)

    def _on_pod(self, pod: dict[str, Any], deleted: bool = False) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        node = spec.get("nodeName")
        phase = (pod.get("status") or {}).get("phase")
        if deleted:
            with self._lock:
                run = self._pods.get(uid)
            if run is not None:
                run.grace_seconds = 0
                self._kill(run)
                with self._lock:
                    self._pods.pop(uid, None)
            return
        if not node:
            if not meta.get("deletionTimestamp"):
                self._bind(pod)
            return
        if node != self.node_name:
            return
        with self._lock:
            run = self._pods.get(uid)
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            if run is not None and not run.finished.is_set():
                run.grace_seconds = float(grace if grace is not None else 30)
                run.deleting.set()
                self._kill(run)  # the pod thread reports and finalizes the deletion
            elif run is None or run.finished.is_set():
                self._finalize_deletion(pod, run)
            return
        if run is None and phase in (None, "Pending"):
            self._launch(pod)

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        try:
            # The generated client cannot deserialize a Binding response; skip deserialization.
            self.core.create_namespaced_pod_binding(
                meta["name"], meta["namespace"], body, _preload_content=False
            )
        except ApiException as err:
            if err.status not in (404, 409):
                log.warning("binding %s/%s failed: %s", meta["namespace"], meta["name"], err.reason)

    # -- pods --------------------------------------------------------------------------------

    def _launch(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        directory = self.workdir / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        directory.mkdir(parents=True, exist_ok=True)
        run = _PodRun(uid=meta["uid"], namespace=meta["namespace"], name=meta["name"], directory=directory)
        run.thread = threading.Thread(
            target=self._run_pod, args=(pod, run), name=f"pod-{meta['name']}", daemon=True
        )
        with self._lock:
            self._pods[run.uid] = run
        run.thread.start()

    def _run_pod(self, pod: dict[str, Any], run: _PodRun) -> None:
        spec = pod["spec"]
        started = rfc3339()
        exit_code, reason, message = 0, "Completed", ""
        statuses: list[dict[str, Any]] = []
        try:
            base_env = self._base_env(pod, run)
            envs = self._configured_envs(pod, run, base_env)
            if envs is None:  # deleted while its configuration was missing: nothing ever ran
                raise _NeverStarted()
            self._report(
                run,
                {
                    "phase": "Running",
                    "startTime": started,
                    "hostIP": "127.0.0.1",
                    "podIP": "127.0.0.1",
                    "podIPs": [{"ip": "127.0.0.1"}],
                    "conditions": _conditions(ready=True),
                    "containerStatuses": [_running(c, started) for c in spec["containers"]],
                },
            )
            for container in [*spec.get("initContainers", []), *spec["containers"]]:
                if run.stopping.is_set():
                    exit_code, reason = 137, "Killed"
                    break
                code, reason, message = self._run_container(pod, run, container, envs[container["name"]])
                statuses.append(_terminated(container, started, code, reason, message))
                if code != 0:
                    exit_code = code
                    break
        except _NeverStarted:
            exit_code, reason = 137, "Killed"
        except Exception as err:  # report a pod we cannot start as failed, never hang it
            log.exception("pod %s/%s failed to run", run.namespace, run.name)
            exit_code, reason, message = 128, "StartError", str(err)[:1000]
            statuses = [_terminated(c, started, exit_code, reason, message) for c in spec["containers"]]
        phase = "Succeeded" if exit_code == 0 else "Failed"
        names = {s["name"] for s in statuses}
        statuses += [
            _terminated(
                c,
                started,
                137 if run.stopping.is_set() else 0,
                "Killed" if run.stopping.is_set() else "Completed",
                "",
            )
            for c in spec["containers"]
            if c["name"] not in names
        ]
        init_names = {c["name"] for c in spec.get("initContainers", [])}
        with contextlib.suppress(Exception):
            self._report(
                run,
                {
                    "phase": phase,
                    "conditions": _conditions(ready=False),
                    "containerStatuses": [s for s in statuses if s["name"] not in init_names],
                    **({"message": message, "reason": reason} if phase == "Failed" and message else {}),
                },
            )
        run.finished.set()
        if run.deleting.is_set():
            self._finalize_deletion(pod, run)

    def _configured_envs(
        self, pod: dict[str, Any], run: _PodRun, base_env: dict[str, str]
    ) -> dict[str, dict[str, str]] | None:
        """Every container's environment; while a Secret or ConfigMap it names is missing, the pod stays
        Pending with its containers waiting in CreateContainerConfigError (the kubelet's reason and
        message), and the agent tries again, as the kubelet does. None when the pod is deleted first."""
        spec = pod["spec"]
        reported = ""
        while True:
            try:
                return {
                    c["name"]: {**base_env, **self._container_env(pod, c, base_env)}
                    for c in [*spec.get("initContainers", []), *spec["containers"]]
                }
            except _ConfigMissing as missing:
                if str(missing) != reported:
                    reported = str(missing)
                    log.info("pod %s/%s: CreateContainerConfigError: %s", run.namespace, run.name, missing)
                    self._report(
                        run,
                        {
                            "phase": "Pending",
                            "conditions": _conditions(ready=False),
                            "containerStatuses": [_waiting(c, str(missing)) for c in spec["containers"]],
                        },
                    )
            except Exception as err:
                # The API server is away: read the Secrets again once it is back, as the kubelet does.
                if not is_transient(err):
                    raise
            if run.stopping.wait(CONFIG_RETRY_SECONDS) or self._stop.is_set():
                return None

    def _simulated(self, namespace: str) -> bool:
        """Whether this namespace's pods run no process (the agent's mode, or the namespace's label)."""
        if self.simulate:
            return True
        now = time.monotonic()
        with self._lock:
            cached = self._simulated_namespaces.get(namespace)
        if cached is not None and now - cached[0] < SIMULATE_CACHE_SECONDS:
            return cached[1]
        try:
            labels = self.core.read_namespace(namespace).metadata.labels or {}
        except ApiException:
            labels = {}
        simulated = labels.get(SIMULATE_LABEL) == "true"
        with self._lock:
            self._simulated_namespaces[namespace] = (now, simulated)
        return simulated

    def _simulate_container(self, run: _PodRun, argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        """No process: `oxygen worker` runs in this thread, anything else completes at once."""
        if not (len(argv) >= 2 and Path(argv[0]).name == "oxygen" and argv[1] == "worker"):
            return 0, "Completed", ""
        from oxygen.execution.pod import run_worker

        shard = env.get("OXYGEN_SHARD", "")
        if "--shard" in argv[:-1]:
            shard = argv[argv.index("--shard") + 1]
        code = run_worker(env.get("OXYGEN_NAMESPACE") or run.namespace, shard, env=env, stop=run.stopping)
        return code, "Completed" if code == 0 else ("Killed" if run.stopping.is_set() else "Error"), ""

    def _run_container(
        self, pod: dict[str, Any], run: _PodRun, container: dict[str, Any], env: dict[str, str]
    ) -> tuple[int, str, str]:
        argv = [expand(a, env) for a in [*container.get("command", []), *container.get("args", [])]]
        if self._simulated(run.namespace):
            return self._simulate_container(run, argv, env)
        if not container.get("command"):
            return (
                128,
                "StartError",
                f"container {container['name']!r} has no command (images are not pulled)",
            )
        if shutil.which(argv[0], path=env["PATH"]) is None and not Path(argv[0]).is_file():
            return 127, "StartError", f"executable {argv[0]!r} not found on this machine"
        restart_on_failure = pod["spec"].get("restartPolicy") == "OnFailure"
        attempts = 0
        while True:
            attempts += 1
            with (run.directory / f"{container['name']}.log").open("ab") as out:
                run.popen = subprocess.Popen(
                    argv,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=container.get("workingDir") or str(run.directory),
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            if run.stopping.is_set():  # deleted while starting: the killer may have missed it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(run.popen.pid, signal.SIGTERM)
            code = run.popen.wait()
            if code < 0:  # killed by a signal: report as a shell would (128 + signal)
                code = 128 - code
            if code == 0 or not restart_on_failure or run.stopping.is_set() or attempts >= 6:
                break
            time.sleep(min(10.0, 0.5 * 2**attempts))
        reason = "Completed" if code == 0 else ("Killed" if run.stopping.is_set() else "Error")
        return code, reason, ""

    def _kill(self, run: _PodRun) -> None:
        """SIGTERM the pod's process group, SIGKILL after the grace period (in the background)."""
        if run.stopping.is_set():
            return
        run.stopping.set()

        def escalate() -> None:
            popen = run.popen
            if popen is None or popen.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(timeout=run.grace_seconds)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)

        threading.Thread(target=escalate, name=f"kill-{run.name}", daemon=True).start()

    def _finalize_deletion(self, pod: dict[str, Any], run: _PodRun | None) -> None:
        """What the kubelet does once containers are dead: delete the pod object for good."""
        meta = pod["metadata"]
        with contextlib.suppress(ApiException):
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions={"uid": meta["uid"]}),
            )
        if run is not None:
            with self._lock:
                self._pods.pop(run.uid, None)

    def _report(self, run: _PodRun, status: dict[str, Any]) -> None:
        """Patch the pod's status, riding out an API server that is away (as the kubelet does): a
        process that ends during an outage is reported as a terminated container, with its exit code,
        once the server is back, instead of leaving the pod `Running` with no process behind it."""
        attempt = 0
        while True:
            try:
                self._patch_status(run, status)
                return
            except Exception as err:
                attempt += 1
                if not is_transient(err) or self._stop.is_set():
                    raise
                if attempt in (1, 10) or attempt % 60 == 0:
                    log.warning("pod %s/%s status waits for the API server: %s", run.namespace, run.name, err)
                self._stop.wait(min(5.0, 0.25 * 2 ** min(attempt, 5)))

    def _patch_status(self, run: _PodRun, status: dict[str, Any]) -> None:
        try:
            self.core.patch_namespaced_pod_status(run.name, run.namespace, {"status": status})
        except ApiException as err:
            if err.status != 404:
                raise

    # -- environment -----------------------------------------------------------------------

    def _base_env(self, pod: dict[str, Any], run: _PodRun) -> dict[str, str]:
        host = self.api_client.configuration.host.removeprefix("https://")
        env = {
            "PATH": self.path,
            "HOME": str(run.directory),
            "HOSTNAME": pod["metadata"]["name"],
            "LANG": "C.UTF-8",
            "KUBERNETES_SERVICE_HOST": host.rsplit(":", 1)[0],
            "KUBERNETES_SERVICE_PORT": host.rsplit(":", 1)[1],
        }
        if pod["spec"].get("automountServiceAccountToken", True):
            env["KUBECONFIG"] = str(self._service_account_kubeconfig(pod, run))
        return env

    def _service_account_kubeconfig(self, pod: dict[str, Any], run: _PodRun) -> Path:
        """The projected service-account token, delivered as a kubeconfig (no volume mounts here)."""
        meta = pod["metadata"]
        sa = pod["spec"].get("serviceAccountName") or "default"
        token = self.core.create_namespaced_service_account_token(
            sa,
            meta["namespace"],
            {
                "spec": {
                    "audiences": [],
                    "expirationSeconds": 3600,
                    "boundObjectRef": {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                }
            },
        ).status.token
        cfg = self.api_client.configuration
        ca = Path(cfg.ssl_ca_cert).read_bytes() if cfg.ssl_ca_cert else b""
        path = run.directory / "kubeconfig"
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "pod",
                    "clusters": [
                        {
                            "name": "local",
                            "cluster": {
                                "server": cfg.host,
                                "certificate-authority-data": base64.b64encode(ca).decode(),
                            },
                        }
                    ],
                    "users": [{"name": sa, "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "pod",
                            "context": {"cluster": "local", "user": sa, "namespace": meta["namespace"]},
                        }
                    ],
                }
            )
        )
        path.chmod(0o600)
        return path

    def _container_env(
        self, pod: dict[str, Any], container: dict[str, Any], env: dict[str, str]
    ) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        out: dict[str, str] = {}
        for source in container.get("envFrom", []):
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                data = self._configmap(
                    ns, source["configMapRef"]["name"], source["configMapRef"].get("optional", False)
                )
            else:
                data = self._secret(
                    ns, source["secretRef"]["name"], source["secretRef"].get("optional", False)
                )
            out.update({prefix + k: v for k, v in data.items()})
        for var in container.get("env", []):
            if "valueFrom" not in var:
                out[var["name"]] = expand(var.get("value", ""), {**env, **out})
                continue
            ref = var["valueFrom"]
            if "fieldRef" in ref:
                out[var["name"]] = field_value(pod, ref["fieldRef"]["fieldPath"])
            elif "secretKeyRef" in ref:
                r = ref["secretKeyRef"]
                value = self._secret(ns, r["name"], r.get("optional", False)).get(r["key"])
                if value is not None:
                    out[var["name"]] = value
            elif "configMapKeyRef" in ref:
                r = ref["configMapKeyRef"]
                value = self._configmap(ns, r["name"], r.get("optional", False)).get(r["key"])
                if value is not None:
                    out[var["name"]] = value
            elif "resourceFieldRef" in ref:
                out[var["name"]] = "1"
        return out

    def _configmap(self, ns: str, name: str, optional: bool) -> dict[str, str]:
        try:
            return dict(self.core.read_namespaced_config_map(name, ns).data or {})
        except ApiException as err:
            if err.status == 404 and optional:
                return {}
            if err.status == 404:
                raise _ConfigMissing(f'configmap "{name}" not found') from err
            raise

    def _secret(self, ns: str, name: str, optional: bool) -> dict[str, str]:
        try:
            data = self.core.read_namespaced_secret(name, ns).data or {}
        except ApiException as err:
            if err.status == 404 and optional:
                return {}
            if err.status == 404:
                raise _ConfigMissing(f'secret "{name}" not found') from err
            raise
        return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _conditions(ready: bool) -> list[dict[str, str]]:
    now = rfc3339()
    flag = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
        {"type": "Ready", "status": flag, "lastTransitionTime": now},
    ]


def _waiting(container: dict[str, Any], message: str) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": {"reason": "CreateContainerConfigError", "message": message}},
    }


def _running(container: dict[str, Any], started: str) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": True,
        "restartCount": 0,
        "started": True,
        "state": {"running": {"startedAt": started}},
    }


def _terminated(
    container: dict[str, Any], started: str, code: int, reason: str, message: str
) -> dict[str, Any]:
    terminated: dict[str, Any] = {
        "exitCode": code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": rfc3339(),
    }
    if message:
        terminated["message"] = message
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"terminated": terminated},
    }
