"""Item latency per provider, as a Prometheus histogram assembled from the workers' bucket counts.

Workers record cumulative bucket counts per shard (`status.summary.latencyBuckets`); the shard
observer feeds the per-bucket growth here. Bucket counts are kept non-cumulative and accumulated
at collection, so a clamped (ignored) negative delta can never make the histogram non-monotonic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from decimal import Decimal

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from oxygen.status.shard import LATENCY_BUCKETS, bucket_label

BUCKET_LABELS: tuple[str, ...] = (*(bucket_label(b) for b in LATENCY_BUCKETS), "+Inf")
LABELS = ("namespace", "provider")


def per_bucket(cumulative: Mapping[str, int]) -> dict[str, int]:
    """Cumulative `{"0.01": 1, …, "+Inf": n}` to counts per bucket (missing buckets: same as previous)."""
    out: dict[str, int] = {}
    previous = 0
    for label in BUCKET_LABELS:
        value = int(cumulative.get(label, previous) or 0)
        out[label] = max(0, value - previous)
        previous = max(previous, value)
    return out


class ItemLatencyCollector(Collector):
    name = "oxygen_item_latency_seconds"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str], dict[str, int]] = {}
        self._sums: dict[tuple[str, str], Decimal] = {}

    def add(
        self, namespace: str, provider: str, bucket_growth: Mapping[str, int], sum_growth: Decimal
    ) -> None:
        if not any(bucket_growth.values()) and not sum_growth:
            return
        key = (namespace, provider)
        with self._lock:
            buckets = self._buckets.setdefault(key, dict.fromkeys(BUCKET_LABELS, 0))
            for label, count in bucket_growth.items():
                if label in buckets and count > 0:
                    buckets[label] += count
            self._sums[key] = self._sums.get(key, Decimal(0)) + max(Decimal(0), sum_growth)

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self.name,
            "Latency of finished items' last attempts, per provider (from the workers' records).",
            labels=LABELS,
        )
        with self._lock:
            snapshot = [(k, dict(v), self._sums.get(k, Decimal(0))) for k, v in sorted(self._buckets.items())]
        for key, buckets, total in snapshot:
            running = 0
            cumulative: list[tuple[str, float]] = []
            for label in BUCKET_LABELS:
                running += buckets[label]
                cumulative.append((label, float(running)))
            family.add_metric(list(key), cumulative, float(total))
        yield family

    def describe(self) -> Iterator[Metric]:
        yield HistogramMetricFamily(self.name, "", labels=LABELS)
