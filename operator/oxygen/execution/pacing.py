"""What the calls of one shard share so that a failing provider does not get a retry storm.

Each item keeps its own backoff (exponential, jittered, at least the reply's `Retry-After`). On top,
the shard has one gate, a time before which none of its calls starts:
- a reply with `Retry-After` closes the gate for that long: the provider asked the caller, not the
  item, to slow down, so the whole shard waits;
- when a whole window of consecutive calls (the shard's concurrency) failed retryably, the provider
  is failing across the board: the gate closes for the shard's backoff, which doubles while this
  goes on and is forgotten at the first answer that is not a retryable error.
A shard running one item at a time (concurrency 1) already waits out each item's backoff, so only
`Retry-After` moves its gate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from oxygen.execution.shard_items import MAX_RETRY_AFTER_SECONDS, backoff_delay


class ShardPace:
    def __init__(
        self, backoff_seconds: float, concurrency: int, rng: random.Random, clock: Callable[[], float]
    ) -> None:
        self._base = backoff_seconds
        self._window = concurrency
        self._rng = rng
        self._clock = clock
        self.not_before = -math.inf
        self._streak = 0
        self._level = 0

    def answered(self) -> None:
        """A success or a permanent error: the provider is answering."""
        self._streak = 0
        self._level = 0

    def failed(self, retry_after: float | None) -> None:
        """A retryable error (the attempt is over, whether or not the item is retried)."""
        now = self._clock()
        if retry_after is not None:
            self.not_before = max(self.not_before, now + min(retry_after, MAX_RETRY_AFTER_SECONDS))
        self._streak += 1
        if self._window > 1 and self._streak >= self._window:
            self._streak = 0
            self._level += 1
            self.not_before = max(self.not_before, now + backoff_delay(self._base, self._level, self._rng))

    def wait_seconds(self) -> float:
        """How long a call about to start must still wait (0 when the gate is open)."""
        return max(0.0, self.not_before - self._clock())
