"""The bodies of `oxygen dev up` and `oxygen demo` (their parsers are in `oxygen.cli.dev`, which imports
this module only when one of them runs: a plain install has no `cryptography`)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time

from oxygen.devcluster.binaries import REPO_ROOT
from oxygen.devcluster.cluster import LocalCluster
from oxygen.devcluster.processes import die_with_parent
from oxygen.devcluster.wait import wait_for


def up(args: argparse.Namespace) -> int:
    cluster = LocalCluster(workdir=args.dir.resolve(), postgres=getattr(args, "postgres", False))
    cluster.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"control plane up: {cluster.controlplane.server}", file=sys.stderr)
    print(f"  export KUBECONFIG={cluster.kubeconfig}", file=sys.stderr)
    print(
        f"  logs: {cluster.controlplane.workdir}/*.log; pod logs: {cluster.workdir}/node/pods/",
        file=sys.stderr,
    )
    if cluster.postgres is not None:
        print(f"  PostgreSQL (item store): DSN in {cluster.postgres_dsn_file}", file=sys.stderr)
        print(f'  oxygen operator --item-store "$(cat {cluster.postgres_dsn_file})"', file=sys.stderr)
    print("Ctrl-C stops it and leaves no process behind.", file=sys.stderr)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0


# -- oxygen demo: a fresh local control plane, the operator, and a sample Run executed to the end

SAMPLE = REPO_ROOT / "samples" / "enrich-leads.yaml"


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def demo(args: argparse.Namespace) -> int:
    started = time.monotonic()
    workdir = args.dir.resolve()
    if args.run is None:
        args.run = SAMPLE
    say("starting etcd, kube-apiserver, kube-controller-manager and the local node agent")
    with LocalCluster(workdir=workdir) as cluster:
        cp = cluster.controlplane
        say(f"control plane ready in {time.monotonic() - started:.1f}s at {cp.server}")
        say(f"kubeconfig: {cluster.kubeconfig}")
        cp.kubectl("apply", "-f", str(REPO_ROOT / "crds"))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        say("CRDs installed; starting the operator (log: operator.log)")
        log = (workdir / "operator.log").open("ab")
        operator = subprocess.Popen(
            [sys.executable, "-m", "oxygen", "operator"],
            env={**os.environ, "KUBECONFIG": str(cluster.kubeconfig)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        try:
            return _execute(cluster, args)
        finally:
            os.killpg(operator.pid, signal.SIGTERM)
            operator.wait(timeout=30)
            log.close()
            say("stopped; no process left behind")


def _execute(cluster: LocalCluster, args: argparse.Namespace) -> int:
    cp = cluster.controlplane
    say(f"kubectl apply -f {args.run}")
    print(cp.kubectl("apply", "-f", str(args.run)).stdout, end="")
    name = cp.kubectl("get", "-f", str(args.run), "-o", "jsonpath={.metadata.name}").stdout
    t0 = time.monotonic()
    phase = wait_for(
        lambda: (
            cp.kubectl("get", "run", name, "-o", "jsonpath={.status.phase}", check=False).stdout
            in ("succeeded", "completed", "failed", "canceled")
            and cp.kubectl("get", "run", name, "-o", "jsonpath={.status.phase}").stdout
        ),
        timeout=180,
        what=f"run {name} to finish",
    )
    say(f"run {name} {phase} in {time.monotonic() - t0:.1f}s")
    say("kubectl get runs")
    print(cp.kubectl("get", "runs").stdout, end="")
    say("kubectl get runshards,jobs")
    print(cp.kubectl("get", "runshards,jobs").stdout, end="")
    say(f"kubectl get events --field-selector involvedObject.name={name}")
    print(
        cp.kubectl(
            "get",
            "events",
            "--field-selector",
            f"involvedObject.name={name}",
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ).stdout,
        end="",
    )
    if args.keep:
        say(f"cluster stays up; export KUBECONFIG={cluster.kubeconfig}; Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0 if phase == "succeeded" else 1
