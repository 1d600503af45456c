"""The worker inside a shard's Job pod: calls the producer per item and writes results back.

`ShardExecutor` is the core and does no Kubernetes I/O: it gets the RunShard, a producer, a clock,
a sleep and a `flush(status)` callback. `oxygen.execution.pod` is the thin shell around it (read the
shard, patch its status subresource, signals, exit codes).

Up to `concurrency` independent items are in flight at once on one event loop (a fixed set of
worker coroutines draining the shard's queue); workflow steps and ingestion pages stay in order.
Status goes out in whole-shard snapshots at most once per flush interval, from a thread, so a slow
API server never holds up the calls.

Delivery is at-least-once: a pod killed mid-call leaves the item `running`, and the next pod calls
it again; the producer's Idempotency-Key (run uid + item id) lets the provider deduplicate. A kill
repeats at most the calls in flight plus those finished since the last status write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from oxygen.api.run import Producer
from oxygen.api.runshard import RunShard, RunShardStatus
from oxygen.execution.item_calls import (
    CallAbandoned,
    ItemCall,
    ItemProducer,
    PermanentError,
    ProducerError,
    ProducerResult,
    RetryableError,
)
from oxygen.execution.pacing import ShardPace
from oxygen.execution.producers import concurrency_of
from oxygen.execution.ratelimit import CallLimiter
from oxygen.execution.redaction import Redactor
from oxygen.execution.shard_items import (
    backoff_delay,
    needs_execution,
    rfc3339,
)
from oxygen.execution.shard_ledger import ShardLedger
from oxygen.execution.templates import TemplateError, render
from oxygen.execution.waterfall import WaterfallProducer
from oxygen.status.shard import shard_phase, summarize

log = logging.getLogger("oxygen.worker")

DEFAULT_FLUSH_INTERVAL: Final = 1.0
# On SIGTERM the in-flight calls may finish within this; well inside a pod's 30 s termination grace.
DEFAULT_STOP_GRACE_SECONDS: Final = 5.0
# A RunShard must stay far below the API server's ~1.5 MiB object limit; the spec (inputs) shares it.
DEFAULT_MAX_STATUS_BYTES: Final = 900 * 1024
# How often the loop looks for a due status write while every call is slow.
FLUSH_TICK_SECONDS: Final = 0.25
# Once max(concurrency, EARLY_FLUSH_RESULTS) results wait unwritten, the status goes out early, but never
# more often than every EARLY_FLUSH_GAP_SECONDS: a SIGKILL then repeats about that many calls plus those
# of one write's round trip instead of a whole flush interval's, while a shard still costs at most
# 1/EARLY_FLUSH_GAP_SECONDS writes a second (and slow shards keep one write per flush interval).
EARLY_FLUSH_RESULTS: Final = 8
EARLY_FLUSH_GAP_SECONDS: Final = 0.25


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Flush = Callable[[RunShardStatus], None]


class _Abandoned:
    """The call was given up because the worker is stopping."""


_ABANDONED: Final = _Abandoned()
CallOutcome = ProducerResult | ProducerError | _Abandoned


@dataclass(frozen=True, repr=False)
class ExecutionOutcome:
    # True when a stop request left items unexecuted (the pod must exit non-zero so it is replaced).
    stopped: bool
    calls: int
    flushes: int
    status: RunShardStatus

    def __repr__(self) -> str:
        # Short: asyncio.run formats its main task's result while it restores the SIGINT handler, and
        # the repr of a 10,000-item status costs a second of CPU.
        return f"ExecutionOutcome(stopped={self.stopped}, calls={self.calls}, flushes={self.flushes})"


class ShardExecutor:
    """Executes a shard's items, `concurrency` at a time, and reports their status through `flush`."""

    def __init__(
        self,
        shard: RunShard,
        producer: ItemProducer,
        flush: Flush,
        *,
        clock: Clock = time.time,
        sleep: Sleep | None = None,
        stop: threading.Event | None = None,
        abandon: threading.Event | None = None,
        stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        worker_name: str | None = None,
        rng: random.Random | None = None,
        max_status_bytes: int = DEFAULT_MAX_STATUS_BYTES,
        make_producer: Callable[[Producer, str], ItemProducer] | None = None,
        poll_interval: float = 0.02,
        redactor: Redactor | None = None,
        concurrency: int | None = None,
        limiter: CallLimiter | None = None,
    ) -> None:
        self._spec = shard.spec
        self._producer = producer
        self._flush = flush
        self._clock = clock
        # Set from outside (a signal handler): no call starts once it is seen.
        self.stop = stop if stop is not None else threading.Event()
        # Set when in-flight calls are given up; a producer that can cancel (a command) listens to it.
        self.abandon = abandon if abandon is not None else threading.Event()
        self._stop_grace = stop_grace_seconds
        # The default sleep wakes on stop, so a pod in backoff exits within a fraction of a second.
        self._sleep: Sleep = sleep if sleep is not None else self._interruptible_sleep
        self._watch_stop_in(producer)
        self._flush_interval = flush_interval
        self._worker = worker_name
        self._rng = rng if rng is not None else random.Random()
        self._poll_interval = poll_interval
        # The secret values this pod holds: none of them is ever written to status (outputs, errors).
        self._redactor = redactor if redactor is not None else Redactor()
        self.concurrency = concurrency if concurrency is not None else concurrency_of(shard.spec.producer)
        self._pace = ShardPace(shard.spec.retry.backoff_seconds, self.concurrency, self._rng, clock)
        self._ledger = ShardLedger(
            shard, clock=clock, redactor=self._redactor, max_status_bytes=max_status_bytes
        )
        self._producers: dict[int, ItemProducer] = {}
        # Workflow steps each name their own producer; they are built on first use.
        self._make_producer = make_producer
        self._started_at = shard.status.started_at
        self._finished_at: str | None = None
        self._message: str | None = None
        self._last_flush = -math.inf
        self._settled_at_flush = 0
        self._flushes = 0
        self._written: tuple[object, ...] | None = None
        self._calls = 0
        # The shard's share of its Provider's global limits (ratelimit.py); unlimited without one.
        self._limit = limiter if limiter is not None else CallLimiter()
        self._throttled = 0
        self._counted = (shard.status.summary.calls, shard.status.summary.throttled_calls)
        self._in_flight = 0
        self._stopping: asyncio.Event | None = None
        self._flush_task: asyncio.Future[None] | None = None
        # A failed status write ends the run: the worker cannot report, so it must not call on.
        self._failure: BaseException | None = None

    # -- stopping ---------------------------------------------------------------------------------

    def _halted(self) -> bool:
        return self.stop.is_set() or self._failure is not None

    def _watch_stop_in(self, producer: ItemProducer) -> ItemProducer:
        # A waterfall makes several calls per item: after a stop none of them may start.
        if isinstance(producer, WaterfallProducer):
            producer.watch_stop(self._halted, self._sleep)
        return producer

    async def _watch_stop(self, stopping: asyncio.Event) -> None:
        while not self._halted():
            await asyncio.sleep(self._poll_interval)
        stopping.set()
        if self.stop.is_set():
            # The tests wait for this line: once it is written, no call of this pod starts any more.
            log.info(
                "stop observed: no call starts from now; %d call(s) in flight get up to %gs to finish",
                self._in_flight,
                self._stop_grace,
            )

    async def _interruptible_sleep(self, seconds: float) -> None:
        if self._stopping is None or self._halted():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    # -- status -----------------------------------------------------------------------------------

    def snapshot(self) -> RunShardStatus:
        items = list(self._ledger.items)
        return RunShardStatus(
            phase=shard_phase(items),
            items=items,
            summary=summarize(items).model_copy(
                update={
                    "calls": self._counted[0] + self._calls,
                    "throttled_calls": self._counted[1] + self._throttled,
                }
            ),
            worker=self._worker,
            rate_share_epoch=self._limit.epoch,
            message=self._message,
            started_at=self._started_at,
            finished_at=self._finished_at,
        )

    def _change_key(self) -> tuple[object, ...]:
        """What a status write carries beyond time: equal keys, equal statuses."""
        return (
            self._ledger.version,
            self._calls,
            self._throttled,
            self._limit.epoch,
            self._message,
            self._finished_at,
        )

    async def _flush_now(self) -> None:
        if self._flush_task is not None and not self._flush_task.done():
            await asyncio.shield(self._flush_task)
        snapshot = self.snapshot()
        self._last_flush = self._clock()
        self._settled_at_flush = self._ledger.settled
        self._flushes += 1
        self._written = self._change_key()
        # Shielded: a worker cancelled while it waits does not leave an older snapshot to land later.
        self._flush_task = asyncio.ensure_future(asyncio.to_thread(self._flush, snapshot))
        await asyncio.shield(self._flush_task)

    def _flush_due(self) -> bool:
        since = self._clock() - self._last_flush
        unwritten = self._ledger.settled - self._settled_at_flush
        early = unwritten >= max(self.concurrency, EARLY_FLUSH_RESULTS) and since >= min(
            EARLY_FLUSH_GAP_SECONDS, self._flush_interval
        )
        return since >= self._flush_interval or early

    async def _maybe_flush(self) -> None:
        if not self._flush_due() or self._failure is not None:
            return
        if self._flush_task is not None and not self._flush_task.done():
            return
        if self._change_key() == self._written:
            # Nothing changed (calls held by a slow provider): no write, so a waiting shard costs the
            # API server nothing; the timer restarts so the comparison runs once per interval.
            self._last_flush = self._clock()
            return
        try:
            await self._flush_now()
        except Exception as exc:
            self._failure = exc

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(FLUSH_TICK_SECONDS, self._flush_interval))
            await self._maybe_flush()

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> ExecutionOutcome:
        return asyncio.run(self.run_async())

    async def run_async(self) -> ExecutionOutcome:
        start = self._clock()
        self._started_at = self._started_at or rfc3339(start)
        # The first write comes one interval in, so a fast shard costs a single write.
        self._last_flush = start
        self._message = None
        self._stopping = asyncio.Event()
        helpers = [
            asyncio.create_task(self._watch_stop(self._stopping)),
            asyncio.create_task(self._tick()),
            asyncio.create_task(self._limit.follow()),
        ]
        crash: Exception | None = None
        try:
            if not self._spec.execute:
                self._message = self._spec.skip_reason or "not executed (execute: false)"
                self._ledger.skip([i for i, item in enumerate(self._ledger.items) if needs_execution(item)])
            elif self._spec.sequence == "independent":
                queue = deque(i for i, item in enumerate(self._ledger.items) if needs_execution(item))
                width = min(self.concurrency, len(queue))
                await self._run_workers([self._drain(queue) for _ in range(width)])
            else:
                await self._run_workers([self._walk()])
        except Exception as exc:
            crash = exc
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._close_producers()
        if self._failure is not None:
            # The status write itself failed (the API server, or a shard replaced by a namesake):
            # nothing more can be written.
            raise self._failure
        if crash is not None:
            # Any other failure still writes what was done, so the next pod does not repeat those calls.
            self._message = f"worker failed: {crash.__class__.__name__}"
            try:
                await self._flush_now()
            except Exception as exc:
                log.error("writing the status after %s: %s", crash.__class__.__name__, exc)
            raise crash
        left = sum(1 for item in self._ledger.items if needs_execution(item))
        stopped = self.stop.is_set() and left > 0
        if stopped:
            self._message = f"worker stopped; {left} item(s) left for the next pod"
        elif shard_phase(self._ledger.items) == "Succeeded":
            self._finished_at = self._ledger.now()
        await self._flush_now()
        return ExecutionOutcome(
            stopped=stopped, calls=self._calls, flushes=self._flushes, status=self.snapshot()
        )

    async def _run_workers(self, coroutines: list[Awaitable[None]]) -> None:
        """Run the workers; once a stop is seen, in-flight calls get the grace, then are abandoned."""
        assert self._stopping is not None
        workers: set[asyncio.Future[Any]] = {asyncio.ensure_future(c) for c in coroutines}
        stopping: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.wait())
        try:
            pending = set(workers)
            while pending and not stopping.done():
                _, pending = await asyncio.wait(pending | {stopping}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stopping)
            if pending:
                # A call about to answer is worth a moment: abandoning it wastes the provider's work
                # and makes the next pod repeat a call that may already have succeeded.
                _, pending = await asyncio.wait(pending, timeout=self._stop_grace)
            if pending:
                self.abandon.set()
                for worker in pending:
                    worker.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            stopping.cancel()
        for worker in workers:
            if not worker.cancelled() and worker.exception() is not None:
                raise worker.exception()  # type: ignore[misc]

    async def _close_producers(self) -> None:
        for producer in [self._producer, *self._producers.values()]:
            try:
                await producer.close()
            except Exception as exc:  # closing a pool must never hide the run's outcome
                log.warning("closing a producer: %s", exc.__class__.__name__)

    async def _drain(self, queue: deque[int]) -> None:
        """One of `concurrency` coroutines: the next independent item, until none is left or a stop."""
        while queue and not self._halted():
            await self._execute(queue.popleft())
            await self._maybe_flush()

    async def _walk(self) -> None:
        index = 0
        # Pages append items as they are found, so the list may grow while we walk it.
        while index < len(self._ledger.items) and not self._halted():
            if needs_execution(self._ledger.items[index]):
                await self._execute_in_sequence(index)
                await self._maybe_flush()
            index += 1

    async def _execute_in_sequence(self, index: int) -> None:
        """Steps run in order and stop at the first failure; pages discover the next page."""
        ledger = self._ledger
        sequence = self._spec.sequence
        if sequence == "steps":
            blocker = next((i for i in ledger.items[:index] if i.status in ("failed", "skipped")), None)
            if blocker is not None:
                reason = f"skipped: step {blocker.step or blocker.id} did not succeed"
                update = {"status": "skipped", "error": reason, "finished_at": ledger.now()}
                ledger.set(index, ledger.items[index].model_copy(update=update))
                return
            work = ledger.work[index]
            try:
                inputs = render(work.inputs_template or work.inputs, ledger.context())
            except TemplateError as err:
                ledger.fail(index, f"input mapping: {err}", "bad_input_mapping", 0.0)
                return
            ledger.work[index] = work.model_copy(update={"inputs": inputs})
            provider = (work.producer or self._spec.producer).provider
            ledger.set(index, ledger.items[index].model_copy(update={"inputs": inputs, "provider": provider}))
        await self._execute(index)
        if sequence == "pages" and ledger.items[index].status == "succeeded":
            ledger.discover_next_page(index)

    def _producer_for(self, index: int) -> ItemProducer:
        own = self._ledger.work[index].producer
        if own is None or self._make_producer is None:
            return self._producer
        if index not in self._producers:
            self._producers[index] = self._watch_stop_in(
                self._make_producer(own, self._ledger.work[index].id)
            )
        return self._producers[index]

    async def _execute(self, index: int) -> None:
        spec_item = self._ledger.work[index]
        # Attempts a dead pod of this same round already made count against this round's budget;
        # at least one call is always allowed, because the last of those calls has no known result.
        made = max(0, self._ledger.items[index].attempt_count - spec_item.attempt_count)
        allowed = max(1, self._spec.retry.max_attempts - made)
        started_at = self._ledger.items[index].started_at or self._ledger.now()
        for n in range(1, allowed + 1):
            await self._pass_gate()
            await self._limit.acquire()
            if self._halted():
                self._limit.release()
                self._ledger.set(index, self._ledger.items[index].model_copy(update={"status": "pending"}))
                return
            before = self._ledger.items[index]
            attempt = before.attempt_count + 1
            self._ledger.set(
                index,
                before.model_copy(
                    update={"status": "running", "attempt_count": attempt, "started_at": started_at}
                ),
            )
            t0 = self._clock()
            self._in_flight += 1
            try:
                outcome = await self._call(self._item_call(index, attempt), self._producer_for(index))
            except asyncio.CancelledError:
                # Abandoned at the end of the stop grace: the result will never be known here, so the
                # attempt does not count and the next pod redoes the call.
                self._ledger.set(index, before.model_copy(update={"status": "pending"}))
                raise
            finally:
                self._in_flight -= 1
                self._limit.release()
            latency = round(max(0.0, self._clock() - t0), 6)
            if isinstance(outcome, _Abandoned):
                self._ledger.set(index, before.model_copy(update={"status": "pending"}))
                return
            self._calls += 1
            if isinstance(outcome, ProducerError) and outcome.error_class == "http_429":
                self._throttled += 1
            if not isinstance(outcome, RetryableError):
                self._pace.answered()
            if isinstance(outcome, ProducerResult):
                self._record_success(index, outcome, latency)
                return
            retry_after = outcome.retry_after if isinstance(outcome, RetryableError) else None
            if isinstance(outcome, RetryableError):
                self._pace.failed(retry_after)
            if isinstance(outcome, PermanentError) or n == allowed:
                suffix = "" if isinstance(outcome, PermanentError) else f" (gave up after {attempt} attempts)"
                self._ledger.fail(index, outcome.message + suffix, outcome.error_class, latency)
                return
            self._ledger.retrying(index, outcome, latency)
            delay = backoff_delay(
                self._spec.retry.backoff_seconds, made + n, self._rng, retry_after=retry_after
            )
            await self._maybe_flush()
            # One wait: the item's own backoff, or longer if the shard's gate is closed longer.
            await self._sleep(max(delay, self._pace.wait_seconds()))

    def _record_success(self, index: int, outcome: ProducerResult, latency: float) -> None:
        # Recording walks the outputs (size, redaction); should it raise, the item fails rather than
        # the drain coroutine, which would end the run before the calls made since the last write are.
        try:
            self._ledger.succeed(index, outcome, latency)
        except Exception as exc:
            log.warning("recording item %s raised %s", self._ledger.work[index].id, exc.__class__.__name__)
            message = f"recording the reply failed: {exc.__class__.__name__}: {exc}"
            self._ledger.fail(index, message, "producer_error", latency)

    async def _pass_gate(self) -> None:
        """Wait while the shard's gate is closed (Retry-After, a provider failing across the board)."""
        while not self._halted() and (wait := self._pace.wait_seconds()) > 0:
            await self._sleep(wait)

    def _item_call(self, index: int, attempt: int) -> ItemCall:
        spec_item = self._ledger.work[index]
        return ItemCall(
            run_name=self._spec.run_name,
            run_uid=self._spec.run_uid,
            item_id=spec_item.id,
            row_id=spec_item.row_id,
            inputs=spec_item.inputs,
            attempt=attempt,
        )

    async def _call(self, call: ItemCall, producer: ItemProducer) -> CallOutcome:
        try:
            return await producer.call(call)
        except CallAbandoned:
            return _ABANDONED
        except ProducerError as exc:
            return exc
        except Exception as exc:
            log.warning("producer raised %s on item %s", exc.__class__.__name__, call.item_id)
            return PermanentError(f"producer error: {exc.__class__.__name__}: {exc}", "producer_error")
