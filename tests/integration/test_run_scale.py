"""Many Runs at once (issue 18), against the real control plane; the big numbers are bench/many_runs.py's.

Pods are simulated (the node agent's no-process mode, turned on by the namespace label
`oxygen.dev/simulate-pods=true`): a shard's `oxygen worker` runs in a thread of the agent with its own
identity and writes real results, so each Run finishes with exact counts while the machine's CPU goes
to the operator under test, not to hundreds of interpreter start-ups.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from oxygen.api.common import GROUP, VERSION
from oxygen.api.labels import LABEL_RUN_UID
from oxygen.devcluster import LocalCluster
from oxygen.devcluster.nodeagent import SIMULATE_LABEL
from oxygen.devcluster.wait import wait_for
from tests.support.loopback import LoopbackProvider
from tests.support.namespaces import create_namespace
from tests.support.operator_process import OperatorProcess
from tests.support.runs import TERMINAL, Runs

pytestmark = [pytest.mark.cluster]

ITEMS = 5
REPO = Path(__file__).resolve().parents[2]
# The resources the operator reads or writes for a Run (kube-apiserver's `resource` label).
RUN_RESOURCES = frozenset(
    {
        "runs",
        "runshards",
        "jobs",
        "events",
        "serviceaccounts",
        "roles",
        "rolebindings",
        "creditaccounts",
        "providers",
        "workflows",
        "configmaps",
        "secrets",
    }
)


# This module has its own control plane. Hundreds of Runs leave a namespace that the garbage collector
# empties for minutes; on the suite's shared cluster that slowed later tests, and other tests'
# namespaces being emptied showed up in the API-request counts these tests assert on.
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(workdir=tmp_path_factory.mktemp("scale-cluster")) as own:
        yield own


@pytest.fixture(scope="module")
def api(cluster: LocalCluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def operator(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    cluster.controlplane.kubectl("apply", "-f", str(REPO / "crds"))
    cluster.controlplane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
    proc = OperatorProcess(cluster.kubeconfig, tmp_path_factory.mktemp("scale-operator")).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def namespace(api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, gone before the next test starts (so its clean-up is not counted)."""
    core = client.CoreV1Api(api)
    name = create_namespace(api, f"scale-{uuid.uuid4().hex[:6]}")
    yield name
    core.delete_namespace(name, propagation_policy="Background")

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except client.ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(gone, timeout=300, interval=2.0, what=f"namespace {name} deleted")


@pytest.fixture
def simulated(api: client.ApiClient, namespace: str) -> str:
    client.CoreV1Api(api).patch_namespace(namespace, {"metadata": {"labels": {SIMULATE_LABEL: "true"}}})
    return namespace


def echo_run(name: str, producer: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {
            "items": [{"inputs": {"i": i}} for i in range(ITEMS)],
            "producer": producer or {"provider": "echo", "builtin": "echo"},
            "batchSize": ITEMS,
        },
    }


