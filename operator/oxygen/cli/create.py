"""`oxygen table-runs create`: a Run from a manifest, or from flags with the rows in a ConfigMap."""

from __future__ import annotations

import argparse
import re
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml

from oxygen.api.common import API_VERSION
from oxygen.api.labels import LABEL_RUN, MANAGED_BY, label_value
from oxygen.cli.errors import EXIT_USAGE, CliError
from oxygen.cli.resources import Resources
from oxygen.kube.errors import ApiError

# A ConfigMap's data is capped at 1 MiB by the API server; say so before it does, more clearly.
CONFIG_MAP_LIMIT = 1024 * 1024
ROW_KEY_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")
NAME_BUDGET = 40


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--filename", help="a Run manifest (YAML or JSON; - for stdin)")
    parser.add_argument("--table", help="the table the column belongs to (spec.table)")
    parser.add_argument("--column", help="the column being filled (spec.column)")
    parser.add_argument("--rows", type=Path, help="the rows: JSONL ({rowId, inputs} per line) or CSV")
    parser.add_argument("--provider", help="the provider's name (producer.provider)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--url", help="the provider's HTTP endpoint, called once per item")
    source.add_argument("--builtin", choices=("echo",), help="a built-in producer instead of --url")
    parser.add_argument("--cost-per-item", help='credits per successful item, e.g. "0.25"')
    parser.add_argument("--batch-size", type=int, help="items per shard")
    parser.add_argument("--parallelism", type=int, help="shards executed at once")
    parser.add_argument("--mode", choices=("smoke_test", "dry_run", "live"))
    parser.add_argument("--name", help="the Run's name (default: <table>-<column>-<random>)")


def create(args: argparse.Namespace, api: Resources) -> list[dict[str, Any]]:
    """Create what was asked; returns the created Runs."""
    flag_names = ("table", "column", "rows", "provider", "url", "builtin")
    if args.filename is not None:
        used = [f"--{n}" for n in flag_names if getattr(args, n) is not None]
        if used:
            raise CliError(f"-f cannot be combined with {', '.join(used)}", code=EXIT_USAGE)
        return from_manifest(args.filename, api)
    missing = [f"--{n}" for n in ("table", "column", "rows", "provider") if getattr(args, n) is None]
    if missing or (args.url is None and args.builtin is None):
        missing += [] if args.url or args.builtin else ["--url or --builtin"]
        raise CliError(f"give -f run.yaml, or all of: {', '.join(missing)}", code=EXIT_USAGE)
    return [from_flags(args, api)]


def from_manifest(filename: str, api: Resources) -> list[dict[str, Any]]:
    try:
        text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
        documents = [d for d in yaml.safe_load_all(text) if d]
    except OSError as err:
        raise CliError(f"{filename}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise CliError(f"{filename}: not valid YAML ({err})") from None
    for doc in documents:
        if not isinstance(doc, dict) or doc.get("kind") not in ("Run", "ConfigMap"):
            kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
            raise CliError(f"{filename}: expected Run (and ConfigMap) documents, found {kind}")
        if doc["kind"] == "Run" and doc.get("apiVersion") != API_VERSION:
            raise CliError(f"{filename}: a Run's apiVersion is {API_VERSION}, not {doc.get('apiVersion')}")
    if not any(d["kind"] == "Run" for d in documents):
        raise CliError(f"{filename}: no Run in the manifest")
    # ConfigMaps first: a Run reads its itemsFrom as soon as it exists.
    for doc in (d for d in documents if d["kind"] == "ConfigMap"):
        create_resource(api, doc)
    return [create_resource(api, d) for d in documents if d["kind"] == "Run"]


def create_resource(api: Resources, doc: dict[str, Any]) -> dict[str, Any]:
    """Create a Run or a ConfigMap in its namespace (the manifest's, else -n's); 409 is an error here."""
    meta = doc.setdefault("metadata", {})
    namespace = meta.get("namespace") or api.target.namespace
    meta["namespace"] = namespace
    try:
        if doc["kind"] == "ConfigMap":
            api.create_config_map(namespace, doc)
            return doc
        return api.create_run(namespace, doc)
    except ApiError as err:
        if err.conflict:
            raise CliError(
                f'{doc["kind"]} "{meta.get("name")}" already exists in namespace "{namespace}"'
            ) from None
        raise


def from_flags(args: argparse.Namespace, api: Resources) -> dict[str, Any]:
    rows_path: Path = args.rows
    try:
        rows = rows_path.read_text()
    except OSError as err:
        raise CliError(f"{rows_path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise CliError(f"{rows_path}: not UTF-8 text") from None
    if len(rows.encode()) > CONFIG_MAP_LIMIT:
        raise CliError(
            f"{rows_path} is {len(rows.encode())} bytes; a ConfigMap holds at most 1 MiB: "
            "split the rows into several runs"
        )
    name = args.name or default_name(args.table, args.column)
    namespace = api.target.namespace
    key = rows_path.name if rows_path.name.lower().endswith(ROW_KEY_SUFFIXES) else "rows.jsonl"
    labels = {LABEL_RUN: label_value(name), **MANAGED_BY}
    # Named after the run and owned by nothing: it must exist before the Run (whose uid is unknown).
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "data": {key: rows},
    }
    create_resource(api, config_map)
    try:
        return create_resource(api, run_manifest(args, name, namespace, key))
    except BaseException:
        # No Run will read it: leave nothing behind.
        api.delete_config_map(namespace, name)
        raise


def run_manifest(args: argparse.Namespace, name: str, namespace: str, key: str) -> dict[str, Any]:
    producer: dict[str, Any] = {"provider": args.provider}
    if args.url is not None:
        producer["http"] = {"url": args.url}
    else:
        producer["builtin"] = args.builtin
    if args.cost_per_item is not None:
        producer["costPerItem"] = str(args.cost_per_item)
    spec: dict[str, Any] = {
        "kind": "column",
        "trigger": "user",
        "table": args.table,
        "column": args.column,
        "itemsFrom": {"configMapKeyRef": {"name": name, "key": key}},
        "producer": producer,
    }
    for flag, field in (("batch_size", "batchSize"), ("parallelism", "parallelism"), ("mode", "mode")):
        if getattr(args, flag) is not None:
            spec[field] = getattr(args, flag)
    return {
        "apiVersion": API_VERSION,
        "kind": "Run",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def default_name(table: str, column: str) -> str:
    """A DNS-1123 name from the table and column, kept short: shard names add their own suffix."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{table}-{column}".lower()).strip("-")[:NAME_BUDGET].strip("-")
    return f"{base or 'run'}-{secrets.token_hex(3)[:5]}"
