"""Which cluster, context and namespace a command talks to, resolved the way kubectl resolves them.

Order: --kubeconfig, else $KUBECONFIG (colon-separated files are merged), else ~/.kube/config, else the
in-cluster service account. The namespace is -n, else the context's namespace, else "default".
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from urllib3.util.retry import Retry

from oxygen.cli.errors import CliError

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
IN_CLUSTER = "(in-cluster)"


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


def _kubeconfig_present(explicit: str | None) -> bool:
    if explicit is not None:
        return True
    paths = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)
    return any(Path(p).expanduser().is_file() for p in paths if p)


def connect(options: Options) -> tuple[Any, Target]:
    """An ApiClient and the Target it points at; raises CliError for unusable configuration."""
    if options.kubeconfig is not None and not Path(options.kubeconfig).expanduser().is_file():
        raise CliError(f"kubeconfig {options.kubeconfig}: no such file")
    cfg = client.Configuration()
    if _kubeconfig_present(options.kubeconfig):
        context, context_namespace = _select_context(options.kubeconfig, options.context)
        try:
            config.load_kube_config(
                config_file=options.kubeconfig,
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
        except (config.ConfigException, OSError, ValueError) as err:
            raise CliError(f"kubeconfig context {context!r}: {err}") from None
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        context, context_namespace = IN_CLUSTER, _service_account_namespace()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as err:
            raise CliError(f"in-cluster configuration: {err}") from None
    else:
        raise CliError("no kubeconfig found: pass --kubeconfig or set KUBECONFIG")
    # One quick connection attempt, not urllib3's three retries: an unreachable cluster fails fast.
    cfg.retries = Retry(total=2, connect=0, read=1, redirect=0, status=0, raise_on_status=False)
    api_client = client.ApiClient(cfg)
    namespace = options.namespace or context_namespace or "default"
    return api_client, Target(context, str(cfg.host), namespace, options.all_namespaces)


def _select_context(kubeconfig: str | None, wanted: str | None) -> tuple[str, str | None]:
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError, ValueError) as err:
        raise CliError(f"kubeconfig: {err}") from None
    name = wanted or (current or {}).get("name")
    if not name:
        raise CliError("kubeconfig has no current context: pass --context")
    for ctx in contexts or []:
        if ctx.get("name") == name:
            namespace = (ctx.get("context") or {}).get("namespace")
            return str(name), (str(namespace) if namespace else None)
    raise CliError(f'context "{name}" not found in the kubeconfig')


def _service_account_namespace() -> str | None:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None
