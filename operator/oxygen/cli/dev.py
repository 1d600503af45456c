"""`oxygen dev …` and `oxygen demo`: a real local cluster for developers."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from oxygen.devcluster import LocalCluster


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dev = groups.add_parser("dev", help="a local control plane for development")
    sub = dev.add_subparsers(dest="command", metavar="<command>")
    up = sub.add_parser("up", help="start etcd, kube-apiserver, kube-controller-manager and a node agent")
    up.add_argument(
        "--dir",
        type=Path,
        default=Path(".oxygen/cluster"),
        help="where the kubeconfig, certificates and logs go (default .oxygen/cluster)",
    )
    up.set_defaults(handler=up_command)

    from oxygen.cli import demo

    demo.register(groups)


def up_command(args: argparse.Namespace) -> int:
    cluster = LocalCluster(workdir=args.dir.resolve())
    cluster.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"control plane up: {cluster.controlplane.server}", file=sys.stderr)
    print(f"  export KUBECONFIG={cluster.kubeconfig}", file=sys.stderr)
    print(
        f"  logs: {cluster.controlplane.workdir}/*.log; pod logs: {cluster.workdir}/node/pods/",
        file=sys.stderr,
    )
    print("Ctrl-C stops it and leaves no process behind.", file=sys.stderr)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
    return 0