class FirstJobs:
    """When this process first saw a Job of each run (by run uid), from a watch started beforehand."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._batch = client.BatchV1Api(api)
        self._ns = namespace
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    self._batch.list_namespaced_job,
                    self._ns,
                    label_selector=LABEL_RUN_UID,
                    timeout_seconds=30,
                )
                for event in stream:
                    uid = (event["object"].metadata.labels or {}).get(LABEL_RUN_UID)
                    if uid:
                        self.seen.setdefault(uid, time.monotonic())
            except Exception:  # a dropped watch: start again
                time.sleep(0.2)

    def stop(self) -> None:
        self._stop.set()


def create_all(runs: Runs, bodies: list[dict[str, Any]]) -> dict[str, float]:
    """Create the Runs from 8 threads at once; each run uid → when its create call started."""
    applied: dict[str, float] = {}

    def create(body: dict[str, Any]) -> None:
        t = time.monotonic()
        made = runs.custom.create_namespaced_custom_object(GROUP, VERSION, runs.ns, "runs", body)
        applied[made["metadata"]["uid"]] = t

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, bodies))
    return applied


def all_runs(runs: Runs) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = runs.custom.list_namespaced_custom_object(GROUP, VERSION, runs.ns, "runs")[
        "items"
    ]
    return items


def wait_finished(runs: Runs, count: int, timeout: float) -> list[dict[str, Any]]:
    def finished() -> list[dict[str, Any]] | None:
        found = all_runs(runs)
        done = [r for r in found if (r.get("status") or {}).get("phase") in TERMINAL]
        return found if len(done) >= count else None

    result: list[dict[str, Any]] = wait_for(
        finished, timeout=timeout, interval=2.0, what=f"{count} runs finished"
    )
    return result


def assert_exact(finished: list[dict[str, Any]]) -> None:
    wrong = [
        (r["metadata"]["name"], r["status"].get("phase"), r["status"].get("itemsSucceeded"))
        for r in finished
        if r["status"].get("phase") != "succeeded"
        or r["status"].get("itemsSucceeded") != ITEMS
        or r["status"].get("itemsTotal") != ITEMS
    ]
    assert not wrong, wrong[:10]


def requests_now(cluster: LocalCluster) -> Counter[tuple[str, str]]:
    """kube-apiserver's apiserver_request_total by (verb, resource[/subresource])."""
    text = cluster.controlplane.kubectl("get", "--raw", "/metrics").stdout
    out: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels_text, value = line[len("apiserver_request_total{") :].rsplit("} ", 1)
        labels = dict(part.split("=", 1) for part in labels_text.split('",') if "=" in part)
        labels = {k: v.strip('"') for k, v in labels.items()}
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        out[(labels.get("verb", ""), resource)] += int(float(value))
    return out


def run_traffic(cluster: LocalCluster, seconds: float) -> Counter[tuple[str, str]]:
    """The requests for what a Run's controller reads or writes over `seconds`. WATCH and LIST are
    kopf's watch streams (one per kind, re-listed every few minutes whatever the number of runs): not
    traffic of a run."""
    before = requests_now(cluster)
    time.sleep(seconds)
    delta = requests_now(cluster) - before
    return Counter(
        {
            (verb, res): n
            for (verb, res), n in delta.items()
            if n and verb not in ("WATCH", "LIST") and res.split("/")[0] in RUN_RESOURCES
        }
    )


def test_300_runs_at_once_all_succeed_and_none_waits_for_another(
    api: client.ApiClient, simulated: str, runs: Runs
) -> None:
    count = 300
    first_jobs = FirstJobs(api, simulated)
    try:
        applied = create_all(runs, [echo_run(f"burst-{i}") for i in range(count)])
        wait_for(lambda: len(first_jobs.seen) >= count, timeout=300, interval=1.0, what="a Job for every run")
    finally:
        first_jobs.stop()
    waits = sorted(first_jobs.seen[uid] - at for uid, at in applied.items())
    median = statistics.median(waits)
    print(f"apply -> first Job over {count} runs: median {median:.2f}s, max {waits[-1]:.2f}s")
    # The queue is first in, first out: no Run waits behind another's repeated passes.
    assert waits[-1] <= 3 * median, (median, waits[-10:])
    assert_exact(wait_finished(runs, count, timeout=400))


def test_finished_runs_cause_no_periodic_api_traffic(
    cluster: LocalCluster, api: client.ApiClient, simulated: str, runs: Runs
) -> None:
    count = 100
    create_all(runs, [echo_run(f"done-{i}") for i in range(count)])
    assert_exact(wait_finished(runs, count, timeout=300))
    core = client.CoreV1Api(api)

    def quiet() -> bool:
        # A namespace being deleted would count as run traffic (the namespace controller lists and
        # deletes what it holds); so would an unfinished Run.
        terminating = [n for n in core.list_namespace().items if n.status.phase == "Terminating"]
        custom = client.CustomObjectsApi(api)
        live = [
            r
            for r in custom.list_cluster_custom_object(GROUP, VERSION, "runs")["items"]
            if (r.get("status") or {}).get("phase") not in TERMINAL
        ]
        return not terminating and not live

    wait_for(quiet, timeout=240, interval=1.0, what="no namespace terminating, no run unfinished")
    # The garbage collector watches a custom resource from its first discovery resync (every 30 s) on,
    # and then GETs the owners of what it had seen before once: one-off, not periodic. Wait for a
    # quiet 10 s before the 60 s that count.
    wait_for(lambda: not run_traffic(cluster, 10), timeout=120, interval=0.1, what="10 s without run traffic")
    delta = run_traffic(cluster, 60)
    traffic = {f"{verb} {res}": n for (verb, res), n in delta.items()}
    print("run requests over 60 s idle:", traffic)
    assert traffic == {}


