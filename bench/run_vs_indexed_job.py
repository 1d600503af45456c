"""Benchmark: N echo items as a Run versus a bare Indexed Job doing the same work without item status.

    .venv/bin/python bench/run_vs_indexed_job.py [--items 10000 100000] [--batch-size 1000]

Both execute on the same fresh local control plane, one after the other, in this run, and the figures
are printed as ratios against the Indexed Job baseline (this machine is shared and noisy: compare
ratios, not seconds). API requests come from kube-apiserver's own /metrics; operator CPU seconds and
peak RSS from /proc.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from oxygen.devcluster import LocalCluster  # noqa: E402
from oxygen.devcluster.processes import die_with_parent  # noqa: E402
from oxygen.devcluster.wait import wait_for  # noqa: E402

NS = "bench"
BASELINE_WORKER = REPO / "bench" / "indexed_worker.py"
_METRIC = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>[0-9.e+]+)$")


def apiserver_requests(cluster: LocalCluster) -> Counter[tuple[str, str]]:
    """(verb, resource[/subresource]) → requests so far, from kube-apiserver's /metrics."""
    text = cluster.controlplane.kubectl("get", "--raw", "/metrics").stdout
    out: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        m = _METRIC.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        out[(labels.get("verb", ""), resource)] += int(float(m.group("value")))
    return out


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def proc_peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rows_csv(n: int) -> str:
    # CSV keeps 100,000 rows under the 1 MiB ConfigMap limit.
    return "i\n" + "\n".join(str(i) for i in range(n)) + "\n"


def interesting(delta: Counter[tuple[str, str]]) -> dict[str, int]:
    keep = ("runs", "runshards", "jobs", "pods", "events", "configmaps")
    out = {
        f"{verb} {res}": n
        for (verb, res), n in sorted(delta.items())
        if n and res.split("/")[0] in keep and verb not in ("WATCH",)
    }
    return out


def run_as_run(cluster: LocalCluster, custom: Any, n: int, batch: int, parallelism: int) -> dict[str, Any]:
    name = f"bench-{n}"
    before = apiserver_requests(cluster)
    t0 = time.monotonic()
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
                "itemsFrom": {"configMapKeyRef": {"name": f"rows-{n}", "key": "rows.csv"}},
                "producer": {"provider": "echo", "builtin": "echo"},
                "batchSize": batch,
                "parallelism": parallelism,
            },
        },
    )
    status = wait_for(
        lambda: (
            (
                s := custom.get_namespaced_custom_object("oxygen.dev", "v1alpha1", NS, "runs", name).get(
                    "status", {}
                )
            ).get("phase")
            in ("succeeded", "completed", "failed")
            and s
        ),
        timeout=3600,
        interval=0.5,
        what=f"run {name}",
    )
    wall = time.monotonic() - t0
    delta = apiserver_requests(cluster) - before
    size = len(json.dumps(custom.get_namespaced_custom_object("oxygen.dev", "v1alpha1", NS, "runs", name)))
    return {
        "wall": wall,
        "phase": status["phase"],
        "succeeded": status["itemsSucceeded"],
        "delta": delta,
        "run_bytes": size,
        "status_writes": delta[("PATCH", "runs/status")],
    }


