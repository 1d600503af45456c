"""`OxygenMetrics`: every oxygen metric on one registry, with an injectable clock for tests."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest

from oxygen.metrics.credits import CreditAccountMetrics
from oxygen.metrics.deltas import WatchStart
from oxygen.metrics.health import HealthMetrics
from oxygen.metrics.runs import DEFAULT_RETENTION_SECONDS, RunMetrics
from oxygen.metrics.shards import ShardMetrics

RETENTION_ENV = "OXYGEN_METRICS_RUN_RETENTION_SECONDS"


def retention_from_env(default: float = DEFAULT_RETENTION_SECONDS) -> float:
    raw = os.environ.get(RETENTION_ENV, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value >= 0 else default


class OxygenMetrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
        process_start: float | None = None,
        retention_seconds: float | None = None,
        process_collectors: bool = False,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clock = clock
        # None: the reference is this process's first observation (see deltas.WatchStart).
        self.watch_start = WatchStart(clock, process_start)
        if process_collectors:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        retention = retention_seconds if retention_seconds is not None else retention_from_env()
        self.runs = RunMetrics(self.registry, clock, self.watch_start, retention)
        self.shards = ShardMetrics(self.registry, clock, self.watch_start)
        self.credit_accounts = CreditAccountMetrics(self.registry)
        self.health = HealthMetrics(self.registry)

    # -- what the handlers call -------------------------------------------------------------------

    def observe_run(self, body: Mapping[str, Any]) -> None:
        self.runs.observe(body)

    def forget_run(self, namespace: str, name: str, uid: str) -> None:
        self.runs.forget(namespace, name, uid)
        self.shards.forget_run(uid)

    def observe_shard(self, body: Mapping[str, Any]) -> None:
        self.shards.observe(body)

    def forget_shard(self, uid: str) -> None:
        self.shards.forget(uid)

    def observe_credit_account(self, body: Mapping[str, Any]) -> None:
        self.credit_accounts.observe(body)

    def forget_credit_account(self, namespace: str, name: str) -> None:
        self.credit_accounts.forget(namespace, name)

    def reconcile_timer(self) -> AbstractContextManager[None]:
        return self.health.reconcile_timer()

    def instrument_api_client(self, api_client: Any) -> Any:
        return self.health.instrument_api_client(api_client)

    def set_queue_depth(self, depth: int) -> None:
        self.health.set_queue_depth(depth)

    # -- reading ---------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def series(self) -> Iterator[tuple[str, dict[str, str], float]]:
        """Every sample (name, labels, value) in the registry: for tests and series-count checks."""
        for family in self.registry.collect():
            for sample in family.samples:
                yield sample.name, dict(sample.labels), sample.value
