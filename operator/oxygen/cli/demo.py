"""`oxygen demo`: a fresh local control plane, the operator, and a sample Run executed to the end."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.binaries import REPO_ROOT
from oxygen.devcluster.processes import die_with_parent
from oxygen.devcluster.wait import wait_for

SAMPLE = REPO_ROOT / "samples" / "enrich-leads.yaml"


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = groups.add_parser("demo", help="run the demo on a fresh local control plane")
    demo.add_argument("--dir", type=Path, default=Path(".oxygen/demo"))
    demo.add_argument("--run", type=Path, default=SAMPLE, help="the Run manifest to execute")
    demo.add_argument(
        "--keep", action="store_true", help="keep the cluster and operator running until Ctrl-C"
    )
    demo.set_defaults(handler=run)


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    workdir = args.dir.resolve()
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
