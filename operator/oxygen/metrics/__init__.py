"""Prometheus metrics of the operator (`oxygen_*`), fed from the objects it observes.

The handlers call the module-level functions; they act on one process-wide `OxygenMetrics`
(`default()`), whose `registry` the web app serves on /metrics. Tests build their own
`OxygenMetrics` with a fake clock.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry

from oxygen.metrics.facade import RETENTION_ENV, OxygenMetrics, retention_from_env

__all__ = [
    "RETENTION_ENV",
    "OxygenMetrics",
    "default",
    "forget_credit_account",
    "forget_run",
    "forget_shard",
    "instrument_api_client",
    "observe_credit_account",
    "observe_run",
    "observe_shard",
    "reconcile_timer",
    "registry",
    "retention_from_env",
    "set_queue_depth",
]

_default: OxygenMetrics | None = None
_lock = threading.Lock()


def default() -> OxygenMetrics:
    global _default
    with _lock:
        if _default is None:
            _default = OxygenMetrics(process_collectors=True)
        return _default


def registry() -> CollectorRegistry:
    return default().registry


def observe_run(body: Mapping[str, Any]) -> None:
    default().observe_run(body)


def forget_run(namespace: str, name: str, uid: str) -> None:
    default().forget_run(namespace, name, uid)


def observe_shard(body: Mapping[str, Any]) -> None:
    default().observe_shard(body)


def forget_shard(uid: str) -> None:
    default().forget_shard(uid)


def observe_credit_account(body: Mapping[str, Any]) -> None:
    default().observe_credit_account(body)


def forget_credit_account(namespace: str, name: str) -> None:
    default().forget_credit_account(namespace, name)


def reconcile_timer() -> AbstractContextManager[None]:
    return default().reconcile_timer()


def instrument_api_client(api_client: Any) -> Any:
    return default().instrument_api_client(api_client)


def set_queue_depth(depth: int) -> None:
    default().set_queue_depth(depth)
