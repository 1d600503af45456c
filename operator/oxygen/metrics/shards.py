"""Item counters from RunShard status, as the operator observes it (one scrape tells the whole story).

Per shard, the figures below are computed from what the worker recorded; their growth becomes
counter increments (see `deltas` for the baseline rule):

- items finished by status (succeeded, failed by error class, skipped) — `status.summary`;
- attempts and retries made *in this shard* — from the live items, minus the attempts an item
  carried over from an earlier round (`spec.items[].attemptCount`), so a retry round never
  counts an earlier round's attempts again;
- latency buckets (`status.summary.latencyBuckets`) and the latency sum of finished items.

Labels: namespace, provider, status, error_class — never a run, shard, item or row id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from oxygen.metrics.deltas import DeltaTracker, WatchStart, created_before, to_decimal
from oxygen.metrics.inflight import InFlight
from oxygen.metrics.latency import BUCKET_LABELS, ItemLatencyCollector, per_bucket
from oxygen.metrics.tombstones import Tombstones
from oxygen.timefmt import epoch

FINISHED_STATUSES = ("succeeded", "failed", "skipped")
# Error classes come from a fixed vocabulary in the worker; a cap keeps a misbehaving producer bounded.
MAX_ERROR_CLASSES = 32
OTHER_ERROR_CLASS = "other"


class ErrorClasses:
    """The bounded set of error_class label values."""

    def __init__(self, limit: int = MAX_ERROR_CLASSES) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def label(self, raw: str) -> str:
        value = (raw or "unknown")[:63]
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER_ERROR_CLASS
        self._seen.add(value)
        return value


def shard_figures(body: Mapping[str, Any], classes: ErrorClasses) -> dict[str, Decimal]:
    """The cumulative figures of one RunShard, keyed `status:<s>`, `failed:<class>`, `attempts`, …"""
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    summary = status.get("summary") or {}
    figures: dict[str, Decimal] = {
        "status:succeeded": to_decimal(summary.get("succeeded", 0)),
        "status:skipped": to_decimal(summary.get("skipped", 0)),
    }
    failed = int(summary.get("failed", 0) or 0)
    by_class: dict[str, int] = {}
    for raw, count in (summary.get("errorClasses") or {}).items():
        label = classes.label(str(raw))
        by_class[label] = by_class.get(label, 0) + int(count or 0)
    unexplained = failed - sum(by_class.values())
    if unexplained > 0:
        label = classes.label("unknown")
        by_class[label] = by_class.get(label, 0) + unexplained
    for label, count in by_class.items():
        figures[f"failed:{label}"] = Decimal(count)

    carried = {str(i.get("id")): int(i.get("attemptCount", 0) or 0) for i in spec.get("items") or []}
    attempts = retries = 0
    latency_sum = Decimal(0)
    for item in status.get("items") or []:
        if item.get("supersededBy"):
            continue
        made = int(item.get("attemptCount", 0) or 0)
        before = carried.get(str(item.get("id")), 0)
        attempts += max(0, made - before)
        # Every attempt after an item's first one, whichever round made it.
        retries += max(0, max(0, made - 1) - max(0, before - 1))
        if item.get("status") in ("succeeded", "failed") and item.get("latencySeconds") is not None:
            latency_sum += to_decimal(item.get("latencySeconds"))
    figures["attempts"] = Decimal(attempts)
    # Calls the shard's workers made and those the provider answered 429 (summary.calls, throttledCalls).
    figures["calls"] = to_decimal(summary.get("calls", 0))
    figures["throttled"] = to_decimal(summary.get("throttledCalls", 0))
    figures["retries"] = Decimal(retries)
    figures["latency_sum"] = latency_sum
    for label, count in per_bucket(summary.get("latencyBuckets") or {}).items():
        figures[f"bucket:{label}"] = Decimal(count)
    return figures


class ShardMetrics:
    def __init__(
        self, registry: CollectorRegistry, clock: Callable[[], float], watch_start: WatchStart
    ) -> None:
        self._clock = clock
        self._start = watch_start
        self._lock = threading.Lock()
        self._tracker = DeltaTracker()
        self._classes = ErrorClasses()
        self._forgotten = Tombstones(clock)
        # run uid -> shard uids, so forgetting a run forgets its shards.
        self._by_run: dict[str, set[str]] = {}
        self.items_finished = Counter(
            "oxygen_items_finished_total",
            "Items that reached a final status, by status, provider and error class (failed items only).",
            ["namespace", "provider", "status", "error_class"],
            registry=registry,
        )
        self.attempts = Counter(
            "oxygen_item_attempts_total",
            "Producer calls made for items (every attempt, first ones and retries).",
            ["namespace", "provider"],
            registry=registry,
        )
        self.retries = Counter(
            "oxygen_item_retries_total",
            "Producer calls that retried an item (attempts after an item's first).",
            ["namespace", "provider"],
            registry=registry,
        )
        self.requests = Counter(
            "oxygen_provider_requests_total",
            "Calls made to a provider (every attempt, whatever the answer), over every shard using it.",
            ["namespace", "provider"],
            registry=registry,
        )
        self.throttled = Counter(
            "oxygen_provider_throttled_total",
            "Calls a provider answered 429 (rate limited).",
            ["namespace", "provider"],
            registry=registry,
        )
        self.in_flight = InFlight(registry)
        self.latency = ItemLatencyCollector()
        registry.register(self.latency)

    def observe(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        if not uid:
            return
        namespace = str(meta.get("namespace") or "")
        spec = body.get("spec") or {}
        provider = str((spec.get("producer") or {}).get("provider") or "unknown")
        run_uid = str(spec.get("runUid") or "")
        with self._lock:
            if uid in self._forgotten or (run_uid and run_uid in self._forgotten):
                return
            first_sight = uid not in self._tracker
            baseline = first_sight and (
                created_before(epoch(meta.get("creationTimestamp")), self._start.get())
                or bool(meta.get("deletionTimestamp"))
            )
            grown = self._tracker.update(uid, shard_figures(body, self._classes), baseline)
            running = int(((body.get("status") or {}).get("summary") or {}).get("running") or 0)
            self.in_flight.observe(uid, namespace, provider, running)
            if run_uid:
                self._by_run.setdefault(run_uid, set()).add(uid)
        self._count(namespace, provider, grown)

    def _count(self, namespace: str, provider: str, grown: Mapping[str, Decimal]) -> None:
        buckets: dict[str, int] = {}
        for key, delta in grown.items():
            kind, _, rest = key.partition(":")
            if kind == "status":
                self.items_finished.labels(namespace, provider, rest, "").inc(float(delta))
            elif kind == "failed":
                self.items_finished.labels(namespace, provider, "failed", rest).inc(float(delta))
            elif kind == "attempts":
                self.attempts.labels(namespace, provider).inc(float(delta))
            elif kind == "retries":
                self.retries.labels(namespace, provider).inc(float(delta))
            elif kind == "calls":
                self.requests.labels(namespace, provider).inc(float(delta))
            elif kind == "throttled":
                self.throttled.labels(namespace, provider).inc(float(delta))
            elif kind == "bucket" and rest in BUCKET_LABELS:
                buckets[rest] = int(delta)
        self.latency.add(namespace, provider, buckets, grown.get("latency_sum", Decimal(0)))

    def forget(self, uid: str) -> None:
        with self._lock:
            self._tracker.forget(uid)
            self._forgotten.add(uid)
            self.in_flight.forget(uid)

    def forget_run(self, run_uid: str) -> None:
        with self._lock:
            self._forgotten.add(run_uid)
            for uid in self._by_run.pop(run_uid, set()):
                self._tracker.forget(uid)
                self._forgotten.add(uid)
                self.in_flight.forget(uid)

    @property
    def tracked(self) -> int:
        return len(self._tracker)
