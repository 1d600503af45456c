"""Where a process's client comes from, and which API failures are worth a retry (the worker, the node
agent, the run pages)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from oxygen.kube.client import load_api_client

ConfigError = config.ConfigException
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def client_for_process(env: Mapping[str, str]) -> Any:
    """A client for a process that finds its cluster in its environment: $KUBECONFIG, else the pod's
    ServiceAccount when it runs in a pod, else ~/.kube/config. Raises ConfigError (or OSError)."""
    if env.get("KUBECONFIG"):
        return load_api_client(env["KUBECONFIG"])
    if env.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()
        return client.ApiClient()
    return config.new_client_from_config(config_file="~/.kube/config")


def is_transient(exc: BaseException) -> bool:
    """Throttled, a server error, or the connection broke: the same call may succeed in a moment."""
    from urllib3.exceptions import HTTPError

    if isinstance(exc, ApiException):
        return not exc.status or exc.status in _TRANSIENT_STATUSES
    return isinstance(exc, HTTPError | OSError)


def describe_error(exc: BaseException, limit: int = 500) -> str:
    """One line for a log or a message: `HTTP 403 Forbidden: <the API server's message>`."""
    if isinstance(exc, ApiException):
        try:
            detail = str(json.loads(exc.body or "{}").get("message", ""))[:limit]
        except (ValueError, AttributeError):
            detail = ""
        return f"HTTP {exc.status} {exc.reason or ''}".strip() + (f": {detail}" if detail else "")
    return f"{exc.__class__.__name__}: {str(exc)[:limit]}"


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404
