"""The `oxygen` executable. `oxygen worker` starts in every shard pod, a hundred times in a million-item
run: it loads the worker alone (0.2 s less per pod than the whole command line, which imports every
group's modules), everything else loads oxygen.cli.main."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

# Levels of JSON nesting every command must parse: the API server's limit (10,000) and a margin.
MAX_JSON_NESTING = 25_000


def main(argv: Sequence[str] | None = None) -> int:
    # The API server accepts objects nested up to 10,000 levels deep (measured: a Run's inputs up to
    # 9,996). kopf and the kubernetes client parse them with the json module, whose parser counts
    # each level against the recursion limit (default 1,000): below this, one deep Run stopped the
    # whole operator (issue 19), and would stop a worker or a CLI listing the runs of its namespace.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), MAX_JSON_NESTING))
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["worker"]:
        return worker_main(args)
    from oxygen.cli.main import main as full_main

    return full_main(args)


def worker_main(args: list[str]) -> int:
    from oxygen.cli import worker

    parser = argparse.ArgumentParser(prog="oxygen")
    worker.register(parser.add_subparsers(dest="group", metavar="<group>"))
    parsed = parser.parse_args(args)
    try:
        return int(parsed.handler(parsed) or 0)
    except KeyboardInterrupt:
        return 130
