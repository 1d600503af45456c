"""Benchmark: a Run's throughput against a provider with a fixed latency, versus a bare aiohttp client.

    .venv/bin/python bench/throughput.py [--items 20000] [--latency 0.1 0.02] [--parallelism 8]
                                         [--concurrency 8 32 128]

Per latency and per concurrency C, in one run on a fresh local control plane, against the same
loopback provider (tests/support/loopback.py, its own process, answering after `latency` seconds):
(a) a Run of N items with parallelism P (P shards at once, N/P items each) and concurrency C;
(b) the baseline a user would write instead: one aiohttp client with PxC requests in flight
(bench/baseline_client.py), no status. Printed: items/s of both end to end (create → phase; the
client's start → end) and while calling (the provider's first call → last answer), their ratios,
CPU seconds of the workers (all their processes, start-up included) and of the baseline client, and
RunShard status writes per shard (from kube-apiserver's /metrics). The machine is shared and noisy:
compare ratios within one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO))

from bench.run_vs_indexed_job import apiserver_requests, rows_csv  # noqa: E402
from oxygen.devcluster import LocalCluster  # noqa: E402
from oxygen.devcluster.processes import die_with_parent  # noqa: E402
from oxygen.devcluster.wait import wait_for  # noqa: E402

NS = "bench"
TERMINAL = ("succeeded", "completed", "failed", "canceled")


def children_cpu() -> float:
    """CPU seconds of this process's reaped children: the node agent (a thread here) reaps the workers."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ProviderProcess:
    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.loopback", "--latency", str(latency)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'operator'}"},
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline().split()[1])
        self.base = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.base}/stats") as reply:
            result: dict[str, Any] = json.load(reply)
            return result

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.base}/reset", method="POST")).read()

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=10)


def baseline(provider: ProviderProcess, items: int, in_flight: int) -> dict[str, Any]:
    provider.reset()
    cpu0 = children_cpu()
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "baseline_client.py"),
            "--url",
            f"{provider.base}/items",
            "--items",
            str(items),
            "--in-flight",
            str(in_flight),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    stats = provider.stats()
    result["cpu"] = children_cpu() - cpu0
    result["calling"] = stats["last"] - stats["first"]
    result["peak"] = stats["peak"]
    return result


def as_run(
    cluster: LocalCluster,
    custom: Any,
    provider: ProviderProcess,
    name: str,
    items: int,
    parallelism: int,
    concurrency: int,
) -> dict[str, Any]:
    provider.reset()
    batch = math.ceil(items / parallelism)
    before = apiserver_requests(cluster)
    cpu0 = children_cpu()
    t0, created_at = time.monotonic(), time.time()
    custom.create_namespaced_custom_object(
        "oxygen.dev",
        "v1alpha1",
        NS,
        "runs",
        {
            "apiVersion": "oxygen.dev/v1alpha1",
            "kind": "Run",
            "metadata": {"name": name},
            "spec": {
                "itemsFrom": {"configMapKeyRef": {"name": f"rows-{items}", "key": "rows.csv"}},
                "producer": {
                    "provider": "loopback",
                    "concurrency": concurrency,
                    "http": {"url": f"{provider.base}/items", "timeoutSeconds": 30},
                },
                "batchSize": batch,
                "parallelism": parallelism,
            },
        },
    )

    def finished() -> dict[str, Any] | None:
        run = custom.get_namespaced_custom_object("oxygen.dev", "v1alpha1", NS, "runs", name)
        status: dict[str, Any] = run.get("status") or {}
        return status if status.get("phase") in TERMINAL else None

    status = wait_for(finished, timeout=3600, interval=0.2, what=f"run {name}")
    wall, done_at = time.monotonic() - t0, time.time()
    # The last workers are reaped a moment after the phase flips: wait for their pods to be gone.
    core = client.CoreV1Api(custom.api_client)
    wait_for(
        lambda: all(
            p.status.phase in ("Succeeded", "Failed")
            for p in core.list_namespaced_pod(NS, label_selector=f"oxygen.dev/run={name}").items
        ),
        timeout=60,
        what="the workers to exit",
    )
    time.sleep(0.5)
    delta = apiserver_requests(cluster) - before
    stats = provider.stats()
    shards = math.ceil(items / batch)
    return {
        "phase": status["phase"],
        "succeeded": status.get("itemsSucceeded", 0),
        "seconds": wall,
        "calling": stats["last"] - stats["first"],
        # Seconds before the first call (shards, Jobs, pods start) and after the last answer (the
        # final status writes, pods exit, the run's phase).
        "lead": stats["first"] - created_at,
        "tail": done_at - stats["last"],
        "calls": stats["calls"],
        "peak": stats["peak"],
        "cpu": children_cpu() - cpu0,
        "shards": shards,
        "writes_per_shard": delta[("PATCH", "runshards/status")] / shards,
    }


def start_operator(cluster: LocalCluster) -> subprocess.Popen[bytes]:
    log = (cluster.workdir / "operator.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "oxygen", "operator", "--log-level", "WARNING"],
        env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )


def report(latency: float, items: int, p: int, c: int, base: dict[str, Any], run: dict[str, Any]) -> None:
    base_rate, run_rate = items / base["seconds"], items / run["seconds"]
    base_calling, run_calling = items / base["calling"], items / run["calling"]
    print(
        f"latency {latency * 1000:.0f} ms  PxC = {p}x{c} = {p * c:<5} "
        f"baseline {base_rate:7.0f}/s  Run {run_rate:7.0f}/s  ratio {run_rate / base_rate:.2f}  | "
        f"calling: baseline {base_calling:7.0f}/s  Run {run_calling:7.0f}/s  "
        f"ratio {run_calling / base_calling:.2f}  | "
        f"CPU s: workers {run['cpu']:.1f} baseline {base['cpu']:.1f}  | "
        f"status writes/shard {run['writes_per_shard']:.1f} "
        f"({run['shards']} shards, {run['seconds']:.1f} s: {run['lead']:.1f} s before the first call, "
        f"{run['tail']:.1f} s after the last)  | "
        f"peak in flight {run['peak']}/{base['peak']}  {run['phase']} {run['succeeded']}/{items} "
        f"({run['calls']} calls)",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--latency", type=float, nargs="+", default=[0.1, 0.02])
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8, 32, 128])
    args = parser.parse_args()

    with LocalCluster() as cluster:
        cluster.controlplane.kubectl("apply", "-f", str(REPO / "crds"))
        cluster.controlplane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        cluster.controlplane.kubectl("create", "namespace", NS)
        wait_for(
            lambda: (
                cluster.controlplane.kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0
            ),
            timeout=30,
        )
        cluster.controlplane.kubectl(
            "create",
            "configmap",
            f"rows-{args.items}",
            "-n",
            NS,
            "--from-file=rows.csv=/dev/stdin",
            input=rows_csv(args.items),
        )
        operator = start_operator(cluster)
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        custom = client.CustomObjectsApi(api)
        try:
            time.sleep(3)  # the operator's watches start
            print(f"{args.items} items, parallelism {args.parallelism}", flush=True)
            for latency in args.latency:
                provider = ProviderProcess(latency)
                try:
                    for c in args.concurrency:
                        base = baseline(provider, args.items, args.parallelism * c)
                        name = f"tp-{int(latency * 1000)}ms-c{c}"
                        run = as_run(cluster, custom, provider, name, args.items, args.parallelism, c)
                        report(latency, args.items, args.parallelism, c, base, run)
                finally:
                    provider.stop()
        finally:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(timeout=30)
            api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
