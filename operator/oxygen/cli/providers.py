"""`oxygen providers list|get`: the Providers runs may name, with their limits and observed use.

The shape: name, namespace, the URL's host (never the full URL: its path and query may carry a
tenant's identifiers, and the header Secret is only ever referenced), price, limits (rateLimit,
maxInFlight), and what the operator's Provider controller observed: requests per second, calls in
flight, unfinished runs naming it, items throttled, Ready.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from oxygen.cli.command import Session, cluster_command
from oxygen.cli.errors import EXIT_OK, NotFound
from oxygen.cli.output import age, print_json, print_listing, render_table

COLUMNS = ("NAME", "HOST", "PRICE", "RATE LIMIT", "MAX IN FLIGHT", "RATE", "IN FLIGHT", "RUNS", "AGE")


def url_host(url: str | None) -> str | None:
    """host[:port] of the URL (no credentials, path or query)."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.hostname is None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port is not None else host


def provider_shape(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    rate = spec.get("rateLimit")
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "url_host": url_host((spec.get("http") or {}).get("url")),
        "price": str(spec.get("price", "0")),
        "rate_limit": (
            {"requests_per_second": rate.get("requestsPerSecond"), "burst": rate.get("burst", 1)}
            if rate
            else None
        ),
        "max_in_flight": spec.get("maxInFlight"),
        "requests_per_second": status.get("requestsPerSecond", 0.0),
        "in_flight": status.get("inFlight", 0),
        "runs": status.get("runs", 0),
        "throttled": status.get("throttled", 0),
        "ready": None if ready is None else ready.get("status") == "True",
        "created_at": meta.get("creationTimestamp"),
    }


def provider_row(shape: Mapping[str, Any], with_namespace: bool) -> list[Any]:
    rate = shape["rate_limit"]
    row = [
        shape["name"],
        shape["url_host"],
        shape["price"],
        f"{rate['requests_per_second']}/s" if rate else None,
        shape["max_in_flight"],
        f"{float(shape['requests_per_second']):g}/s",
        shape["in_flight"],
        shape["runs"],
        age(shape["created_at"]),
    ]
    return [shape["namespace"], *row] if with_namespace else row


def register(
    groups: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    group = groups.add_parser("providers", parents=[common], help="the Providers runs may name")
    sub = group.add_subparsers(dest="command", metavar="<command>", required=True)
    listing = sub.add_parser("list", parents=[common], help="list Providers (-A: in every namespace)")
    listing.set_defaults(handler=cluster_command(list_command))
    get = sub.add_parser("get", parents=[common], help="one Provider (exit code 3 when not found)")
    get.add_argument("name", help="the Provider's name")
    get.set_defaults(handler=cluster_command(get_command))


def list_command(args: argparse.Namespace, session: Session) -> int:
    api = session.api
    with_namespace = session.target.all_namespaces
    shapes = [provider_shape(p) for p in api.iter_objects("providers", api.scope())]
    headers = ("NAMESPACE", *COLUMNS) if with_namespace else COLUMNS
    print_listing(
        shapes, session.json, "providers", headers, lambda ss: [provider_row(s, with_namespace) for s in ss]
    )
    return EXIT_OK


def get_command(args: argparse.Namespace, session: Session) -> int:
    namespace = session.target.namespace
    found = session.api.get("providers", namespace, args.name)
    if found is None:
        raise NotFound(f'provider "{args.name}" not found in namespace "{namespace}"')
    shape = provider_shape(found)
    if session.json:
        print_json(shape)
    else:
        sys.stdout.write(render_table(COLUMNS, [provider_row(shape, False)]))
    return EXIT_OK
