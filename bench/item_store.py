"""Benchmark: N echo items from a PostgreSQL table as a Run with the item store, against a bare Indexed
Job whose pods read a key range of the same table and write their results back with COPY.

    .venv/bin/python bench/item_store.py [--items 1000000] [--batch-size 10000] [--parallelism 4]
    .venv/bin/python bench/item_store.py --compare-etcd            # 100,000 items, store vs no store

One fresh local control plane and one local PostgreSQL (`oxygen dev up --postgres`'s), in one run (the
machine is shared and noisy: compare ratios, not seconds). Figures: wall times and their ratio; etcd's
database size before and after (etcd's own etcd_mvcc_db_total_size_in_bytes, and the part in use); the
Run and the largest RunShard as stored; API requests by verb and resource (kube-apiserver's
apiserver_request_total); the operator's peak RSS and CPU seconds (/proc; the operator is restarted for
each scenario, so the peak is that scenario's); rows written per second (items / wall time).

`--compare-etcd`: 100,000 items from the same kind of table as (a) a Run with the item store and (b) a
Run without one (the items in RunShards, etcd), side by side.
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
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))
sys.path.insert(0, str(REPO / "bench"))

from run_vs_indexed_job import (  # noqa: E402
    apiserver_requests,
    proc_cpu_seconds,
    proc_peak_rss_mib,
)

from oxygen.devcluster import LocalCluster  # noqa: E402
from oxygen.devcluster.processes import die_with_parent  # noqa: E402
from oxygen.devcluster.wait import wait_for  # noqa: E402

NS = "bench"
GROUP, VERSION = "oxygen.dev", "v1alpha1"
BASELINE_WORKER = REPO / "bench" / "item_store_worker.py"
KEEP = ("runs", "runshards", "jobs", "pods", "events", "secrets", "serviceaccounts", "roles", "rolebindings")


def etcd_url(cluster: LocalCluster) -> str:
    argv = cluster.controlplane._apiserver_argv
    return argv[argv.index("--etcd-servers") + 1].split(",")[0]


def etcd_sizes(url: str) -> tuple[int, int]:
    """(etcd_mvcc_db_total_size_in_bytes, etcd_mvcc_db_total_size_in_use_in_bytes) from etcd's /metrics."""
    text = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    values = {}
    for name in ("etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes"):
        m = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
        values[name] = int(float(m.group(1))) if m else 0
    return values["etcd_mvcc_db_total_size_in_bytes"], values["etcd_mvcc_db_total_size_in_use_in_bytes"]


def by_verb(delta: Counter[tuple[str, str]]) -> dict[str, int]:
    return {
        f"{verb} {res}": n
        for (verb, res), n in sorted(delta.items())
        if n > 0 and res.split("/")[0] in KEEP and verb != "WATCH"
    }


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Operator:
    """`oxygen operator` as a child (restarted per scenario: its peak RSS is that scenario's)."""

    def __init__(self, cluster: LocalCluster, item_store: str | None) -> None:
        log = (cluster.workdir / "operator.log").open("ab")
        extra = ["--item-store", item_store] if item_store else []
        env = {k: v for k, v in os.environ.items() if k != "OXYGEN_ITEM_STORE"}
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "oxygen", "operator", "--log-level", "WARNING", *extra],
            env={**env, "KUBECONFIG": str(cluster.kubeconfig), "OXYGEN_METRICS_PORT": "0"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        time.sleep(4)  # its watches start

    def stop(self) -> None:
        os.killpg(self.popen.pid, signal.SIGTERM)
        self.popen.wait(timeout=60)


def make_table(dsn: str, table: str, n: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"drop table if exists {table}")
        conn.execute(f"create table {table} (id bigint primary key, i bigint not null)")
        conn.execute(f"insert into {table} select g, g from generate_series(0, {n - 1}) g")
        conn.execute(f"analyze {table}")


def run_as_run(
    cluster: LocalCluster,
    custom: Any,
    name: str,
    table: str,
    n: int,
    batch: int,
    parallelism: int,
    concurrency: int,
) -> dict[str, Any]:
    url = etcd_url(cluster)
    before, etcd0 = apiserver_requests(cluster), etcd_sizes(url)
    t0 = time.monotonic()
    source = {
        "secretRef": {"name": "items-db", "key": "dsn"},
        "query": f"select id as row_id, i from {table}",
    }
    custom.create_namespaced_custom_object(
        GROUP,
        VERSION,
        NS,
        "runs",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Run",
            "metadata": {"name": name},
            "spec": {
                "itemsFrom": {"postgres": source},
                "producer": {"provider": "echo", "builtin": "echo", "concurrency": concurrency},
                "batchSize": batch,
                "parallelism": parallelism,
            },
        },
    )
    status = wait_for(
        lambda: (
            (
                s := custom.get_namespaced_custom_object(GROUP, VERSION, NS, "runs", name).get("status", {})
            ).get("phase")
            in ("succeeded", "completed", "failed")
            and s
        ),
        timeout=7200,
        interval=0.5,
        what=f"run {name}",
    )
    wall = time.monotonic() - t0
    delta = apiserver_requests(cluster) - before
    etcd1 = etcd_sizes(url)
    run = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "runs", name)
    largest, shards, token = 0, 0, None
    while True:
        page = custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            NS,
            "runshards",
            label_selector=f"oxygen.dev/run-uid={run['metadata']['uid']}",
            limit=50,
            **({"_continue": token} if token else {}),
        )
        for shard in page["items"]:
            shards += 1
            largest = max(largest, len(json.dumps(shard)))
        token = page["metadata"].get("continue")
        if not token:
            break
    return {
        "wall": wall,
        "phase": status["phase"],
        "succeeded": status.get("itemsSucceeded", 0),
        "message": status.get("message"),
        "delta": delta,
        "run_bytes": len(json.dumps(run)),
        "largest_shard": largest,
        "shards": shards,
        "etcd": (etcd0, etcd1),
        "uid": run["metadata"]["uid"],
        "timeline": pod_timeline(
            client.CoreV1Api(custom.api_client), f"oxygen.dev/run-uid={run['metadata']['uid']}", parallelism
        ),
    }


