"""`oxygen tables list|get`: the Tables column runs fill, with what the Table controller observed.

The shape: name, namespace, the database table and its row id column, the Secret (name and key, never
its value), rows, columns (name, type, filled_by — the run that last wrote a cell —, filled, failed,
empty), whether the database answers (ready) and why not (message).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_OK, NotFound
from oxygen.cli.output import age, print_json, print_listing, render_table

COLUMNS = ("NAME", "TABLE", "ROW ID", "ROWS", "COLUMNS", "READY", "AGE")
COLUMN_COLUMNS = ("COLUMN", "TYPE", "FILLED", "FAILED", "EMPTY", "FILLED BY")


def table_shape(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    postgres = (body.get("spec") or {}).get("postgres") or {}
    status = body.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    secret = postgres.get("secretRef") or {}
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "table": postgres.get("table"),
        "row_id_column": postgres.get("rowIdColumn", "id"),
        "secret": {"name": secret.get("name"), "key": secret.get("key")},
        "rows": status.get("rows"),
        "columns": [
            {
                "name": c.get("name"),
                "type": c.get("type"),
                "filled_by": c.get("filledBy"),
                "filled": c.get("filled", 0),
                "failed": c.get("failed", 0),
                "empty": c.get("empty", 0),
            }
            for c in status.get("columns") or []
        ],
        "ready": None if ready is None else ready.get("status") == "True",
        "reason": None if ready is None else ready.get("reason"),
        "message": None if ready is None else ready.get("message"),
        "created_at": meta.get("creationTimestamp"),
    }


def _ready(shape: Mapping[str, Any]) -> str:
    if shape["ready"] is None:
        return "Unknown"
    return "True" if shape["ready"] else f"False ({shape['reason']})"


def table_row(shape: Mapping[str, Any], with_namespace: bool) -> list[Any]:
    row = [
        shape["name"],
        shape["table"],
        shape["row_id_column"],
        shape["rows"],
        len(shape["columns"]),
        _ready(shape),
        age(shape["created_at"]),
    ]
    return [shape["namespace"], *row] if with_namespace else row


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = groups.add_parser("tables", parents=[common], help="the Tables column runs fill")
    sub = group.add_subparsers(dest="command", metavar="<command>", required=True)
    listing = sub.add_parser("list", parents=[common], help="list Tables (-A: in every namespace)")
    listing.set_defaults(handler=cluster_command(list_command))
    get = sub.add_parser(
        "get", parents=[common], help="one Table and its columns (exit code 3 when not found)"
    )
    get.add_argument("name", help="the Table's name")
    get.set_defaults(handler=cluster_command(get_command))


def list_command(args: argparse.Namespace, session: Session) -> int:
    api = session.api
    with_namespace = session.target.all_namespaces
    shapes = [table_shape(t) for t in api.iter_objects("tables", api.scope())]
    headers = ("NAMESPACE", *COLUMNS) if with_namespace else COLUMNS
    print_listing(
        shapes, session.json, "tables", headers, lambda ss: [table_row(s, with_namespace) for s in ss]
    )
    return EXIT_OK


def get_command(args: argparse.Namespace, session: Session) -> int:
    namespace = session.target.namespace
    found = session.api.get("tables", namespace, args.name)
    if found is None:
        raise NotFound(f'table "{args.name}" not found in namespace "{namespace}"')
    shape = table_shape(found)
    if session.json:
        print_json(shape)
        return EXIT_OK
    sys.stdout.write(render_table(COLUMNS, [table_row(shape, False)]))
    if shape["message"] and not shape["ready"]:
        sys.stdout.write(f"message: {shape['message']}\n")
    if shape["columns"]:
        sys.stdout.write("\n")
        rows = [
            [c["name"], c["type"], c["filled"], c["failed"], c["empty"], c["filled_by"]]
            for c in shape["columns"]
        ]
        sys.stdout.write(render_table(COLUMN_COLUMNS, rows))
    return EXIT_OK
