"""Benchmark: many small Runs at once, a steady stream of them, and thousands kept around idle.

    .venv/bin/python bench/many_runs.py [--runs 1000] [--rate 20 --steady-seconds 120]
                                        [--finished 5000 --running 500 --idle-seconds 60]

One fresh local control plane; pods are simulated (the node agent's no-process mode,
devcluster/nodeagent.py: a shard's `oxygen worker` runs in a thread of the agent, in its own process
here, so a Run still finishes with exact counts, and the figures are the operator's, not this machine's
process start-ups). Phases, each printed as it ends:

1. burst: a plain client creates N bare Jobs (one pod each) as fast as 16 threads can (the baseline),
   then N Runs (5 echo items each) the same way: apply → first Job and apply → finished, p50/p99/max,
   runs per second, and the API requests per Run by verb and resource (kube-apiserver's own
   apiserver_request_total, every client: the operator, the controller manager, the node agent and the
   workers);
2. steady: `--rate` Runs per second for `--steady-seconds`: apply → first Job p50/p99/max;
3. idle: finished Runs topped up to `--finished`, plus `--running` Runs whose one call never answers
   (a loopback provider holding every request): the operator's RSS, its CPU seconds over
   `--idle-seconds`, and the API requests per second meanwhile by verb and resource.

Times are taken by this process (a watch on Jobs and Runs): monotonic clock, apply = just before the
create call. This machine is shared and noisy: compare ratios, not seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from bench.run_vs_indexed_job import apiserver_requests, proc_cpu_seconds, proc_peak_rss_mib  # noqa: E402
from bench.throughput import ProviderProcess  # noqa: E402
from oxygen.devcluster.controlplane import ControlPlane  # noqa: E402
from oxygen.devcluster.processes import die_with_parent  # noqa: E402
from oxygen.devcluster.wait import wait_for  # noqa: E402

NS = "bench"
BASELINE_NS = "bench-baseline"
TERMINAL = ("succeeded", "completed", "failed", "canceled")
CREATORS = 16
AGENT = (
    "import sys, threading; from pathlib import Path; "
    "from oxygen.devcluster.nodeagent import NodeAgent; "
    "NodeAgent(Path(sys.argv[1]), Path(sys.argv[2]), simulate=True).start(); threading.Event().wait()"
)


def proc_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"p50 {statistics.median(values):.2f}s p99 {pct(values, 0.99):.2f}s max {max(values):.2f}s"


def per(delta: Counter[tuple[str, str]], n: float, floor: float = 0.005) -> dict[str, float]:
    return {
        f"{verb} {res}": round(count / n, 2)
        for (verb, res), count in sorted(delta.items(), key=lambda kv: -kv[1])
        if verb != "WATCH" and count / n >= floor
    }


class Seen:
    """First time (monotonic) this process saw each Run's first Job, each Run finish, each Job complete."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.first_job: dict[str, float] = {}
        self.finished: dict[str, tuple[float, dict[str, Any]]] = {}
        self.job_done: dict[str, float] = {}
        self._stop = threading.Event()
        batch, custom = client.BatchV1Api(api), client.CustomObjectsApi(api)
        self._threads = [
            threading.Thread(
                target=self._loop, args=(batch.list_namespaced_job, (NS,), self._job), daemon=True
            ),
            threading.Thread(
                target=self._loop,
                args=(batch.list_namespaced_job, (BASELINE_NS,), self._baseline_job),
                daemon=True,
            ),
            threading.Thread(
                target=self._loop,
                args=(
                    custom.list_namespaced_custom_object,
                    ("oxygen.dev", "v1alpha1", NS, "runs"),
                    self._run,
                ),
                daemon=True,
            ),
        ]
        for t in self._threads:
            t.start()

    def _loop(
        self, lister: Callable[..., Any], args: tuple[Any, ...], on: Callable[[dict[str, Any]], None]
    ) -> None:
        while not self._stop.is_set():
            try:
                for event in watch.Watch().stream(lister, *args, timeout_seconds=60):
                    obj = event["object"]
                    on(obj if isinstance(obj, dict) else self.api.sanitize_for_serialization(obj))
            except Exception:  # a dropped watch: start again
                time.sleep(0.2)

    def _job(self, job: dict[str, Any]) -> None:
        uid = (job["metadata"].get("labels") or {}).get("oxygen.dev/run-uid")
        if uid and uid not in self.first_job:
            self.first_job[uid] = time.monotonic()

    def _baseline_job(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        conds = (job.get("status") or {}).get("conditions") or []
        if name not in self.job_done and any(
            c["type"] == "Complete" and c["status"] == "True" for c in conds
        ):
            self.job_done[name] = time.monotonic()

    def _run(self, run: dict[str, Any]) -> None:
        uid = run["metadata"]["uid"]
        status = run.get("status") or {}
        if uid not in self.finished and status.get("phase") in TERMINAL:
            self.finished[uid] = (time.monotonic(), status)


def run_manifest(name: str, items: int, producer: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "oxygen.dev/v1alpha1",
        "kind": "Run",
        "metadata": {"name": name},
        "spec": {
            "items": [{"inputs": {"i": i}} for i in range(items)],
            "producer": producer or {"provider": "echo", "builtin": "echo"},
            "batchSize": items,
        },
    }


def job_manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "w", "image": "local", "command": ["true"]}],
                }
            },
        },
    }


