"""The cluster flags every command takes, and the Target they resolve to (`oxygen.kube.config` resolves
them the way kubectl does). The namespace is -n, else the context's namespace, else "default".
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from oxygen.cli.errors import CliError
from oxygen.kube import config as kube_config


@dataclass(frozen=True)
class Target:
    """Where requests go; named in every "cannot reach" message."""

    context: str
    server: str
    namespace: str
    all_namespaces: bool


def global_flags() -> argparse.ArgumentParser:
    """Flags every cluster command takes, accepted before or after the command words.

    Defaults are SUPPRESS so a flag given early (`oxygen -n x runs list`) is not overwritten by a
    later parser's default; `target_options` supplies the real defaults.
    """
    parent = argparse.ArgumentParser(add_help=False)
    flags = parent.add_argument_group("cluster options")
    flags.add_argument(
        "--kubeconfig", default=argparse.SUPPRESS, help="kubeconfig file (default $KUBECONFIG)"
    )
    flags.add_argument("--context", default=argparse.SUPPRESS, help="kubeconfig context (default: current)")
    flags.add_argument(
        "-n",
        "--namespace",
        default=argparse.SUPPRESS,
        help="namespace (default: the context's, else default)",
    )
    flags.add_argument(
        "-A", "--all-namespaces", action="store_true", default=argparse.SUPPRESS, help="every namespace"
    )
    flags.add_argument(
        "--request-timeout",
        type=float,
        default=argparse.SUPPRESS,
        help="seconds to wait for the server to connect (default 5)",
    )
    flags.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON output")
    flags.add_argument(
        "--item-store",
        metavar="DSN",
        default=argparse.SUPPRESS,
        help="PostgreSQL connection string of the item store, for runs whose items live there (default "
        "$OXYGEN_ITEM_STORE, else the run's own worker credentials)",
    )
    return parent


@dataclass(frozen=True)
class Options:
    kubeconfig: str | None
    context: str | None
    namespace: str | None
    all_namespaces: bool
    connect_timeout: float
    json: bool


def target_options(args: argparse.Namespace) -> Options:
    return Options(
        kubeconfig=getattr(args, "kubeconfig", None),
        context=getattr(args, "context", None),
        namespace=getattr(args, "namespace", None),
        all_namespaces=bool(getattr(args, "all_namespaces", False)),
        connect_timeout=float(getattr(args, "request_timeout", 5.0)),
        json=bool(getattr(args, "json", False)),
    )


def connect(options: Options) -> tuple[Any, Target]:
    """An ApiClient and the Target it points at; raises CliError for unusable configuration."""
    try:
        connection = kube_config.connect(options.kubeconfig, options.context)
    except kube_config.ConfigError as err:
        raise CliError(str(err)) from None
    namespace = options.namespace or connection.namespace or "default"
    target = Target(connection.context, connection.server, namespace, options.all_namespaces)
    return connection.api_client, target
