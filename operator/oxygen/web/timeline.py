"""Items finished over time by status, bucketed server-side (the page never lists every item)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from oxygen.metrics.timeparse import epoch

TIMELINE_STATUSES = ("succeeded", "failed", "skipped")
DEFAULT_BUCKETS = 40


@dataclass(frozen=True)
class Timeline:
    start: float
    end: float
    bucket_seconds: float
    # One dict per bucket: status -> items finished in it.
    buckets: tuple[Mapping[str, int], ...]

    @property
    def peak(self) -> int:
        return max((sum(b.values()) for b in self.buckets), default=0)

    def total(self, status: str) -> int:
        return sum(b.get(status, 0) for b in self.buckets)


def finishes(shards: Iterable[Mapping[str, Any]]) -> list[tuple[float, str]]:
    """(finished at, status) of every live finished item of the shards."""
    out: list[tuple[float, str]] = []
    for shard in shards:
        for item in (shard.get("status") or {}).get("items") or []:
            if item.get("supersededBy") or item.get("status") not in TIMELINE_STATUSES:
                continue
            at = epoch(item.get("finishedAt"))
            if at is not None:
                out.append((at, str(item["status"])))
    return out


def bucket(
    events: list[tuple[float, str]],
    start: float | None,
    end: float | None,
    buckets: int = DEFAULT_BUCKETS,
) -> Timeline:
    return bucket_counted([(at, status, 1) for at, status in events], start, end, buckets)


def bucket_counted(
    events: list[tuple[float, str, int]],
    start: float | None,
    end: float | None,
    buckets: int = DEFAULT_BUCKETS,
) -> Timeline:
    """`bucket` for (time, status, how many) triples: the item store's per-second counts."""
    times = [t for t, _, _ in events]
    lo = start if start is not None else min(times, default=0.0)
    hi = end if end is not None else max(times, default=lo)
    if times:
        lo, hi = min(lo, *times), max(hi, *times)
    span = max(hi - lo, 1.0)
    width = span / buckets
    rows: list[dict[str, int]] = [dict.fromkeys(TIMELINE_STATUSES, 0) for _ in range(buckets)]
    for at, status, count in events:
        index = min(buckets - 1, int((at - lo) / width))
        rows[index][status] += count
    return Timeline(start=lo, end=lo + span, bucket_seconds=width, buckets=tuple(rows))
