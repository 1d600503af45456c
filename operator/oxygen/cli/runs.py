"""`oxygen runs list|get|watch`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from oxygen.api.run import TERMINAL_PHASES
from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_ERROR, EXIT_OK, NotFound
from oxygen.cli.progress import progress_line
from oxygen.cli.runview import print_run, print_runs
from oxygen.cli.shapes import run_shape

KINDS = ("column", "workflow", "ingestion")
PHASES = ("queued", "running", "completed", "succeeded", "failed", "paused", "canceled")


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    runs = groups.add_parser("runs", parents=[common], help="list, inspect and watch runs")
    sub = runs.add_subparsers(dest="command", metavar="<command>", required=True)

    list_ = sub.add_parser("list", parents=[common], help="list runs")
    list_.add_argument("--kind", choices=KINDS)
    list_.add_argument("--status", choices=PHASES, help="only runs in this phase")
    list_.set_defaults(handler=cluster_command(list_command))

    get = sub.add_parser("get", parents=[common], help="one run (by name or id)")
    get.add_argument("run", help="the run's name or id (uid)")
    get.set_defaults(handler=cluster_command(get_command))

    watch = sub.add_parser(
        "watch",
        parents=[common],
        help="a live progress bar until the run finishes",
        description="Exit code 0 when the run succeeded, 1 when it ended otherwise. With --json, "
        "one run shape per line for every change.",
    )
    watch.add_argument("run", help="the run's name or id (uid)")
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between polls (default 1)")
    watch.set_defaults(handler=cluster_command(watch_command))


def list_command(args: argparse.Namespace, session: Session) -> int:
    selected = [
        run
        for run in session.api.iter_objects("runs", session.api.scope())
        if _matches(run, args.kind, args.status)
    ]
    print_runs(selected, session.json, session.target.all_namespaces)
    return EXIT_OK


def _matches(run: dict[str, Any], kind: str | None, phase: str | None) -> bool:
    shape = run_shape(run)
    return (kind is None or shape["kind"] == kind) and (phase is None or shape["status"] == phase)


def get_command(args: argparse.Namespace, session: Session) -> int:
    print_run(session.api.find_run(args.run), session.json)
    return EXIT_OK


def watch_command(args: argparse.Namespace, session: Session) -> int:
    run = session.api.find_run(args.run)
    namespace, name = run["metadata"]["namespace"], run["metadata"]["name"]
    started = time.monotonic()
    tty = sys.stdout.isatty() and not session.json
    last = ""
    while True:
        shape = run_shape(run)
        if session.json:
            text = json.dumps(shape, ensure_ascii=False)
            if text != last:
                print(text, flush=True)
        else:
            text = progress_line(shape, time.monotonic() - started)
            if tty:
                # Redraw in place; \x1b[K clears what a longer previous line left behind.
                sys.stdout.write("\r" + text + "\x1b[K")
                sys.stdout.flush()
            elif _without_clock(text) != _without_clock(last):
                print(text, flush=True)
        last = text
        if shape["status"] in TERMINAL_PHASES:
            if tty:
                sys.stdout.write("\n")
            return EXIT_OK if shape["status"] == "succeeded" else EXIT_ERROR
        time.sleep(args.interval)
        fresh = session.api.get_run(namespace, name)
        if fresh is None:
            raise NotFound(f'run "{name}" was deleted from namespace "{namespace}"')
        run = fresh


def _without_clock(line: str) -> str:
    """The line minus its elapsed seconds: a non-TTY gets a line per change, not per tick."""
    return line.rsplit(" ", 1)[0]
