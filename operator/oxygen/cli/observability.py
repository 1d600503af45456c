"""`oxygen observability events [<run>]`: the Kubernetes Events recorded on runs."""

from __future__ import annotations

import argparse

from oxygen.api.common import GROUP
from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_OK
from oxygen.cli.output import age, print_listing
from oxygen.cli.shapes import event_shape

EVENT_COLUMNS = ("LAST SEEN", "TYPE", "REASON", "RUN", "COUNT", "MESSAGE")


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    obs = groups.add_parser("observability", parents=[common], help="what happened to runs")
    sub = obs.add_subparsers(dest="command", metavar="<command>", required=True)
    events = sub.add_parser("events", parents=[common], help="the Events of one run, or of every run")
    events.add_argument("run", nargs="?", help="the run's name or id (default: every run)")
    events.set_defaults(handler=cluster_command(events_command))


def events_command(args: argparse.Namespace, session: Session) -> int:
    api = session.api
    if args.run is not None:
        run = api.find_run(args.run)
        # By uid: an older run of the same name (deleted and recreated) keeps its own events.
        namespace: str | None = run["metadata"]["namespace"]
        selector = f"involvedObject.uid={run['metadata']['uid']}"
    else:
        namespace = api.scope()
        selector = "involvedObject.kind=Run"
    shapes = [
        event_shape(e)
        for e in api.iter_events(namespace, selector)
        if str((e.get("involvedObject") or {}).get("apiVersion", "")).startswith(f"{GROUP}/")
    ]
    shapes.sort(key=lambda e: (e["last_seen"] or "", e["first_seen"] or ""))
    print_listing(
        shapes,
        session.json,
        "events",
        EVENT_COLUMNS,
        lambda es: [
            (age(e["last_seen"]), e["type"], e["reason"], e["run"], e["count"], e["message"]) for e in es
        ],
    )
    return EXIT_OK
