"""Entry point: `oxygen <group> <command>`; each group lives in a module of its own."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from oxygen import __version__
from oxygen.cli import dev, operator, worker


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oxygen", description="Execute work at scale as Kubernetes Runs.")
    parser.add_argument("--version", action="version", version=f"oxygen {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="<group>")
    dev.register(groups)
    operator.register(groups)
    worker.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
