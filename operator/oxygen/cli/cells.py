"""`oxygen cells inspect <table> <row> <column>`: one cell, its value, status, error, inputs, the run and
item that wrote it, and the earlier runs that wrote it.

When `<table>` is a Table (tables.oxygen.dev) whose runs wrote the cell, it is read from the Table's
database (its Secret's DSN, which the caller must be allowed to read): the value in the column and
the operator's side tables (`oxygen.cells`, `oxygen.cell_history`). Otherwise the runs naming that
table and column are searched, newest first, for the row's item, as before Tables existed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from decimal import Decimal
from typing import Any

from oxygen.api.common import credits_str
from oxygen.api.table import Table
from oxygen.cli import storeitems
from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_OK, CliError, NotFound
from oxygen.cli.items import shards_per_page
from oxygen.cli.output import print_json
from oxygen.cli.resources import Resources
from oxygen.cli.shapes import shard_items, superseded_results
from oxygen.itemstore.lookup import reading, rows_of_row_id
from oxygen.itemstore.store import ItemStoreError
from oxygen.kube.errors import ApiError
from oxygen.tables import cells
from oxygen.tables.errors import TableError
from oxygen.tables.rows import TableRef
from oxygen.timefmt import rfc3339

DETAIL_ORDER = (
    "table", "column", "row_id", "run", "namespace", "provider", "status", "value", "attempt_count",
    "credits_used", "error_class", "error", "inputs", "outputs", "started_at", "finished_at", "shard",
)  # fmt: skip


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    cells = groups.add_parser("cells", parents=[common], help="the items behind table cells")
    sub = cells.add_subparsers(dest="command", metavar="<command>", required=True)
    inspect = sub.add_parser(
        "inspect",
        parents=[common],
        help="inputs, outputs, error, attempts and provider of one cell",
        description="Looks through the runs of that table and column, newest first, for the row's item.",
    )
    inspect.add_argument("table")
    inspect.add_argument("row", help="the row id (rowId)")
    inspect.add_argument("column")
    inspect.set_defaults(handler=cluster_command(inspect_command))


def column_runs(api: Resources, table: str, column: str) -> list[dict[str, Any]]:
    """The runs that filled this column, newest first."""
    found = [
        run
        for run in api.iter_objects("runs", api.scope())
        if (run.get("spec") or {}).get("table") == table and (run.get("spec") or {}).get("column") == column
    ]
    return sorted(found, key=lambda r: r["metadata"].get("creationTimestamp") or "", reverse=True)


def find_cell(
    api: Resources, table: str, row: str, column: str, item_store: str | None = None
) -> dict[str, Any]:
    runs = column_runs(api, table, column)
    if not runs:
        raise NotFound(f'no run of table "{table}" column "{column}" in {api.where()}')
    for run in runs:
        if storeitems.store_backed(api, run):
            latest, history = _stored_cell(api, run, row, item_store)
        else:
            latest, history = _shard_cell(api, run, row)
        if latest is not None:
            meta = run["metadata"]
            return {
                **latest,
                "run": meta["name"],
                "run_id": meta["uid"],
                "namespace": meta["namespace"],
                "table": table,
                "column": column,
                "history": history,
            }
    raise NotFound(f'row "{row}" not found in the {len(runs)} run(s) of table "{table}" column "{column}"')


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return credits_str(value)
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return value


def table_cell(api: Resources, table: str, row: str, column: str) -> dict[str, Any] | None:
    """The cell as the Table's database has it; None when no Table of that name exists or no run of
    it wrote this cell."""
    namespace = api.target.namespace
    try:
        body = api.get("tables", namespace, table)
    except ApiError as err:
        if err.status == 404:  # the Table resource is not installed
            return None
        raise
    if body is None:
        return None
    found = Table.model_validate(body)
    secret = found.spec.postgres.secret_ref
    dsn = api.secret_key(namespace, secret.name, secret.key)
    if dsn is None:
        raise CliError(f'secrets "{secret.name}" has no key "{secret.key}" (Table {table})')
    ref = TableRef(namespace, table, found.spec.postgres, column)
    try:
        cell, value, history = cells.read(dsn, ref, row)
    except TableError as err:
        raise CliError(f"Table {table} ({found.spec.postgres.table}): {err.message}") from None
    if cell is None:
        return None
    cell = {k: _plain(v) for k, v in cell.items()}
    current = (cell["run_uid"], cell["item_id"])
    return {
        "table": table,
        "column": column,
        "row_id": row,
        "namespace": namespace,
        "value": value,
        "outputs": value,
        "status": cell["status"],
        "error": cell["error"],
        "error_class": cell["error_class"],
        "inputs": cell["inputs"],
        "provider": cell["provider"],
        "run": cell["run_name"],
        "run_id": cell["run_uid"],
        "item_id": cell["item_id"],
        "id": cell["item_id"],
        "attempt_count": cell["attempt_count"],
        "credits_used": cell["credits_used"],
        "cached": cell["cached"],
        "updated_at": cell["updated_at"],
        "history": [
            {
                "run": h["run_name"],
                "run_id": h["run_uid"],
                "item_id": h["item_id"],
                "provider": h["provider"],
                "status": h["status"],
                "error": h["error"],
                "error_class": h["error_class"],
                "attempt_count": h["attempt_count"],
                "credits_used": _plain(h["credits_used"]),
                "inputs": h["inputs"],
                "value": h["outputs"],
                "cached": h["cached"],
                "written_at": _plain(h["written_at"]),
            }
            for h in history
            if (h["run_uid"], h["item_id"]) != current
        ],
    }


def _shard_cell(
    api: Resources, run: dict[str, Any], row: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    latest: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []
    for shards in api.shard_pages(run, shards_per_page(run)):
        for shard in shards:
            history.extend(superseded_results(shard, row))
            for item in shard_items(shard):
                if item["row_id"] == row:
                    latest = item
    return latest, history


def _stored_cell(
    api: Resources, run: dict[str, Any], row: str, item_store: str | None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The row's rounds through the (run_uid, row_id) index: the live one and the superseded ones."""
    store = storeitems.open_store(api, run, item_store)
    try:
        with reading():
            rows = rows_of_row_id(store, run["metadata"]["uid"], row)
    except ItemStoreError as err:
        raise CliError(str(err)) from None
    finally:
        store.close()
    if not rows:
        return None, []
    names = storeitems.ShardNames(api, run)
    provider = storeitems.provider_of(run)
    latest = None
    history = []
    for r in rows:
        shard = names.of(r.round, r.ordinal)
        if r.superseded_by is None:
            latest = storeitems.row_shape(r, shard=shard, provider=provider)
        else:
            history.append(storeitems.history_shape(r, shard))
    return latest, history


def inspect_command(args: argparse.Namespace, session: Session) -> int:
    cell = table_cell(session.api, args.table, args.row, args.column)
    if cell is None:
        cell = find_cell(session.api, args.table, args.row, args.column, getattr(args, "item_store", None))
    if session.json:
        print_json(cell)
        return EXIT_OK
    width = max(len(k) for k in DETAIL_ORDER) + 1
    for key in DETAIL_ORDER:
        value = cell.get(key)
        text = value if isinstance(value, str) or value is None else _compact(value)
        sys.stdout.write(f"{(key + ':').ljust(width)} {'<none>' if text is None else text}\n")
    for earlier in cell["history"]:
        where = f"run {earlier['run']}" if "run" in earlier else f"round {earlier['round']}"
        sys.stdout.write(
            f"{'earlier:'.ljust(width)} {where} {earlier['status']} after "
            f"{earlier['attempt_count']} attempt(s): {earlier['error'] or ''}\n"
        )
    return EXIT_OK


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
