"""`oxygen table-ingestions …`: ingest a provider's search results into a table, page by page.

An ingestion run is a Run of kind ingestion; its items are the pages, found as the provider returns a
next cursor, and each page's rows are its item's outputs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any, get_args

from oxygen.api.common import API_VERSION
from oxygen.api.run import RunMode
from oxygen.api.table import Table
from oxygen.cli import control
from oxygen.cli.command import Session, cluster_command, positive
from oxygen.cli.create import create_resource, default_name
from oxygen.cli.errors import EXIT_ERROR, EXIT_OK, CliError
from oxygen.cli.output import print_json, render_table
from oxygen.cli.runview import print_run
from oxygen.cli.shapes import run_shape
from oxygen.tables import ingest
from oxygen.tables.errors import TableError

KIND = "ingestion"


def ingestion_manifest(args: argparse.Namespace, name: str, namespace: str) -> dict[str, Any]:
    """The Run `create-tool-page` creates (only the flags given are set; the CRD defaults the rest)."""
    ingestion: dict[str, Any] = {"provider": args.provider, "url": args.url, "query": args.query}
    for flag, field in (("page_size", "pageSize"), ("max_pages", "maxPages")):
        if getattr(args, flag) is not None:
            ingestion[field] = getattr(args, flag)
    if args.cost_per_page is not None:
        ingestion["costPerPage"] = str(args.cost_per_page)
    spec: dict[str, Any] = {"kind": KIND, "trigger": "user", "table": args.table, "ingestion": ingestion}
    if args.mode is not None:
        spec["mode"] = args.mode
    return {
        "apiVersion": API_VERSION,
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def ingestion_run_shape(run: Mapping[str, Any]) -> dict[str, Any]:
    """The run shape with the ingestion's provider, query and page bounds."""
    ingestion = (run.get("spec") or {}).get("ingestion") or {}
    return {
        **run_shape(run),
        "provider": ingestion.get("provider"),
        "query": ingestion.get("query"),
        "page_size": ingestion.get("pageSize"),
        "max_pages": ingestion.get("maxPages"),
    }


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = groups.add_parser(
        "table-ingestions", parents=[common], help="ingest a provider's search results into a table"
    )
    sub = group.add_subparsers(dest="command", metavar="<command>", required=True)

    new = sub.add_parser(
        "create-tool-page",
        parents=[common],
        help="create an ingestion run: the provider's result pages become the run's items",
        description="With --wait, exit code 0 when the run succeeded, 1 when it ended otherwise.",
    )
    new.add_argument("--table", required=True, help="the table the rows go to (spec.table)")
    new.add_argument("--provider", required=True, help="the provider's name")
    new.add_argument("--url", required=True, help="the provider's search endpoint, called once per page")
    new.add_argument("--query", required=True, help="the search query")
    new.add_argument("--page-size", type=positive, help="rows per page (default 100)")
    new.add_argument("--max-pages", type=positive, help="stop after this many pages (default 10)")
    new.add_argument("--cost-per-page", help='credits per fetched page, e.g. "0.5"')
    new.add_argument("--mode", choices=get_args(RunMode))
    new.add_argument("--name", help="the Run's name (default: <table>-<provider>-<random>)")
    new.add_argument("--wait", action="store_true", help="block until the run finished")
    new.add_argument("--timeout", type=float, default=300.0, help="seconds --wait waits (default 300)")
    new.set_defaults(handler=cluster_command(create_command))

    control.add_commands(sub, common, ("retry-failed",), kind=KIND, shape=ingestion_run_shape)

    rows = sub.add_parser(
        "rows",
        parents=[common],
        help="the rows an ingestion run put into its Table",
        description="Read from the Table's database (spec.table names a Table): the rows this run found, "
        "as the table has them now.",
    )
    rows.add_argument("run", help="the ingestion run (name or id)")
    rows.add_argument("--limit", type=positive, default=1000, help="at most this many rows (default 1000)")
    rows.set_defaults(handler=cluster_command(rows_command))


def rows_command(args: argparse.Namespace, session: Session) -> int:
    api = session.api
    run = api.find_run(args.run)
    meta, spec = run["metadata"], run.get("spec") or {}
    name = spec.get("table")
    body = api.get("tables", meta["namespace"], name) if name else None
    if spec.get("kind") != KIND or body is None:
        raise CliError(f'run "{meta["name"]}" is not an ingestion run into a Table (spec.table: {name})')
    table = Table.model_validate(body)
    secret = table.spec.postgres.secret_ref
    dsn = api.secret_key(meta["namespace"], secret.name, secret.key)
    if dsn is None:
        raise CliError(f'secrets "{secret.name}" has no key "{secret.key}" (Table {name})')
    try:
        found = ingest.rows_of_run(
            dsn, meta["namespace"], table.metadata.name, table.spec.postgres, meta["uid"], args.limit
        )
    except TableError as err:
        raise CliError(f"Table {name} ({table.spec.postgres.table}): {err.message}") from None
    if session.json:
        print_json(found)
        return EXIT_OK
    headers = sorted({key for row in found for key in row})
    if not found:
        print("No rows found.", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(
        render_table([h.upper() for h in headers], [[row.get(h) for h in headers] for row in found])
    )
    return EXIT_OK


def create_command(args: argparse.Namespace, session: Session) -> int:
    name = args.name or default_name(args.table, args.provider)
    run = create_resource(session.api, ingestion_manifest(args, name, session.target.namespace))
    if args.wait:
        run = control.wait_finished(session.api, run, args.timeout)
    print_run(run, session.json, ingestion_run_shape)
    if args.wait and run_shape(run)["status"] != "succeeded":
        return EXIT_ERROR
    return EXIT_OK
