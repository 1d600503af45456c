"""Entry point: `oxygen <group> <command>`; each group lives in a module of its own."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from oxygen import __version__
from oxygen.cli import (
    billing,
    cells,
    columns,
    dev,
    ingestions,
    observability,
    operator,
    providers,
    runs,
    table_runs,
    tables,
    worker,
    workflows,
)
from oxygen.cli.entry import MAX_JSON_NESTING
from oxygen.cli.kubeaccess import global_flags


def program_name() -> str:
    """`kubectl oxygen` when kubectl runs us as its plugin (kubectl-oxygen), else `oxygen`."""
    return "kubectl oxygen" if os.path.basename(sys.argv[0] or "") == "kubectl-oxygen" else "oxygen"


def build_parser() -> argparse.ArgumentParser:
    common = global_flags()
    parser = argparse.ArgumentParser(
        prog=program_name(),
        description="Execute work at scale as Kubernetes Runs.",
        parents=[common],
        epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 not found.",
    )
    parser.add_argument("--version", action="version", version=f"oxygen {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="<group>")
    runs.register(groups, common)
    table_runs.register(groups, common)
    ingestions.register(groups, common)
    workflows.register(groups, common)
    cells.register(groups, common)
    columns.register(groups, common)
    observability.register(groups, common)
    billing.register(groups, common)
    providers.register(groups, common)
    tables.register(groups, common)
    dev.register(groups)
    operator.register(groups)
    worker.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Deeply nested objects parse (entry.py says why), also when main() is called directly.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), MAX_JSON_NESTING))
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
