"""CreditAccount balances: `oxygen_credit_account_available` and `_granted` per account."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from oxygen.metrics.deltas import to_decimal


class CreditAccountMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.available = Gauge(
            "oxygen_credit_account_available",
            "Credits available in an account (granted - captured - reserved).",
            ["namespace", "account"],
            registry=registry,
        )
        self.granted = Gauge(
            "oxygen_credit_account_granted",
            "Credits granted to an account (refills and top-ups).",
            ["namespace", "account"],
            registry=registry,
        )

    def observe(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        name = str(meta.get("name") or "")
        if not name:
            return
        labels = (str(meta.get("namespace") or ""), name)
        if "available" in status:
            self.available.labels(*labels).set(float(to_decimal(status["available"])))
        if "granted" in status:
            self.granted.labels(*labels).set(float(to_decimal(status["granted"])))

    def forget(self, namespace: str, name: str) -> None:
        for gauge in (self.available, self.granted):
            with contextlib.suppress(KeyError):
                gauge.remove(namespace, name)