def _inventory(runs: Runs) -> dict[str, dict[str, str]]:
    custom, batch = runs.custom, runs.batch
    shards = custom.list_namespaced_custom_object(GROUP, VERSION, runs.ns, "runshards")["items"]
    jobs = batch.list_namespaced_job(runs.ns).items
    core, rbac = runs.core, client.RbacAuthorizationV1Api(runs.api)
    return {
        "runshards": {s["metadata"]["name"]: s["metadata"]["uid"] for s in shards},
        "jobs": {j.metadata.name: j.metadata.uid for j in jobs},
        "serviceaccounts": {
            s.metadata.name: s.metadata.uid
            for s in core.list_namespaced_service_account(runs.ns).items
            if s.metadata.name != "default"
        },
        "roles": {r.metadata.name: r.metadata.uid for r in rbac.list_namespaced_role(runs.ns).items},
        "rolebindings": {
            r.metadata.name: r.metadata.uid for r in rbac.list_namespaced_role_binding(runs.ns).items
        },
        "rounds": {
            r["metadata"]["name"]: str(len((r.get("status") or {}).get("rounds") or []))
            for r in all_runs(runs)
        },
    }


@pytest.fixture
def holding() -> Iterator[LoopbackProvider]:
    with LoopbackProvider(latency=0.0, record=False) as provider:
        provider.hold()
        yield provider


@pytest.mark.slow
def test_restart_with_many_finished_and_50_running_runs_resumes_and_recreates_nothing(
    cluster: LocalCluster,
    api: client.ApiClient,
    simulated: str,
    runs: Runs,
    operator: OperatorProcess,
    holding: LoopbackProvider,
) -> None:
    # The figure is 1,000 finished runs. Each simulated pod still runs a real worker (its
    # token, client and status writes) in this test process: on CI's 2 shared cores 1,000 of them
    # take minutes, not the operator's restart. The bench keeps 5,000 finished runs across a restart's
    # cost (bench/many_runs.py); 300 here are already 6 times the running ones.
    finished, running = 300, 50
    create_all(runs, [echo_run(f"done-{i}") for i in range(finished)])
    assert_exact(wait_finished(runs, finished, timeout=500))
    held = {"provider": "held", "http": {"url": holding.url, "timeoutSeconds": 600}, "concurrency": ITEMS}
    create_all(runs, [echo_run(f"live-{i}", held) for i in range(running)])
    # Every running run's worker has its calls open (all its items held at the provider).
    wait_for(lambda: holding.held >= running * ITEMS, timeout=300, interval=1.0, what="every call held")
    before = _inventory(runs)
    assert len(before["runshards"]) == len(before["jobs"]) == finished + running
    created = requests_now(cluster)

    operator.kill()
    operator.start()
    time.sleep(10)  # the new operator lists every Run, shard and Job and makes one pass per Run
    holding.release()
    started = time.monotonic()
    done = wait_finished(runs, finished + running, timeout=300)
    resumed = time.monotonic() - started
    print(f"{running} running runs finished {resumed:.1f}s after their calls were answered")
    assert_exact(done)

    after = _inventory(runs)
    assert after == before  # the same shards, Jobs and identities (same uids), no round added
    delta = requests_now(cluster) - created
    recreated = {
        f"{verb} {res}": n
        for (verb, res), n in delta.items()
        if n
        and verb in ("POST", "PUT", "DELETE")
        and res in ("runshards", "jobs", "serviceaccounts", "roles", "rolebindings")
    }
    assert recreated == {}