def run_as_indexed_job(
    cluster: LocalCluster, batch_api: Any, dsn: str, table: str, n: int, batch: int, parallelism: int
) -> dict[str, Any]:
    name, results = f"baseline-{n}", f"{table}_results"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"drop table if exists {results}")
        conn.execute(
            f"create table {results} (id bigint, status text, attempt_count int, outputs jsonb,"
            " finished_at timestamptz)"
        )
    url = etcd_url(cluster)
    before, etcd0 = apiserver_requests(cluster), etcd_sizes(url)
    t0 = time.monotonic()
    batch_api.create_namespaced_job(
        NS,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "completions": (n + batch - 1) // batch,
                "parallelism": parallelism,
                "completionMode": "Indexed",
                "backoffLimit": 3,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "containers": [
                            {
                                "name": "w",
                                "image": "local",
                                "command": ["python", str(BASELINE_WORKER)],
                                "env": [
                                    {"name": "DSN", "value": dsn},
                                    {"name": "TABLE", "value": table},
                                    {"name": "RESULTS", "value": results},
                                    {"name": "BATCH", "value": str(batch)},
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

    wait_for(done, timeout=7200, interval=0.5, what=f"job {name}")
    wall = time.monotonic() - t0
    delta = apiserver_requests(cluster) - before
    with psycopg.connect(dsn) as conn:
        row = conn.execute(f"select count(*) from {results} where status = 'succeeded'").fetchone()
    timeline = pod_timeline(
        client.CoreV1Api(batch_api.api_client), f"batch.kubernetes.io/job-name={name}", parallelism
    )
    return {
        "wall": wall,
        "delta": delta,
        "rows": int(row[0]) if row else 0,
        "etcd": (etcd0, etcd_sizes(url)),
        "timeline": timeline,
    }


def stored_rows(dsn: str, uid: str) -> tuple[int, int]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select count(*), count(*) filter (where status = 'succeeded' and attempt_count = 1)"
            " from oxygen.items where run_uid = %s",
            (uid,),
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def pod_timeline(core: Any, selector: str, parallelism: int) -> str:
    """Where the wall time of a set of pods went: the mean time from a pod's creation to its container's
    start, its container's run, and the share of the wall time with fewer than `parallelism` pods
    running (one-second resolution: Kubernetes' timestamps)."""
    spans: list[tuple[float, float, float]] = []
    for pod in core.list_namespaced_pod(NS, label_selector=selector).items:
        statuses = pod.status.container_statuses or []
        done = statuses[0].state.terminated if statuses and statuses[0].state else None
        if done is None or done.started_at is None or done.finished_at is None:
            continue
        spans.append(
            (
                pod.metadata.creation_timestamp.timestamp(),
                done.started_at.timestamp(),
                done.finished_at.timestamp(),
            )
        )
    if not spans:
        return "no finished pods"
    first, last = min(s[0] for s in spans), max(s[2] for s in spans)
    under = sum(
        1 for t in range(int(first), int(last)) if sum(1 for s in spans if s[1] <= t < s[2]) < parallelism
    )
    create_to_start = sum(s[1] - s[0] for s in spans) / len(spans)
    running = sum(s[2] - s[1] for s in spans) / len(spans)
    return (
        f"{len(spans)} pods: created -> container started {create_to_start:.1f} s, container ran"
        f" {running:.1f} s (mean); {under} of {int(last - first)} s with fewer than {parallelism} running"
    )


def print_run(label: str, r: dict[str, Any], n: int, cpu: float, rss: float) -> None:
    (size0, use0), (size1, use1) = r["etcd"]
    print(f"{label}: {r['wall']:.1f} s ({r['phase']}, {r['succeeded']} items, {r['shards']} shards)")
    if r["message"] and r["phase"] != "succeeded":
        print(f"  message: {r['message']}")
    print(
        f"  etcd db size: {mb(size0)} -> {mb(size1)} (+{mb(size1 - size0)}); in use {mb(use0)} -> {mb(use1)}"
    )
    print(f"  Run object: {r['run_bytes']} bytes; largest RunShard: {r['largest_shard']} bytes")
    print(f"  operator: {cpu:.1f} CPU s, peak RSS {rss:.0f} MiB")
    print(f"  rows written per second: {n / r['wall']:.0f}")
    print(f"  API requests: {json.dumps(by_verb(r['delta']))}")
    if r.get("timeline"):
        print(f"  pods: {r['timeline']}")


def scenario(
    cluster: LocalCluster,
    custom: Any,
    dsn: str,
    store: bool,
    name: str,
    table: str,
    n: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    operator = Operator(cluster, dsn if store else None)
    try:
        cpu0 = proc_cpu_seconds(operator.popen.pid)
        r = run_as_run(cluster, custom, name, table, n, args.batch_size, args.parallelism, args.concurrency)
        r["cpu"] = proc_cpu_seconds(operator.popen.pid) - cpu0
        r["rss"] = proc_peak_rss_mib(operator.popen.pid)
    finally:
        operator.stop()
    return r


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument(
        "--batch-size",
        type=int,
        help="items per shard (default 10,000; 2,000 with --compare-etcd: without a store a shard's "
        "status holds its items' results, under ~900 KiB)",
    )
    parser.add_argument("--parallelism", type=int, default=4)
    parser.add_argument(
        "--concurrency", type=int, default=4, help="the echo producer's items in flight per shard"
    )
    parser.add_argument(
        "--compare-etcd", action="store_true", help="100,000 items with and without the store"
    )
    args = parser.parse_args()
    args.batch_size = args.batch_size or (2_000 if args.compare_etcd else 10_000)

    with LocalCluster(postgres=True) as cluster:
        assert cluster.postgres is not None
        dsn = cluster.postgres.dsn
        kubectl = cluster.controlplane.kubectl
        kubectl("apply", "-f", str(REPO / "crds"))
        kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        kubectl("create", "namespace", NS)
        wait_for(lambda: kubectl("get", "sa", "default", "-n", NS, check=False).returncode == 0, timeout=30)
        kubectl("create", "secret", "generic", "items-db", f"--from-literal=dsn={dsn}", "-n", NS)
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        custom, batch_api = client.CustomObjectsApi(api), client.BatchV1Api(api)
        try:
            if args.compare_etcd:
                n = 100_000
                make_table(dsn, "items_cmp", n)
                with_store = scenario(cluster, custom, dsn, True, "with-store", "items_cmp", n, args)
                without = scenario(cluster, custom, dsn, False, "without-store", "items_cmp", n, args)
                shape = f"batchSize {args.batch_size}, parallelism {args.parallelism}"
                print(f"\n=== {n} items from PostgreSQL, {shape}: with and without the item store ===")
                print_run("with the item store   ", with_store, n, with_store["cpu"], with_store["rss"])
                rows = stored_rows(dsn, with_store["uid"])
                print(f"  rows in the store: {rows} (total, succeeded at attempt 1)")
                print_run("without an item store ", without, n, without["cpu"], without["rss"])
                return 0
            n = args.items
            make_table(dsn, "items_bench", n)
            base = run_as_indexed_job(
                cluster, batch_api, dsn, "items_bench", n, args.batch_size, args.parallelism
            )
            run = scenario(cluster, custom, dsn, True, "with-store", "items_bench", n, args)
            shards = (n + args.batch_size - 1) // args.batch_size
            shape = f"batchSize {args.batch_size}, parallelism {args.parallelism}"
            print(f"\n=== {n} items, {shape} ({shards} shards) ===")
            (b0, _), (b1, _) = base["etcd"]
            print(f"baseline Indexed Job: {base['wall']:.1f} s ({base['rows']} result rows COPYed back)")
            print(f"  etcd db size: {mb(b0)} -> {mb(b1)} (+{mb(b1 - b0)})")
            print(f"  rows written per second: {n / base['wall']:.0f}")
            print(f"  API requests: {json.dumps(by_verb(base['delta']))}")
            print(f"  pods: {base['timeline']}")
            print_run("Run with the item store", run, n, run["cpu"], run["rss"])
            print(f"  rows in the store: {stored_rows(dsn, run['uid'])} (total, succeeded at attempt 1)")
            print(f"ratio Run/baseline: {run['wall'] / base['wall']:.2f}")
        finally:
            api.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
