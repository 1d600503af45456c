"""The worker inside a shard's Job pod: calls the producer per item and writes results back.

`ShardExecutor` is the core and does no Kubernetes I/O: it gets the RunShard, a producer, a clock,
a sleep and a `flush(status)` callback. `oxygen.execution.pod` is the thin shell around it (read the
shard, patch its status subresource, signals, exit codes).

Delivery is at-least-once: a pod killed mid-call leaves the item `running`, and the next pod calls
it again; the producer's Idempotency-Key (run uid + item id) lets the provider deduplicate.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from oxygen.api.run import TERMINAL_ITEM_STATUSES, Producer
from oxygen.api.runshard import ItemResult, RunShard, RunShardStatus, ShardItem
from oxygen.execution.producers import (
    CallAbandoned,
    ItemCall,
    ItemProducer,
    PermanentError,
    ProducerError,
    ProducerResult,
    RetryableError,
)
from oxygen.execution.redaction import Redactor
from oxygen.execution.shard_items import (
    backoff_delay,
    initial_items,
    json_bytes,
    needs_execution,
    rfc3339,
    work_items,
)
from oxygen.execution.templates import TemplateError, render
from oxygen.status.shard import shard_phase, summarize

log = logging.getLogger("oxygen.worker")

DEFAULT_FLUSH_INTERVAL: Final = 1.0
# On SIGTERM the in-flight call may finish within this; well inside a pod's 30 s termination grace.
DEFAULT_STOP_GRACE_SECONDS: Final = 5.0
# A RunShard must stay far below the API server's ~1.5 MiB object limit; the spec (inputs) shares it.
DEFAULT_MAX_STATUS_BYTES: Final = 900 * 1024
# Room for phase, summary (bounded error classes), message and timestamps around the items.
STATUS_OVERHEAD_BYTES: Final = 8 * 1024
ERROR_LIMIT: Final = 1000


Clock = Callable[[], float]
Sleep = Callable[[float], None]
Flush = Callable[[RunShardStatus], None]


class _Abandoned:
    """The call was left running because the worker is stopping."""


_ABANDONED: Final = _Abandoned()
CallOutcome = ProducerResult | ProducerError | _Abandoned


@dataclass(frozen=True)
class ExecutionOutcome:
    # True when a stop request left items unexecuted (the pod must exit non-zero so it is replaced).
    stopped: bool
    calls: int
    flushes: int
    status: RunShardStatus


class ShardExecutor:
    """Executes a shard's items one at a time and reports their status through `flush`."""

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
    ) -> None:
        self._spec = shard.spec
        self._producer = producer
        self._flush = flush
        self._clock = clock
        self.stop = stop if stop is not None else threading.Event()
        # Set when the in-flight call is given up; a producer that can cancel (a command) listens to it.
        self.abandon = abandon if abandon is not None else threading.Event()
        self._stop_grace = stop_grace_seconds
        # The default sleep wakes on stop, so a pod in backoff exits within a fraction of a second.
        self._sleep: Sleep = sleep if sleep is not None else self._interruptible_sleep
        self._flush_interval = flush_interval
        self._worker = worker_name
        self._rng = rng if rng is not None else random.Random()
        self._max_status_bytes = max_status_bytes
        self._poll_interval = poll_interval
        # The secret values this pod holds: none of them is ever written to status (outputs, errors).
        self._redactor = redactor if redactor is not None else Redactor()
        self._items = initial_items(shard)
        self._work = work_items(shard)
        self._producers: dict[int, ItemProducer] = {}
        # Workflow steps each name their own producer; they are built on first use.
        self._make_producer = make_producer
        self._sizes = [json_bytes(item.wire()) for item in self._items]
        self._status_bytes = STATUS_OVERHEAD_BYTES + sum(self._sizes)
        self._started_at = shard.status.started_at
        self._finished_at: str | None = None
        self._message: str | None = None
        self._last_flush = -math.inf
        self._flushes = 0
        self._calls = 0

    def _interruptible_sleep(self, seconds: float) -> None:
        self.stop.wait(seconds)

    # -- status -----------------------------------------------------------------------------------

    def snapshot(self) -> RunShardStatus:
        items = list(self._items)
        return RunShardStatus(
            phase=shard_phase(items),
            items=items,
            summary=summarize(items),
            worker=self._worker,
            message=self._message,
            started_at=self._started_at,
            finished_at=self._finished_at,
        )

    def _flush_now(self) -> None:
        self._flush(self.snapshot())
        self._flushes += 1
        self._last_flush = self._clock()

    def _maybe_flush(self) -> None:
        if self._clock() - self._last_flush >= self._flush_interval:
            self._flush_now()

    def _now(self) -> str:
        return rfc3339(self._clock())

    def _set(self, index: int, item: ItemResult) -> None:
        self._items[index] = item
        if item.status in TERMINAL_ITEM_STATUSES:
            size = json_bytes(item.wire())
            self._status_bytes += size - self._sizes[index]
            self._sizes[index] = size

    def _fits(self, index: int, candidate: ItemResult) -> tuple[bool, int]:
        total = self._status_bytes - self._sizes[index] + json_bytes(candidate.wire())
        return total <= self._max_status_bytes, total

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> ExecutionOutcome:
        start = self._clock()
        self._started_at = self._started_at or rfc3339(start)
        # The first write comes one interval in, so a fast shard costs a single write.
        self._last_flush = start
        self._message = None
        todo = [index for index, item in enumerate(self._items) if needs_execution(item)]
        if not self._spec.execute:
            self._skip(todo)
        else:
            index = 0
            # Pages append items as they are found, so the list may grow while we walk it.
            while index < len(self._items):
                if self.stop.is_set():
                    break
                if needs_execution(self._items[index]):
                    self._execute_in_sequence(index)
                    self._maybe_flush()
                index += 1
        left = sum(1 for item in self._items if needs_execution(item))
        stopped = self.stop.is_set() and left > 0
        if stopped:
            self._message = f"worker stopped; {left} item(s) left for the next pod"
        elif shard_phase(self._items) == "Succeeded":
            self._finished_at = self._now()
        self._flush_now()
        return ExecutionOutcome(
            stopped=stopped, calls=self._calls, flushes=self._flushes, status=self.snapshot()
        )

    def _skip(self, todo: list[int]) -> None:
        self._message = self._spec.skip_reason or "not executed (execute: false)"
        now = self._now()
        for index in todo:
            self._set(index, self._items[index].model_copy(update={"status": "skipped", "finished_at": now}))

    def _execute_in_sequence(self, index: int) -> None:
        """Steps run in order and stop at the first failure; pages discover the next page."""
        sequence = self._spec.sequence
        if sequence == "steps":
            blocker = next((i for i in self._items[:index] if i.status in ("failed", "skipped")), None)
            if blocker is not None:
                reason = f"skipped: step {blocker.step or blocker.id} did not succeed"
                self._set(
                    index,
                    self._items[index].model_copy(
                        update={"status": "skipped", "error": reason, "finished_at": self._now()}
                    ),
                )
                return
            try:
                inputs = render(
                    self._work[index].inputs_template or self._work[index].inputs, self._context()
                )
            except TemplateError as err:
                self._fail(index, f"input mapping: {err}", "bad_input_mapping", 0.0)
                return
            self._work[index] = self._work[index].model_copy(update={"inputs": inputs})
            provider = (self._work[index].producer or self._spec.producer).provider
            self._set(index, self._items[index].model_copy(update={"inputs": inputs, "provider": provider}))
        self._execute(index)
        if sequence == "pages" and self._items[index].status == "succeeded":
            self._discover_next_page(index)

    def _context(self) -> dict[str, Any]:
        context = dict(self._spec.context or {})
        steps = dict(context.get("steps") or {})
        for item in self._items:
            if item.step and item.status == "succeeded":
                steps[item.step] = {"outputs": item.outputs}
        context["steps"] = steps
        context.setdefault("inputs", {})
        return context

    def _discover_next_page(self, index: int) -> None:
        outputs = self._items[index].outputs
        cursor = outputs.get("nextCursor") if isinstance(outputs, dict) else None
        page = int(self._items[index].id)
        if cursor in (None, "") or page + 1 >= (self._spec.max_pages or 1):
            return
        next_id = str(page + 1)
        if any(item.id == next_id for item in self._items):
            return
        inputs = {**self._work[index].inputs, "cursor": cursor, "page": page + 1}
        self._work.append(ShardItem(id=next_id, inputs=inputs))
        item = ItemResult(id=next_id, inputs=inputs)
        self._items.append(item)
        size = json_bytes(item.wire())
        self._sizes.append(size)
        self._status_bytes += size

    def _producer_for(self, index: int) -> ItemProducer:
        own = self._work[index].producer
        if own is None or self._make_producer is None:
            return self._producer
        if index not in self._producers:
            self._producers[index] = self._make_producer(own, self._work[index].id)
        return self._producers[index]

    def _execute(self, index: int) -> None:
        spec_item = self._work[index]
        # Attempts a dead pod of this same round already made count against this round's budget;
        # at least one call is always allowed, because the last of those calls has no known result.
        made = max(0, self._items[index].attempt_count - spec_item.attempt_count)
        allowed = max(1, self._spec.retry.max_attempts - made)
        started_at = self._items[index].started_at or self._now()
        for n in range(1, allowed + 1):
            if self.stop.is_set():
                self._set(index, self._items[index].model_copy(update={"status": "pending"}))
                return
            before = self._items[index]
            attempt = before.attempt_count + 1
            self._set(
                index,
                before.model_copy(
                    update={"status": "running", "attempt_count": attempt, "started_at": started_at}
                ),
            )
            t0 = self._clock()
            outcome = self._call(self._item_call(index, attempt), self._producer_for(index))
            latency = round(max(0.0, self._clock() - t0), 6)
            if isinstance(outcome, _Abandoned):
                # The call's result will never be known here: it does not count, the next pod redoes it.
                self._set(index, before.model_copy(update={"status": "pending"}))
                return
            self._calls += 1
            if isinstance(outcome, ProducerResult):
                self._succeed(index, outcome, latency)
                return
            if isinstance(outcome, PermanentError) or n == allowed:
                suffix = "" if isinstance(outcome, PermanentError) else f" (gave up after {attempt} attempts)"
                self._fail(index, outcome.message + suffix, outcome.error_class, latency)
                return
            self._retrying(index, outcome, latency)
            retry_after = outcome.retry_after if isinstance(outcome, RetryableError) else None
            delay = backoff_delay(
                self._spec.retry.backoff_seconds, made + n, self._rng, retry_after=retry_after
            )
            self._maybe_flush()
            self._sleep(delay)

    def _item_call(self, index: int, attempt: int) -> ItemCall:
        spec_item = self._work[index]
        return ItemCall(
            run_name=self._spec.run_name,
            run_uid=self._spec.run_uid,
            item_id=spec_item.id,
            row_id=spec_item.row_id,
            inputs=spec_item.inputs,
            attempt=attempt,
        )

    def _call(self, call: ItemCall, producer: ItemProducer) -> CallOutcome:
        """The producer call on a daemon thread, so a stop request never waits for a slow provider."""
        box: list[ProducerResult | ProducerError] = []
        done = threading.Event()

        def target() -> None:
            try:
                box.append(producer.call(call))
            except ProducerError as exc:
                box.append(exc)
            except Exception as exc:
                log.warning("producer raised %s on item %s", exc.__class__.__name__, call.item_id)
                box.append(
                    PermanentError(f"producer error: {exc.__class__.__name__}: {exc}", "producer_error")
                )
            finally:
                done.set()

        threading.Thread(target=target, name=f"call-{call.item_id}", daemon=True).start()
        while not done.wait(self._poll_interval):
            if self.stop.is_set():
                break
            self._maybe_flush()
        # A call about to answer is worth a moment: abandoning it wastes the provider's work and
        # makes the next pod repeat a call that had already succeeded.
        if not done.is_set() and not done.wait(self._stop_grace):
            self.abandon.set()
            return _ABANDONED
        return _ABANDONED if isinstance(box[0], CallAbandoned) else box[0]

    def _retrying(self, index: int, error: ProducerError, latency: float) -> None:
        update = {
            "status": "retrying",
            "error": self._redactor.clip(error.message, ERROR_LIMIT),
            "error_class": error.error_class,
            "latency_seconds": latency,
        }
        self._set(index, self._items[index].model_copy(update=update))

    def _succeed(self, index: int, result: ProducerResult, latency: float) -> None:
        spec = self._work[index].producer or self._spec.producer
        cap = spec.max_output_bytes
        outputs = self._redactor.json(result.outputs)
        size = json_bytes(outputs)
        if size > cap:
            message = (
                f"output is {size} bytes of JSON, over producer.maxOutputBytes ({cap} bytes); "
                "nothing was stored: return less from the provider or raise producer.maxOutputBytes"
            )
            self._fail(index, message, "output_too_large", latency)
            return
        cost = result.cost if result.cost is not None else spec.cost_per_item
        candidate = self._items[index].model_copy(
            update={
                "status": "succeeded",
                "outputs": outputs,
                "error": None,
                "error_class": None,
                "credits_used": cost,
                "finished_at": self._now(),
                "latency_seconds": latency,
            }
        )
        fits, total = self._fits(index, candidate)
        if not fits:
            message = (
                f"storing this item's output would bring the shard status to {total} bytes, over the "
                f"{self._max_status_bytes}-byte budget that keeps a RunShard below the API server's "
                "object size limit; lower the Run's batchSize (or producer.maxOutputBytes)"
            )
            self._fail(index, message, "shard_too_large", latency)
            return
        self._set(index, candidate)

    def _fail(self, index: int, message: str, error_class: str, latency: float) -> None:
        update = {
            "status": "failed",
            "outputs": None,
            "error": self._redactor.clip(message, ERROR_LIMIT),
            "error_class": error_class,
            "credits_used": Decimal(0),
            "finished_at": self._now(),
            "latency_seconds": latency,
        }
        self._set(index, self._items[index].model_copy(update=update))
