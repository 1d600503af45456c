"""`oxygen dev up` and `oxygen demo`: a real local cluster for developers.

Only the parsers live here. The local control plane (`oxygen.devcluster`) needs `cryptography`, which a
plain install of the operator image does not have, so it is imported when one of these commands runs,
never when `oxygen operator` or `oxygen worker` starts.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

DEVCLUSTER_EXTRA = "pip install 'oxygen-operator[devcluster]'"


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
    up.add_argument(
        "--postgres",
        action="store_true",
        help="also start PostgreSQL on loopback (the item store); its DSN goes to <dir>/postgres.dsn",
    )
    up.set_defaults(handler=up_command)

    demo = groups.add_parser("demo", help="run the demo on a fresh local control plane")
    demo.add_argument("--dir", type=Path, default=Path(".oxygen/demo"))
    demo.add_argument(
        "--run", type=Path, default=None, help="the Run manifest (default samples/enrich-leads.yaml)"
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the cluster and operator running until Ctrl-C"
    )
    demo.set_defaults(handler=demo_command)


def devcluster_missing() -> bool:
    """True (after saying what to install) when the local control plane's dependencies are absent."""
    if importlib.util.find_spec("cryptography") is not None:
        return False
    print(f"oxygen: the local cluster needs the devcluster extra: {DEVCLUSTER_EXTRA}", file=sys.stderr)
    return True


def up_command(args: argparse.Namespace) -> int:
    if devcluster_missing():
        return 1
    from oxygen.devcluster import commands

    return commands.up(args)


def demo_command(args: argparse.Namespace) -> int:
    if devcluster_missing():
        return 1
    from oxygen.devcluster import commands

    return commands.demo(args)
