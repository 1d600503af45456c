"""kopf's login from one explicit kubeconfig file (`oxygen operator --kubeconfig X`).

kopf's own login reads the client library's default kubeconfig location, which the library fixed
from $KUBECONFIG when it was first imported, and prefers in-cluster credentials: so a `--kubeconfig`
given later lost to whatever $KUBECONFIG (or the pod's ServiceAccount) said. This login reads only
the file it is given, every time kopf (re)authenticates.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import kopf
from kubernetes import client, config


def connection_from_kubeconfig(path: Path | str, context: str | None = None) -> kopf.ConnectionInfo:
    """kopf's connection settings for the current (or given) context of `path`."""
    settings = client.Configuration()
    config.load_kube_config(config_file=str(path), context=context, client_configuration=settings)
    # The client keeps the bearer token under "BearerToken" since 36.x, "authorization" before.
    header = settings.get_api_key_with_prefix("BearerToken") or settings.get_api_key_with_prefix(
        "authorization"
    )
    parts = (header or "").split(" ", 1)
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    return kopf.ConnectionInfo(
        server=settings.host,
        ca_path=settings.ssl_ca_cert,
        insecure=not settings.verify_ssl,
        username=settings.username or None,
        password=settings.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=settings.cert_file,
        private_key_path=settings.key_file,
    )


def register_login(path: Path | str, registry: Any = None) -> Callable[..., kopf.ConnectionInfo]:
    """Make kopf authenticate with `path` only (a login handler replaces kopf's default ones)."""

    def login_with_kubeconfig_flag(**_: Any) -> kopf.ConnectionInfo:
        return connection_from_kubeconfig(path)

    kopf.on.login(registry=registry)(login_with_kubeconfig_flag)
    return login_with_kubeconfig_flag
