"""`oxygen demo`: bring up the local control plane and execute a sample workload on it."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from oxygen.devcluster import LocalCluster
from oxygen.devcluster.wait import wait_for

SAMPLE_JOB = """
apiVersion: batch/v1
kind: Job
metadata: {name: hello, namespace: default}
spec:
  completions: 3
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: hello
        image: local
        command: [sh, -c, 'echo "hello from completion $JOB_COMPLETION_INDEX"']
"""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = groups.add_parser("demo", help="run the demo on a fresh local control plane")
    demo.add_argument("--dir", type=Path, default=Path(".oxygen/demo"))
    demo.add_argument("--keep", action="store_true", help="keep the cluster running until Ctrl-C")
    demo.set_defaults(handler=run)


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    say("starting etcd, kube-apiserver, kube-controller-manager and the local node agent")
    with LocalCluster(workdir=args.dir.resolve()) as cluster:
        cp = cluster.controlplane
        say(f"control plane ready in {time.monotonic() - started:.1f}s at {cp.server}")
        say(f"kubeconfig: {cluster.kubeconfig}")
        print(cp.kubectl("version").stdout, end="")
        say("applying a sample Indexed Job (3 completions, 2 at a time)")
        cp.kubectl("apply", "-f", "-", input=SAMPLE_JOB)
        t0 = time.monotonic()
        wait_for(
            lambda: (
                cp.kubectl(
                    "get",
                    "job",
                    "hello",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type=='Complete')].status}",
                    check=False,
                ).stdout
                == "True"
            ),
            timeout=120,
            what="Job hello to complete",
        )
        say(f"Job complete in {time.monotonic() - t0:.1f}s")
        print(cp.kubectl("get", "jobs,pods", "-o", "wide").stdout, end="")
        if args.keep:
            say(f"cluster stays up; export KUBECONFIG={cluster.kubeconfig}; Ctrl-C to stop")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
    say("stopped; no process left behind")
    return 0


if __name__ == "__main__":
    sys.exit(run(argparse.Namespace(dir=Path(".oxygen/demo"), keep=False)))