class Creator:
    def __init__(self, api: client.ApiClient) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.pool = ThreadPoolExecutor(CREATORS)
        self.applied: dict[str, float] = {}  # run uid or job name → apply time
        self._lock = threading.Lock()

    def _run(self, body: dict[str, Any]) -> None:
        t = time.monotonic()
        made = self.custom.create_namespaced_custom_object("oxygen.dev", "v1alpha1", NS, "runs", body)
        with self._lock:
            self.applied[made["metadata"]["uid"]] = t

    def _job(self, body: dict[str, Any]) -> None:
        t = time.monotonic()
        self.batch.create_namespaced_job(BASELINE_NS, body)
        with self._lock:
            self.applied[body["metadata"]["name"]] = t

    def runs(self, bodies: list[dict[str, Any]], rate: float | None = None) -> list[str]:
        """Create the Runs (at `rate` per second, else at once); their uids."""
        before = set(self.applied)
        t0 = time.monotonic()
        futures = []
        for i, body in enumerate(bodies):
            if rate:
                time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            futures.append(self.pool.submit(self._run, body))
        for f in futures:
            f.result()
        return [uid for uid in self.applied if uid not in before]

    def jobs(self, bodies: list[dict[str, Any]]) -> None:
        for f in [self.pool.submit(self._job, body) for body in bodies]:
            f.result()


