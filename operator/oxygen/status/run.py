"""A Run's status, derived from its shards and Jobs. Pure: the same inputs give the same status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from oxygen.api.common import Condition
from oxygen.api.run import (
    TERMINAL_PHASES,
    FailedItem,
    ProviderSummary,
    RunPhase,
    RunSpec,
    RunStatus,
    ShardCounts,
)
from oxygen.status.shard import CANNOT_START
from oxygen.status.views import JobView, ShardView

FAILED_ITEMS_SAMPLE = 20


@dataclass(frozen=True)
class ItemCounts:
    pending: int = 0
    running: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    credits_used: Decimal = Decimal(0)

    @property
    def unfinished(self) -> int:
        return self.pending + self.running + self.retrying


def item_counts(shards: Iterable[ShardView], items_total: int) -> ItemCounts:
    pending = running = retrying = succeeded = failed = skipped = 0
    credits = Decimal(0)
    for shard in shards:
        s = shard.summary
        pending += s.pending
        running += s.running
        retrying += s.retrying
        succeeded += s.succeeded
        failed += s.failed
        skipped += s.skipped
        credits += s.credits_used
    # Items of shards not created yet (or not seen yet) are pending.
    seen = pending + running + retrying + succeeded + failed + skipped
    pending += max(0, items_total - seen)
    return ItemCounts(pending, running, retrying, succeeded, failed, skipped, credits)


def items_seen(shards: Iterable[ShardView]) -> int:
    return sum(
        s.summary.pending
        + s.summary.running
        + s.summary.retrying
        + s.summary.succeeded
        + s.summary.failed
        + s.summary.skipped
        for s in shards
    )


def shard_counts(shards: Iterable[ShardView], jobs: Mapping[str, JobView]) -> ShardCounts:
    total = active = succeeded = failed = 0
    for shard in shards:
        total += 1
        job = jobs.get(shard.name)
        if job is not None and job.has_pods:
            active += 1
        if shard.phase == "Succeeded":
            if shard.summary.failed:
                failed += 1
            else:
                succeeded += 1
        elif shard.phase == "Failed":
            failed += 1
    return ShardCounts(total=total, active=active, succeeded=succeeded, failed=failed)


def failed_sample(shards: Iterable[ShardView]) -> list[FailedItem]:
    ordered = sorted(shards, key=lambda s: (s.round, s.index))
    sample: list[FailedItem] = []
    for shard in ordered:
        for item in shard.failed_sample:
            if len(sample) >= FAILED_ITEMS_SAMPLE:
                return sample
            sample.append(item)
    return sample


def provider_summaries(shards: Iterable[ShardView]) -> list[ProviderSummary]:
    by_provider: dict[str, ProviderSummary] = {}
    for shard in shards:
        if not shard.execute and not shard.summary.attempts and not shard.summary.cached:
            continue
        for name, tally in shard.summary.by_provider.items():
            p = by_provider.setdefault(name, ProviderSummary(provider=name))
            p.items_succeeded += tally.succeeded
            p.items_failed += tally.failed
            p.credits_used += tally.credits_used
            p.attempts += tally.attempts
            p.hits += tally.hits
            p.cached += tally.cached
            p.latency_seconds_sum = round(p.latency_seconds_sum + tally.latency_seconds_sum, 6)
        if shard.summary.by_provider:
            continue
        p = by_provider.setdefault(shard.provider, ProviderSummary(provider=shard.provider))
        p.items_succeeded += shard.summary.succeeded
        p.items_failed += shard.summary.failed
        p.credits_used += shard.summary.credits_used
        p.attempts += shard.summary.attempts
        p.latency_seconds_sum = round(p.latency_seconds_sum + shard.summary.latency_seconds_sum, 6)
    return [by_provider[k] for k in sorted(by_provider)]


def derive_phase(
    spec: RunSpec,
    previous: RunStatus,
    counts: ItemCounts,
    jobs: Mapping[str, JobView],
    planned: bool,
    cleaned_up: bool,
) -> RunPhase:
    """The run's phase from what is observed; run-level failure and cancellation are sticky."""
    if previous.phase in ("failed", "canceled"):
        return previous.phase
    if spec.cancel:
        return "canceled" if cleaned_up else previous.phase
    if not planned:
        return "queued"
    if counts.unfinished == 0:
        return "completed" if counts.failed else "succeeded"
    if spec.paused:
        return "paused" if not any(j.has_pods for j in jobs.values()) else previous.phase
    if not jobs and previous.phase == "queued":
        return "queued"
    return "running"


def worker_problem(shards: Iterable[ShardView]) -> str:
    """What a worker that could not start wrote on its shard (the first such shard, and how many more),
    so the Run's message and conditions say why instead of only counting failed items."""
    messages = sorted((s.name, s.message) for s in shards if s.message and s.message.startswith(CANNOT_START))
    if not messages:
        return ""
    name, text = messages[0]
    more = f" (and {len(messages) - 1} more shard(s))" if len(messages) > 1 else ""
    return f"RunShard {name}: {text}{more}"


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: bool,
    reason: str,
    message: str,
    now: str,
    generation: int,
) -> list[Condition]:
    """Replace one condition, keeping lastTransitionTime when its status did not change."""
    text = "True" if status else "False"
    old = next((c for c in conditions if c.type == type_), None)
    since = old.last_transition_time if old is not None and old.status == text else now
    new = Condition(
        type=type_,
        status=text,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type_] + [new]


def conditions_for(
    phase: RunPhase, counts: ItemCounts, message: str, previous: list[Condition], now: str, generation: int
) -> list[Condition]:
    """Succeeded/Failed/Complete/Ready/Paused, so `kubectl wait --for=condition=…` and kstatus work."""
    finished = phase in TERMINAL_PHASES
    summary = (
        f"{counts.succeeded} succeeded, {counts.failed} failed, {counts.skipped} skipped, "
        f"{counts.unfinished} unfinished"
    )
    reason = {
        "queued": "Queued",
        "running": "Running",
        "paused": "Paused",
        "succeeded": "AllItemsSucceeded",
        "completed": "ItemsFailed",
        "failed": "RunFailed",
        "canceled": "Canceled",
    }[phase]
    text = message or summary
    out = list(previous)
    out = set_condition(out, "Complete", finished, reason, text, now, generation)
    out = set_condition(out, "Succeeded", phase == "succeeded", reason, text, now, generation)
    out = set_condition(out, "Failed", phase == "failed", reason, text, now, generation)
    out = set_condition(out, "Ready", phase == "succeeded", reason, text, now, generation)
    out = set_condition(out, "Paused", phase == "paused", reason, text, now, generation)
    # kstatus: Reconciling while work is in progress, Stalled when the run cannot proceed.
    out = set_condition(out, "Reconciling", not finished and phase != "paused", reason, text, now, generation)
    out = set_condition(out, "Stalled", phase == "failed", reason, text, now, generation)
    return out
