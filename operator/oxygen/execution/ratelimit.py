"""A shard's share of its Provider's global limits: a token bucket (rps, burst) and an in-flight cap.

The operator is the single allocator: it writes each active shard's share into the shard's annotation
`oxygen.dev/rate-share` (JSON {rps, burst, inFlight, epoch}); the worker re-reads it every second (one
GET of its own shard) and adjusts live. The worker cannot write metadata, so it cannot raise its own
share. A Provider shard without a share yet (annotation absent, or epoch 0) waits for one, at most
`WAIT_FOR_SHARE_SECONDS`, then starts at 1 request/s. A shard without a Provider is unlimited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from oxygen.api.labels import ANNOTATION_RATE_SHARE, LABEL_PROVIDER
from oxygen.api.runshard import RunShard

log = logging.getLogger("oxygen.worker")

REFRESH_SECONDS: Final = 1.0
WAITING_REFRESH_SECONDS: Final = 0.5
WAIT_FOR_SHARE_SECONDS: Final = 10.0

Clock = Callable[[], float]
ReadShare = Callable[[], "str | None"]


@dataclass(frozen=True)
class Share:
    """None: that dimension is unlimited (the Provider declares no such limit)."""

    rps: float | None
    burst: int
    in_flight: int | None
    epoch: int

    def wire(self) -> str:
        return json.dumps(
            {"rps": self.rps, "burst": self.burst, "inFlight": self.in_flight, "epoch": self.epoch},
            separators=(",", ":"),
        )

    def same_limits(self, other: Share | None) -> bool:
        return other is not None and (self.rps, self.burst, self.in_flight) == (
            other.rps,
            other.burst,
            other.in_flight,
        )


FALLBACK: Final = Share(rps=1.0, burst=1, in_flight=1, epoch=0)


def parse_share(raw: str | None) -> Share | None:
    """The share in an annotation's text; None when absent, unreadable, or the placeholder (epoch 0)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        rps, in_flight = data.get("rps"), data.get("inFlight")
        share = Share(
            rps=None if rps is None else max(0.0, float(rps)),
            burst=max(0, int(data.get("burst") or 0)),
            in_flight=None if in_flight is None else max(0, int(in_flight)),
            epoch=int(data.get("epoch") or 0),
        )
    except (ValueError, TypeError, AttributeError):
        return None
    return share if share.epoch > 0 else None


def share_of(annotations: Mapping[str, str]) -> Share | None:
    return parse_share(annotations.get(ANNOTATION_RATE_SHARE))


class TokenBucket:
    """`rps` tokens a second, at most `burst` saved up; `rps` None: no limit."""

    def __init__(self, rps: float | None, burst: int, clock: Clock) -> None:
        self._clock = clock
        # A share of burst 0 (more shards than the Provider's burst) still saves up the one token a
        # call needs: its rate share alone paces it.
        self.rps, self.burst = rps, max(1, burst)
        self._tokens = float(burst)
        self._at = clock()

    def set(self, rps: float | None, burst: int) -> None:
        self._refill()
        self.rps, self.burst = rps, max(1, burst)
        self._tokens = min(self._tokens, float(burst))

    def _refill(self) -> None:
        now = self._clock()
        if self.rps is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rps)
        self._at = now

    def take(self) -> float:
        """Take a token and return 0, or return how long until one is there (nothing taken)."""
        if self.rps is None:
            return 0.0
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        if self.rps <= 0:
            return math.inf
        return (1.0 - self._tokens) / self.rps


class CallLimiter:
    """What every call of a shard passes before it starts (`acquire`) and after it ends (`release`)."""

    async def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None

    async def follow(self) -> None:
        """Keep the limits current (a task for the shard's whole run)."""
        return None

    @property
    def epoch(self) -> int | None:
        """The epoch of the share kept to (reported in status, so the operator knows it was read)."""
        return None


class ShareLimiter(CallLimiter):
    def __init__(
        self,
        read: ReadShare,
        *,
        clock: Clock = time.monotonic,
        initial: Share | None = None,
        wait_for_share: float = WAIT_FOR_SHARE_SECONDS,
    ) -> None:
        self._read = read
        self._clock = clock
        self.share = initial
        self._deadline = clock() + wait_for_share
        limits = initial or FALLBACK
        self.bucket = TokenBucket(limits.rps, limits.burst, clock)
        self.in_flight = 0
        self._changed = asyncio.Event()

    @property
    def epoch(self) -> int | None:
        return None if self.share is None else self.share.epoch

    def limits(self) -> Share | None:
        """The share in force; None while waiting for the first one."""
        if self.share is not None:
            return self.share
        return FALLBACK if self._clock() >= self._deadline else None

    def adopt(self, share: Share | None) -> None:
        if share is None or share.same_limits(self.share):
            if share is not None:
                self.share = share
            return
        log.info("rate share: %s", share.wire())
        self.share = share
        self.bucket.set(share.rps, share.burst)
        self._changed.set()

    async def _wait(self, seconds: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), min(seconds, WAITING_REFRESH_SECONDS))

    async def acquire(self) -> None:
        while True:
            limits = self.limits()
            if limits is None:
                await self._wait(WAITING_REFRESH_SECONDS)
                continue
            if self.share is None and self.bucket.rps != limits.rps:
                self.bucket.set(limits.rps, limits.burst)
            if limits.in_flight is not None and self.in_flight >= limits.in_flight:
                await self._wait(WAITING_REFRESH_SECONDS)
                continue
            delay = self.bucket.take()
            if delay > 0:
                await self._wait(delay)
                continue
            # No await between the check and the count: a cancelled waiter never holds a slot.
            self.in_flight += 1
            return

    def release(self) -> None:
        self.in_flight -= 1
        self._changed.set()

    async def follow(self) -> None:
        while True:
            try:
                raw = await asyncio.to_thread(self._read)
            except Exception as exc:  # keep the last share; the next read may succeed
                log.warning("reading the rate share: %s", exc.__class__.__name__)
            else:
                self.adopt(parse_share(raw))
            await asyncio.sleep(WAITING_REFRESH_SECONDS if self.share is None else REFRESH_SECONDS)


def limiter_for(shard: RunShard, read: ReadShare) -> CallLimiter:
    """A shard labelled with a Provider follows its share; any other shard is unlimited."""
    if not shard.metadata.labels.get(LABEL_PROVIDER):
        return CallLimiter()
    return ShareLimiter(read, initial=share_of(shard.metadata.annotations))
