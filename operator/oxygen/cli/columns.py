"""`oxygen columns run <table> <column> --provider P --input k='${row.x}' [--rows empty|all]`: a column
run over a Table (tables.oxygen.dev): its rows, selected in the database, become the items; each
item's inputs are the `--input`s templated from the row (`${row.<column>}`, the workflow steps'
template language), its output lands in the column as it finishes.
"""

from __future__ import annotations

import argparse
from typing import Any

from oxygen.api.common import API_VERSION
from oxygen.cli.command import Session, cluster_command, positive
from oxygen.cli.control import wait_finished
from oxygen.cli.create import create_resource, default_name
from oxygen.cli.errors import EXIT_OK, EXIT_USAGE, CliError
from oxygen.cli.output import print_json
from oxygen.cli.runview import print_runs
from oxygen.cli.shapes import run_shape


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = groups.add_parser("columns", parents=[common], help="fill a Table's column with a provider")
    sub = group.add_subparsers(dest="command", metavar="<command>", required=True)
    run = sub.add_parser(
        "run",
        parents=[common],
        help="start a column run over a Table's rows",
        description="Creates a Run (kind column) whose items are the Table's selected rows.",
    )
    run.add_argument("table", help="the Table (tables.oxygen.dev) whose rows are run")
    run.add_argument("column", help="the column the outputs are written to (added as jsonb if missing)")
    run.add_argument("--provider", required=True, help="the Provider called per row (producer.providerRef)")
    run.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="KEY=TEMPLATE",
        help="an input of each call, templated from the row: domain='${row.website}' (repeatable)",
    )
    rows = run.add_mutually_exclusive_group()
    rows.add_argument(
        "--rows",
        choices=("empty", "all"),
        help="empty (default): rows whose cell is empty or failed; all: every row",
    )
    rows.add_argument("--where", help="only the rows matching this SQL boolean (spec.rows.where)")
    run.add_argument("--mode", choices=("smoke_test", "dry_run", "live"))
    run.add_argument("--batch-size", type=positive, help="items per shard")
    run.add_argument("--parallelism", type=positive, help="shards executed at once")
    run.add_argument("--concurrency", type=positive, help="calls in flight per shard")
    run.add_argument("--name", help="the Run's name (default: <table>-<column>-<random>)")
    run.add_argument("--wait", action="store_true", help="block until the run finished")
    run.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default 600)")
    run.set_defaults(handler=cluster_command(run_command))


def inputs_of(pairs: list[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for pair in pairs:
        key, sep, template = pair.partition("=")
        if not sep or not key.strip():
            raise CliError(
                f"--input {pair!r}: expected KEY=TEMPLATE, e.g. domain='${{row.website}}'", EXIT_USAGE
            )
        inputs[key.strip()] = template
    if not inputs:
        raise CliError("give at least one --input KEY=TEMPLATE, e.g. domain='${row.website}'", EXIT_USAGE)
    return inputs


def manifest(args: argparse.Namespace, namespace: str) -> dict[str, Any]:
    producer: dict[str, Any] = {"providerRef": {"name": args.provider}}
    if args.concurrency is not None:
        producer["concurrency"] = args.concurrency
    spec: dict[str, Any] = {
        "kind": "column",
        "trigger": "user",
        "table": args.table,
        "column": args.column,
        "inputs": inputs_of(args.input),
        "rows": {"where": args.where} if args.where else (args.rows or "empty"),
        "producer": producer,
    }
    for flag, field in (("batch_size", "batchSize"), ("parallelism", "parallelism"), ("mode", "mode")):
        if getattr(args, flag) is not None:
            spec[field] = getattr(args, flag)
    name = args.name or default_name(args.table, args.column)
    return {
        "apiVersion": API_VERSION,
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def run_command(args: argparse.Namespace, session: Session) -> int:
    api = session.api
    created = create_resource(api, manifest(args, api.target.namespace))
    if args.wait:
        created = wait_finished(api, created, args.timeout)
    if session.json:
        print_json(run_shape(created))
    else:
        print_runs([created], False, False)
    return EXIT_OK
