"""`oxygen table-runs …`: runs that fill a table's column, their items, providers and controls."""

from __future__ import annotations

import argparse
import sys

from oxygen.api.run import ITEM_STATUSES
from oxygen.cli import control, create, storeitems
from oxygen.cli.command import Session, cluster_command, positive
from oxygen.cli.errors import EXIT_OK
from oxygen.cli.items import ITEMS_PER_PAGE, item_pages
from oxygen.cli.output import JsonArrayWriter, StreamingTable, print_json, render_table, truncate
from oxygen.cli.runview import print_run, print_runs
from oxygen.cli.shapes import provider_rows, run_shape

ITEM_COLUMNS = ("ID", "ROW", "STATUS", "ATTEMPTS", "CREDITS", "ERROR")
PROVIDER_COLUMNS = ("PROVIDER", "SUCCEEDED", "FAILED", "CREDITS", "ATTEMPTS", "MEAN LATENCY")


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = groups.add_parser("table-runs", parents=[common], help="runs that fill a table's column")
    sub = group.add_subparsers(dest="command", metavar="<command>", required=True)

    new = sub.add_parser(
        "create",
        parents=[common],
        help="create a run from a manifest, or from rows and a provider",
        description="Either -f run.yaml, or --table, --column, --rows, --provider and --url/--builtin "
        "(the rows go into a ConfigMap named after the run).",
    )
    create.add_flags(new)
    new.set_defaults(handler=cluster_command(create_command))

    list_ = sub.add_parser("list", parents=[common], help="runs of a table (all table runs without --table)")
    list_.add_argument("--table", help="only runs of this table (spec.table)")
    list_.set_defaults(handler=cluster_command(list_command))

    get = sub.add_parser("get", parents=[common], help="one run (by name or id)")
    get.add_argument("run")
    get.set_defaults(handler=cluster_command(get_command))

    items = sub.add_parser("items", parents=[common], help="a run's items, streamed page by page")
    items.add_argument("run")
    items.add_argument("--status", choices=ITEM_STATUSES, help="only items with this status")
    items.add_argument("--limit", type=positive, help="at most this many items")
    items.add_argument(
        "--page-size",
        type=positive,
        help=f"shards fetched per request (default: about {ITEMS_PER_PAGE} items' worth); for a run "
        f"whose items are in the item store, rows per query (default {storeitems.ROWS_PER_PAGE})",
    )
    items.set_defaults(handler=cluster_command(items_command))

    summary = sub.add_parser(
        "provider-summary", parents=[common], help="per-provider items, credits, latency"
    )
    summary.add_argument("run")
    summary.set_defaults(handler=cluster_command(provider_summary_command))

    control.add_commands(sub, common, ("pause", "resume", "cancel", "retry-failed"))


def create_command(args: argparse.Namespace, session: Session) -> int:
    created = create.create(args, session.api)
    if session.json:
        shapes = [run_shape(r) for r in created]
        print_json(shapes[0] if len(shapes) == 1 else shapes)
        return EXIT_OK
    print_runs(created, False, False)
    return EXIT_OK


def list_command(args: argparse.Namespace, session: Session) -> int:
    runs = [
        run
        for run in session.api.iter_objects("runs", session.api.scope())
        if (spec := run.get("spec") or {}).get("table") is not None
        and (args.table is None or spec.get("table") == args.table)
    ]
    print_runs(runs, session.json, session.target.all_namespaces)
    return EXIT_OK


def get_command(args: argparse.Namespace, session: Session) -> int:
    print_run(session.api.find_run(args.run), session.json)
    return EXIT_OK


def items_command(args: argparse.Namespace, session: Session) -> int:
    run = session.api.find_run(args.run)
    if storeitems.store_backed(session.api, run):
        pages = storeitems.item_pages(
            session.api,
            run,
            getattr(args, "item_store", None),
            status=args.status,
            limit=args.limit,
            page=args.page_size,
        )
    else:
        pages = item_pages(session.api, run, status=args.status, limit=args.limit, page=args.page_size)
    if session.json:
        with JsonArrayWriter() as out:
            for batch in pages:
                for item in batch:
                    out.write(item)
                out.flush()
        return EXIT_OK
    table = StreamingTable(ITEM_COLUMNS)
    for batch in pages:
        table.write(
            [
                (
                    i["id"],
                    i["row_id"],
                    i["status"],
                    i["attempt_count"],
                    i["credits_used"],
                    truncate(i["error"]),
                )
                for i in batch
            ]
        )
    if table.empty:
        print("No items found.", file=sys.stderr)
    return EXIT_OK


def provider_summary_command(args: argparse.Namespace, session: Session) -> int:
    rows = provider_rows(session.api.find_run(args.run))
    if session.json:
        print_json(rows)
        return EXIT_OK
    sys.stdout.write(
        render_table(
            PROVIDER_COLUMNS,
            [
                (
                    r["provider"],
                    r["items_succeeded"],
                    r["items_failed"],
                    r["credits_used"],
                    r["attempts"],
                    None if r["mean_latency_seconds"] is None else f"{r['mean_latency_seconds']:.3f}s",
                )
                for r in rows
            ],
        )
    )
    return EXIT_OK