def run_as_indexed_job(
    cluster: LocalCluster, batch_api: Any, n: int, batch: int, parallelism: int
) -> dict[str, Any]:
    name = f"baseline-{n}"
    shards = (n + batch - 1) // batch
    before = apiserver_requests(cluster)
    t0 = time.monotonic()
    batch_api.create_namespaced_job(
        NS,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "completions": shards,
                "parallelism": parallelism,
                "completionMode": "Indexed",
                "backoffLimit": 3,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "serviceAccountName": "bench-baseline",
                        "containers": [
                            {
                                "name": "w",
                                "image": "local",
                                "command": ["python", str(BASELINE_WORKER)],
                                "env": [
                                    {"name": "ROWS_CONFIGMAP", "value": f"rows-{n}"},
                                    {"name": "BATCH", "value": str(batch)},
                                    {"name": "NAMESPACE", "value": NS},
                                ],
                            }
                        ],
                    }
                },
            },
        },
    )

    def done() -> bool:
        conds = batch_api.read_namespaced_job_status(name, NS).status.conditions or []
        return any(c.type in ("Complete", "Failed") and c.status == "True" for c in conds)

    wait_for(done, timeout=3600, interval=0.5, what=f"job {name}")
    wall = time.monotonic() - t0
    delta = apiserver_requests(cluster) - before
    return {
        "wall": wall,
        "delta": delta,
        "succeeded": batch_api.read_namespaced_job_status(name, NS).status.succeeded,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--parallelism", type=int, default=4)
    args = parser.parse_args()

    with LocalCluster() as cluster:
        kc = cluster.kubeconfig
        cluster.controlplane.kubectl("apply", "-f", str(REPO / "crds"))
        cluster.controlplane.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        cluster.controlplane.kubectl("create", "namespace", NS)
        wait_for(
            lambda: (
                cluster.controlplane.kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0
            ),
            timeout=30,
        )
        # The baseline's pods read their rows as the Run's workers read their shards: narrowly.
        for manifest in (
            ["create", "serviceaccount", "bench-baseline"],
            ["create", "role", "read-rows", "--verb=get", "--resource=configmaps"],
            [
                "create",
                "rolebinding",
                "read-rows",
                "--role=read-rows",
                f"--serviceaccount={NS}:bench-baseline",
            ],
        ):
            cluster.controlplane.kubectl(*manifest, "-n", NS)
        log = (cluster.workdir / "operator.log").open("ab")
        operator = subprocess.Popen(
            [sys.executable, "-m", "oxygen", "operator", "--log-level", "WARNING"],
            env={**os.environ, "KUBECONFIG": str(kc)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        api = config.new_client_from_config(config_file=str(kc))
        custom, batch_api = client.CustomObjectsApi(api), client.BatchV1Api(api)
        try:
            time.sleep(3)  # the operator's watches start
            for n in args.items:
                cluster.controlplane.kubectl(
                    "create",
                    "configmap",
                    f"rows-{n}",
                    "-n",
                    NS,
                    "--from-file=rows.csv=/dev/stdin",
                    input=rows_csv(n),
                )
                cpu0 = proc_cpu_seconds(operator.pid)
                base = run_as_indexed_job(cluster, batch_api, n, args.batch_size, args.parallelism)
                run = run_as_run(cluster, custom, n, args.batch_size, args.parallelism)
                cpu = proc_cpu_seconds(operator.pid) - cpu0
                shards = (n + args.batch_size - 1) // args.batch_size
                print(
                    f"\n=== {n} items, batchSize {args.batch_size}, parallelism {args.parallelism} "
                    f"({shards} shards) ==="
                )
                print(f"baseline Indexed Job: {base['wall']:.1f}s ({base['succeeded']} completions)")
                print(f"Run:                  {run['wall']:.1f}s ({run['phase']}, {run['succeeded']} items)")
                print(f"ratio Run/baseline:   {run['wall'] / base['wall']:.2f}")
                print(
                    f"Run status writes:    {run['status_writes']} "
                    f"({run['status_writes'] / shards:.2f} per shard, "
                    f"{run['status_writes'] / n:.4f} per item)"
                )
                print(f"Run object size:      {run['run_bytes']} bytes")
                print(f"operator CPU:         {cpu:.1f}s; peak RSS {proc_peak_rss_mib(operator.pid):.0f} MiB")
                print("API requests (Run):      ", json.dumps(interesting(run["delta"])))
                print("API requests (baseline): ", json.dumps(interesting(base["delta"])))
        finally:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(timeout=30)
            api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
