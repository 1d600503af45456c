"""Which cluster, context and namespace a client talks to, resolved the way kubectl resolves them.

Order: an explicit kubeconfig, else $KUBECONFIG (colon-separated files are merged), else ~/.kube/config,
else the in-cluster service account. The namespace is the context's, else the service account's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config
from urllib3.util.retry import Retry

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
IN_CLUSTER = "(in-cluster)"


class ConfigError(Exception):
    """The configuration names no usable cluster; the message says what to fix."""


@dataclass(frozen=True)
class Connection:
    api_client: Any
    context: str
    server: str
    # The context's namespace (or the service account's in a pod); None when it names none.
    namespace: str | None


def connect(kubeconfig: str | None = None, context: str | None = None) -> Connection:
    """A client for one interactive command: a missing server fails after one quick attempt."""
    if kubeconfig is not None and not Path(kubeconfig).expanduser().is_file():
        raise ConfigError(f"kubeconfig {kubeconfig}: no such file")
    cfg = client.Configuration()
    if _kubeconfig_present(kubeconfig):
        name, namespace = _select_context(kubeconfig, context)
        try:
            config.load_kube_config(
                config_file=kubeconfig, context=name, client_configuration=cfg, persist_config=False
            )
        except (config.ConfigException, OSError, ValueError) as err:
            raise ConfigError(f"kubeconfig context {name!r}: {err}") from None
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        name, namespace = IN_CLUSTER, _service_account_namespace()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except config.ConfigException as err:
            raise ConfigError(f"in-cluster configuration: {err}") from None
    else:
        raise ConfigError("no kubeconfig found: pass --kubeconfig or set KUBECONFIG")
    # One quick connection attempt, not urllib3's three retries: an unreachable cluster fails fast.
    cfg.retries = Retry(total=2, connect=0, read=1, redirect=0, status=0, raise_on_status=False)
    return Connection(client.ApiClient(cfg), name, str(cfg.host), namespace)


def _kubeconfig_present(explicit: str | None) -> bool:
    if explicit is not None:
        return True
    paths = os.environ.get("KUBECONFIG", "~/.kube/config").split(os.pathsep)
    return any(Path(p).expanduser().is_file() for p in paths if p)


def _select_context(kubeconfig: str | None, wanted: str | None) -> tuple[str, str | None]:
    try:
        contexts, current = config.list_kube_config_contexts(config_file=kubeconfig)
    except (config.ConfigException, OSError, ValueError) as err:
        raise ConfigError(f"kubeconfig: {err}") from None
    name = wanted or (current or {}).get("name")
    if not name:
        raise ConfigError("kubeconfig has no current context: pass --context")
    for ctx in contexts or []:
        if ctx.get("name") == name:
            namespace = (ctx.get("context") or {}).get("namespace")
            return str(name), (str(namespace) if namespace else None)
    raise ConfigError(f'context "{name}" not found in the kubeconfig')


def _service_account_namespace() -> str | None:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
    except OSError:
        return None
