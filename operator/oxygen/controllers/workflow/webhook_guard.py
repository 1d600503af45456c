"""What keeps the webhook cheap under a burst: a short-lived cache and a token bucket per workflow.

- `TtlCache`: the Workflow and the token Secret are read at most once per `ttl` seconds per
  namespace/name (a missing one too), so a burst of requests, authenticated or not, does not become
  a burst of API reads. Consequence: a rotated token (or a new, changed or deleted Workflow) takes
  effect within `ttl` seconds (`OXYGEN_WEBHOOK_CACHE_SECONDS`, default 10).
- `RateLimiter`: a token bucket per workflow (`OXYGEN_WEBHOOK_RATE` runs per second, default 1, with
  bursts of `OXYGEN_WEBHOOK_BURST`, default 10). It is spent by authenticated calls only, so callers
  without the token cannot use up a workflow's budget; a call over budget gets 429 and Retry-After.
Both are bounded in size (least recently used entries go first). Pure: time is passed in.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")
Key = tuple[str, str]
MAX_ENTRIES = 4096


@dataclass(frozen=True)
class WebhookSettings:
    cache_seconds: float = 10.0
    rate_per_second: float = 1.0
    burst: int = 10

    @classmethod
    def from_env(cls) -> WebhookSettings:
        return cls(
            cache_seconds=float(os.environ.get("OXYGEN_WEBHOOK_CACHE_SECONDS", "10")),
            rate_per_second=float(os.environ.get("OXYGEN_WEBHOOK_RATE", "1")),
            burst=int(os.environ.get("OXYGEN_WEBHOOK_BURST", "10")),
        )


class TtlCache(Generic[V]):
    """Values (None included: "not found" is cached too) kept for `ttl` seconds."""

    def __init__(self, ttl: float, clock: Callable[[], float], max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[Key, tuple[float, V | None]] = OrderedDict()

    def get(self, key: Key) -> tuple[bool, V | None]:
        """(hit, value): a miss when absent or older than the TTL."""
        entry = self._entries.get(key)
        if entry is None or self.clock() - entry[0] >= self.ttl:
            return False, None
        self._entries.move_to_end(key)
        return True, entry[1]

    def put(self, key: Key, value: V | None) -> None:
        self._entries[key] = (self.clock(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class RateLimiter:
    """A token bucket per key: `burst` calls at once, refilled at `rate` per second."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float], max_entries: int = MAX_ENTRIES
    ) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.clock = clock
        self.max_entries = max_entries
        self._buckets: OrderedDict[Key, tuple[float, float]] = OrderedDict()

    def take(self, key: Key) -> float:
        """0 when the call may go ahead (a token is spent), else the seconds until one is available."""
        now = self.clock()
        tokens, at = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_entries:
                self._buckets.popitem(last=False)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate if self.rate > 0 else math.inf


def retry_after(seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds))) if math.isfinite(seconds) else "3600"
