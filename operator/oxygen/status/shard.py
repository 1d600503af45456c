"""A shard's summary is a pure function of its items; worker and operator both use this one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal

from oxygen.api.run import TERMINAL_ITEM_STATUSES
from oxygen.api.runshard import ItemResult, ProviderTally, ShardPhase, ShardSummary

# A worker that started but cannot do its work (a producer it cannot build) puts this in front of the
# reason on its shard's message; the Run's status carries such a message up to the user.
CANNOT_START: str = "worker cannot start: "

# Upper bounds (seconds) of the item latency histogram; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else format(bound, "g")


def latency_buckets(latencies: Iterable[float]) -> dict[str, int]:
    """Cumulative bucket counts, as Prometheus histograms keep them."""
    values = sorted(latencies)
    out: dict[str, int] = {}
    i = 0
    for bound in (*LATENCY_BUCKETS, float("inf")):
        while i < len(values) and values[i] <= bound:
            i += 1
        out[bucket_label(bound)] = i
    return out


def live_items(items: Iterable[ItemResult]) -> list[ItemResult]:
    """Items this shard still answers for (a later round did not take them over)."""
    return [i for i in items if i.superseded_by is None]


def summarize(items: Iterable[ItemResult]) -> ShardSummary:
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    credits = Decimal(0)
    attempts = 0
    cached = 0
    latency = 0.0
    finished_latencies: list[float] = []
    by_provider: dict[str, ProviderTally] = {}
    # A superseded item's attempts carry over into the later round's attemptCount, and a failed or
    # skipped item has no credits, so the live items alone give exact totals.
    for item in live_items(items):
        attempts += item.attempt_count
        latency += item.latency_seconds or 0.0
        credits += item.credits_used
        counts[item.status] += 1
        cached += bool(item.cached) and item.status == "succeeded"
        for call in item.provider_calls or []:
            # A waterfall item: each provider it called counts its calls and credits; the one that
            # answered counts the item (and a hit).
            tally = by_provider.setdefault(call.provider, ProviderTally())
            tally.attempts += call.attempts
            tally.credits_used += call.credits_used
            tally.hits += call.hit
            tally.succeeded += call.hit and item.status == "succeeded"
        if item.provider is not None:
            tally = by_provider.setdefault(item.provider, ProviderTally())
            tally.succeeded += item.status == "succeeded"
            tally.failed += item.status == "failed"
            tally.credits_used += item.credits_used
            tally.attempts += item.attempt_count
            tally.cached += bool(item.cached) and item.status == "succeeded"
            tally.latency_seconds_sum = round(tally.latency_seconds_sum + (item.latency_seconds or 0.0), 6)
        if item.latency_seconds is not None and item.status in ("succeeded", "failed"):
            finished_latencies.append(item.latency_seconds)
        if item.status == "failed":
            errors[item.error_class or "unknown"] += 1
    return ShardSummary(
        pending=counts["pending"],
        running=counts["running"],
        retrying=counts["retrying"],
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        credits_used=credits,
        attempts=attempts,
        latency_seconds_sum=round(latency, 6),
        latency_buckets=latency_buckets(finished_latencies) if finished_latencies else {},
        error_classes=dict(errors),
        cached=cached,
        by_provider=by_provider,
    )


def shard_phase(items: Iterable[ItemResult]) -> ShardPhase:
    """Succeeded once every live item is terminal (item failures are not shard failures)."""
    live = live_items(items)
    if all(i.status in TERMINAL_ITEM_STATUSES for i in live):
        return "Succeeded"
    if any(i.status != "pending" for i in live):
        return "Running"
    return "Pending"
