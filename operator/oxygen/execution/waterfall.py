"""The waterfall producer: per item, call providers in order until one answers non-empty.

`until: nonEmpty` (the only mode): an answer is empty when it is null, {} or []. A call that fails is
retried by the shard's retry policy (attempts, backoff, Retry-After) against that provider alone, then
the next provider is tried; a permanent failure moves on at once. The item's outputs are
`{"provider": <name of the provider that answered, or null>, "result": <its answer>}`: with no
non-empty answer, the last answer (empty) is the result and the provider null; if every provider
failed, the item fails with the last error.

Once the worker observes a stop (SIGTERM, a pause), no call starts from then on: an item in the
middle of its waterfall gives up with `CallAbandoned` (the next pod redoes it) instead of moving on
to the next provider or retrying, and a backoff wakes at once (`watch_stop`).

Credits are charged for calls made, never for the run's guess: each answered call costs the
provider's `X-Credits-Used`, else its price; a failed call costs nothing. Each provider's calls,
credits and whether it answered go into the item (`providerCalls`), whence the summaries' tallies.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from oxygen.api.run import Retry
from oxygen.api.runshard import ProviderCall
from oxygen.execution.item_calls import (
    CallAbandoned,
    ItemCall,
    ItemProducer,
    PermanentError,
    ProducerError,
    ProducerResult,
    RetryableError,
)
from oxygen.execution.shard_items import backoff_delay


def is_empty(outputs: Any) -> bool:
    return outputs is None or outputs == {} or outputs == []


@dataclass(frozen=True)
class WaterfallProvider:
    name: str
    producer: ItemProducer
    price: Decimal
    retry: Retry


@dataclass(frozen=True)
class WaterfallResult(ProducerResult):
    """The result of a waterfall item: its outputs, its cost, and each provider's calls."""

    calls: tuple[ProviderCall, ...] = ()


@dataclass
class WaterfallProducer:
    providers: Sequence[WaterfallProvider]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    # The worker's "a stop was observed" check; never halted when no worker wires it in.
    halted: Callable[[], bool] = lambda: False

    def watch_stop(self, halted: Callable[[], bool], sleep: Callable[[float], Awaitable[None]]) -> None:
        """Follow the worker's stop: its halted check, and its sleep that wakes when a stop comes."""
        self.halted = halted
        self.sleep = sleep

    async def call(self, call: ItemCall) -> ProducerResult:
        calls: list[ProviderCall] = []
        last: ProducerResult | None = None
        last_error: ProducerError | None = None
        for provider in self.providers:
            tally = ProviderCall(provider=provider.name)
            calls.append(tally)
            answer, error = await self._call_one(provider, call, tally)
            if error is not None:
                last_error = error
                continue
            assert answer is not None
            last = answer
            if not is_empty(answer.outputs):
                tally.hit = True
                return self._result(provider.name, answer, calls)
        if last is not None:
            return self._result(None, last, calls)
        assert last_error is not None
        raise PermanentError(
            f"every provider of the waterfall failed; last: {last_error.message}", last_error.error_class
        )

    def _result(self, name: str | None, answer: ProducerResult, calls: list[ProviderCall]) -> WaterfallResult:
        cost = sum((c.credits_used for c in calls), Decimal(0))
        return WaterfallResult(
            outputs={"provider": name, "result": answer.outputs}, cost=cost, calls=tuple(calls)
        )

    async def _call_one(
        self, provider: WaterfallProvider, call: ItemCall, tally: ProviderCall
    ) -> tuple[ProducerResult | None, ProducerError | None]:
        """One provider, with the shard's retries: (its answer, None) or (None, its last error)."""
        for n in range(1, provider.retry.max_attempts + 1):
            if self.halted():
                # A stop was observed while this item was between calls: none may start now.
                raise CallAbandoned()
            tally.attempts += 1
            try:
                answer = await provider.producer.call(call)
            except CallAbandoned:
                raise
            except RetryableError as err:
                if n == provider.retry.max_attempts:
                    return None, err
                await self.sleep(
                    backoff_delay(provider.retry.backoff_seconds, n, self.rng, retry_after=err.retry_after)
                )
                continue
            except ProducerError as err:
                return None, err
            tally.credits_used += answer.cost if answer.cost is not None else provider.price
            return answer, None
        raise AssertionError("unreachable: max_attempts >= 1")

    async def close(self) -> None:
        for provider in self.providers:
            await provider.producer.close()
