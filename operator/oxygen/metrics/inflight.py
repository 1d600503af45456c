"""Calls in flight per provider right now: the sum of `status.summary.running` over the shards using it.

A gauge, labelled namespace and provider only; a shard's share leaves the sum when it is forgotten
(and is 0 once it finished, its summary counting no running item).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge


class InFlight:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._running: dict[str, tuple[str, str, int]] = {}
        self.gauge = Gauge(
            "oxygen_provider_in_flight",
            "Calls in flight to a provider, over every shard of every run using it.",
            ["namespace", "provider"],
            registry=registry,
        )

    def observe(self, uid: str, namespace: str, provider: str, running: int) -> None:
        self._running[uid] = (namespace, provider, running)
        self._set(namespace, provider)

    def forget(self, uid: str) -> None:
        found = self._running.pop(uid, None)
        if found is not None:
            self._set(found[0], found[1])

    def _set(self, namespace: str, provider: str) -> None:
        total = sum(r for ns, p, r in self._running.values() if (ns, p) == (namespace, provider))
        self.gauge.labels(namespace, provider).set(total)
