"""A shard's summary is a pure function of its items; worker and operator both use this one."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from decimal import Decimal

from oxygen.api.run import TERMINAL_ITEM_STATUSES
from oxygen.api.runshard import ItemResult, ShardPhase, ShardSummary


def live_items(items: Iterable[ItemResult]) -> list[ItemResult]:
    """Items this shard still answers for (a later round did not take them over)."""
    return [i for i in items if i.superseded_by is None]


def summarize(items: Iterable[ItemResult]) -> ShardSummary:
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    credits = Decimal(0)
    attempts = 0
    latency = 0.0
    # A superseded item's attempts carry over into the later round's attemptCount, and a failed or
    # skipped item has no credits, so the live items alone give exact totals.
    for item in live_items(items):
        attempts += item.attempt_count
        latency += item.latency_seconds or 0.0
        credits += item.credits_used
        counts[item.status] += 1
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
        error_classes=dict(errors),
    )


def shard_phase(items: Iterable[ItemResult]) -> ShardPhase:
    """Succeeded once every live item is terminal (item failures are not shard failures)."""
    live = live_items(items)
    if all(i.status in TERMINAL_ITEM_STATUSES for i in live):
        return "Succeeded"
    if any(i.status != "pending" for i in live):
        return "Running"
    return "Pending"