def wait_all(what: str, done: Callable[[], int], total: int, timeout: float) -> None:
    wait_for(lambda: done() >= total, timeout=timeout, interval=0.5, what=f"{what}: {total}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--steady-seconds", type=float, default=120.0)
    parser.add_argument("--finished", type=int, default=5000)
    parser.add_argument("--running", type=int, default=500)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument(
        "--operator-path",
        default=str(REPO / "operator"),
        help="the package directory the operator runs from (e.g. another checkout's operator/, for a "
        "before/after comparison with the same node agent and bench)",
    )
    args = parser.parse_args()

    workdir = Path(os.environ.get("OXYGEN_BENCH_DIR") or f"/tmp/oxygen-bench-{os.getpid()}")
    cp = ControlPlane(workdir=workdir / "controlplane").start()
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "KUBECONFIG": str(cp.kubeconfig), "PYTHONPATH": f"{REPO / 'operator'}:{REPO}"}

    def spawn(argv: list[str], log: str, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        out = (workdir / log).open("ab")
        p = subprocess.Popen(
            argv,
            env={**env, **(extra or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        procs.append(p)
        return p

    provider: ProviderProcess | None = None
    try:
        spawn([sys.executable, "-c", AGENT, str(cp.kubeconfig), str(workdir / "node")], "nodeagent.log")
        cp.kubectl("apply", "-f", str(REPO / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        for ns in (NS, BASELINE_NS):
            cp.kubectl("create", "namespace", ns)
            wait_for(
                lambda ns=ns: cp.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0,
                timeout=30,
            )
        operator = spawn(
            [sys.executable, "-m", "oxygen", "operator", "--log-level", "WARNING"],
            "operator.log",
            {"PYTHONPATH": args.operator_path},
        )
        print(f"operator from {args.operator_path}", flush=True)
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        seen = Seen(api)
        make = Creator(api)
        time.sleep(5)  # the operator's watches start
        n = args.runs

        # -- 1. burst ------------------------------------------------------------------------
        t0 = time.monotonic()
        make.jobs([job_manifest(f"job-{i}") for i in range(n)])
        created_jobs = time.monotonic() - t0
        wait_all("baseline Jobs complete", lambda: len(seen.job_done), n, args.timeout)
        base_done = [seen.job_done[f"job-{i}"] - make.applied[f"job-{i}"] for i in range(n)]
        base_span = max(seen.job_done.values()) - t0

        cpu0 = proc_cpu_seconds(operator.pid)
        before = apiserver_requests_all(cp)
        t0 = time.monotonic()
        uids = make.runs([run_manifest(f"burst-{i}", args.items) for i in range(n)])
        created_runs = time.monotonic() - t0
        last_apply = max(make.applied[u] for u in uids)
        wait_all("first Jobs", lambda: sum(u in seen.first_job for u in uids), n, args.timeout)
        wait_all("Runs finished", lambda: sum(u in seen.finished for u in uids), n, args.timeout)
        requests = apiserver_requests_all(cp) - before
        cpu = proc_cpu_seconds(operator.pid) - cpu0
        first = [seen.first_job[u] - make.applied[u] for u in uids]
        done = [seen.finished[u][0] - make.applied[u] for u in uids]
        exact = sum(
            seen.finished[u][1].get("phase") == "succeeded"
            and seen.finished[u][1].get("itemsSucceeded") == args.items
            for u in uids
        )
        span_first = max(seen.first_job[u] for u in uids) - t0
        span_done = max(seen.finished[u][0] for u in uids) - t0
        print(f"\n=== 1. burst: {n} Runs of {args.items} echo items, {CREATORS} creating threads ===")
        print(f"baseline: {n} bare Jobs created in {created_jobs:.1f}s ({n / created_jobs:.0f}/s)")
        print(
            f"baseline: apply -> Job complete   {spread(base_done)}; "
            f"all complete {base_span:.1f}s after the first apply"
        )
        print(f"Runs:     {n} Runs created in {created_runs:.1f}s ({n / created_runs:.0f}/s)")
        print(f"Runs:     apply -> first Job      {spread(first)}")
        print(
            f"Runs:     last first Job {max(seen.first_job[u] for u in uids) - last_apply:.2f}s "
            "after the last apply; "
            f"{n / span_first:.0f} runs/s through planning, identity, shards and Jobs"
        )
        print(
            f"Runs:     apply -> finished       {spread(done)}; "
            f"all finished {span_done:.1f}s after the first apply"
        )
        print(f"Runs:     succeeded with exact counts: {exact}/{n}")
        print(
            f"ratio Runs/baseline: all finished {span_done / base_span:.2f}; "
            f"p50 apply -> done {statistics.median(done) / statistics.median(base_done):.2f}"
        )
        print(
            f"operator CPU {cpu:.1f}s ({cpu / n * 1000:.1f} ms per Run); "
            f"RSS {proc_rss_mib(operator.pid):.0f} MiB"
        )
        print("API requests per Run (every client):", json.dumps(per(requests, n)))

        # -- 2. steady -----------------------------------------------------------------------
        if args.steady_seconds > 0 and args.rate > 0:
            count = int(args.rate * args.steady_seconds)
            uids = make.runs([run_manifest(f"steady-{i}", args.items) for i in range(count)], rate=args.rate)
            wait_all("first Jobs", lambda: sum(u in seen.first_job for u in uids), count, args.timeout)
            wait_all("Runs finished", lambda: sum(u in seen.finished for u in uids), count, args.timeout)
            first = [seen.first_job[u] - make.applied[u] for u in uids]
            print(f"\n=== 2. steady: {args.rate:g} Runs/s for {args.steady_seconds:g}s ({count} Runs) ===")
            print(f"Runs:     apply -> first Job      {spread(first)}")

        # -- 3. idle -------------------------------------------------------------------------
        have = len(seen.finished)
        if args.finished > have:
            extra = args.finished - have
            uids = make.runs([run_manifest(f"more-{i}", args.items) for i in range(extra)])
            wait_all("Runs finished", lambda: sum(u in seen.finished for u in uids), extra, args.timeout)
        if args.running:
            provider = ProviderProcess(latency=3000)
            hold = {"provider": "hold", "http": {"url": f"{provider.base}/items", "timeoutSeconds": 3600}}
            uids = make.runs([run_manifest(f"running-{i}", args.items, hold) for i in range(args.running)])
            wait_all("first Jobs", lambda: sum(u in seen.first_job for u in uids), args.running, args.timeout)
            time.sleep(15)  # pods started, workers calling, the first status writes done
        finished = len(seen.finished)
        cpu0 = proc_cpu_seconds(operator.pid)
        before = apiserver_requests_all(cp)
        time.sleep(args.idle_seconds)
        requests = apiserver_requests_all(cp) - before
        cpu = proc_cpu_seconds(operator.pid) - cpu0
        total = sum(c for (verb, _), c in requests.items() if verb != "WATCH")
        print(f"\n=== 3. idle: {finished} finished Runs + {args.running} running, {args.idle_seconds:g}s ===")
        print(
            f"operator: RSS {proc_rss_mib(operator.pid):.0f} MiB "
            f"(peak {proc_peak_rss_mib(operator.pid):.0f} MiB); "
            f"CPU {cpu:.2f}s in {args.idle_seconds:g}s ({cpu / args.idle_seconds * 100:.1f}% of a core)"
        )
        print(f"API requests while idle (every client): {total / args.idle_seconds:.2f}/s")
        print("  by verb and resource, per second:", json.dumps(per(requests, args.idle_seconds, 0.0)))
        seen._stop.set()
    finally:
        if provider is not None:
            provider.stop()
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
        cp.stop()
    return 0


def apiserver_requests_all(cp: ControlPlane) -> Counter[tuple[str, str]]:
    """apiserver_request_total by (verb, resource) (bench/run_vs_indexed_job.py reads a LocalCluster)."""

    class _Cluster:
        controlplane = cp

    return apiserver_requests(_Cluster())  # type: ignore[arg-type]


if __name__ == "__main__":
    sys.exit(main())
