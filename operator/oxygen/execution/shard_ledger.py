"""A shard's items as one worker pod knows them, and how each attempt's outcome is recorded.

The ledger keeps the shard status within its byte budget (a RunShard must stay far below the API
server's object limit) and never lets a secret the pod holds into an output or an error.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from oxygen.api.run import TERMINAL_ITEM_STATUSES
from oxygen.api.runshard import ItemResult, RunShard, ShardItem
from oxygen.execution.item_calls import ProducerError, ProducerResult
from oxygen.execution.redaction import Redactor
from oxygen.execution.shard_items import initial_items, item_bytes, json_bytes, rfc3339, work_items

# Room for phase, summary (bounded error classes), message and timestamps around the items.
STATUS_OVERHEAD_BYTES: Final = 8 * 1024
ERROR_LIMIT: Final = 1000
# A budget at least this large is no budget: the item store's shards keep results in rows, not in
# their status, and measuring every item (a JSON encoding each) was a sixth of such a worker's CPU.
UNBOUNDED: Final = 1 << 40


class ShardLedger:
    def __init__(
        self, shard: RunShard, *, clock: Callable[[], float], redactor: Redactor, max_status_bytes: int
    ) -> None:
        self.spec = shard.spec
        self._clock = clock
        self._redactor = redactor
        self._max_status_bytes = max_status_bytes
        self.items = initial_items(shard)
        self.work = work_items(shard)
        self._sized = max_status_bytes < UNBOUNDED
        self._sizes = [item_bytes(item) if self._sized else 0 for item in self.items]
        self._status_bytes = STATUS_OVERHEAD_BYTES + sum(self._sizes)
        # Results (terminal item outcomes) recorded by this pod so far: the executor compares it with the
        # count at its last status write to write sooner when many results would die with a kill.
        self.settled = 0
        # Bumped by every change of an item (items are replaced, never changed in place): the executor
        # skips a status write when nothing changed since the last one.
        self.version = 0

    def now(self) -> str:
        return rfc3339(self._clock())

    def set(self, index: int, item: ItemResult, size: int | None = None) -> None:
        self.items[index] = item
        self.version += 1
        if item.status in TERMINAL_ITEM_STATUSES:
            self.settled += 1
            if not self._sized:
                return
            size = size if size is not None else item_bytes(item)
            self._status_bytes += size - self._sizes[index]
            self._sizes[index] = size

    def fits(self, index: int, candidate: ItemResult) -> tuple[bool, int, int]:
        if not self._sized:
            return True, 0, 0
        size = item_bytes(candidate)
        total = self._status_bytes - self._sizes[index] + size
        return total <= self._max_status_bytes, total, size

    def skip(self, todo: list[int]) -> None:
        now = self.now()
        for index in todo:
            self.set(index, self.items[index].model_copy(update={"status": "skipped", "finished_at": now}))

    def context(self) -> dict[str, Any]:
        context = dict(self.spec.context or {})
        steps = dict(context.get("steps") or {})
        for item in self.items:
            if item.step and item.status == "succeeded":
                steps[item.step] = {"outputs": item.outputs}
        context["steps"] = steps
        context.setdefault("inputs", {})
        return context

    def discover_next_page(self, index: int) -> None:
        outputs = self.items[index].outputs
        cursor = outputs.get("nextCursor") if isinstance(outputs, dict) else None
        page = int(self.items[index].id)
        if cursor in (None, "") or page + 1 >= (self.spec.max_pages or 1):
            return
        next_id = str(page + 1)
        if any(item.id == next_id for item in self.items):
            return
        inputs = {**self.work[index].inputs, "cursor": cursor, "page": page + 1}
        self.work.append(ShardItem(id=next_id, inputs=inputs))
        item = ItemResult(id=next_id, inputs=inputs)
        self.items.append(item)
        self.version += 1
        size = item_bytes(item) if self._sized else 0
        self._sizes.append(size)
        self._status_bytes += size

    def retrying(self, index: int, error: ProducerError, latency: float) -> None:
        update = {
            "status": "retrying",
            "error": self._redactor.clip(error.message, ERROR_LIMIT),
            "error_class": error.error_class,
            "latency_seconds": latency,
        }
        self.set(index, self.items[index].model_copy(update=update))

    def succeed(self, index: int, result: ProducerResult, latency: float) -> None:
        spec = self.work[index].producer or self.spec.producer
        cap = spec.max_output_bytes
        outputs = self._redactor.json(result.outputs)
        size = json_bytes(outputs)
        if size > cap:
            message = (
                f"output is {size} bytes of JSON, over producer.maxOutputBytes ({cap} bytes); "
                "nothing was stored: return less from the provider or raise producer.maxOutputBytes"
            )
            self.fail(index, message, "output_too_large", latency)
            return
        cost = result.cost if result.cost is not None else spec.cost_per_item
        candidate = self.items[index].model_copy(
            update={
                "status": "succeeded",
                "outputs": outputs,
                "error": None,
                "error_class": None,
                "credits_used": cost,
                "finished_at": self.now(),
                "latency_seconds": latency,
                # A waterfall's calls per provider (execution/waterfall.py), for the summary's tallies.
                "provider_calls": list(getattr(result, "calls", ())) or None,
            }
        )
        fits, total, size = self.fits(index, candidate)
        if not fits:
            message = (
                f"storing this item's output would bring the shard status to {total} bytes, over the "
                f"{self._max_status_bytes}-byte budget that keeps a RunShard below the API server's "
                "object size limit; lower the Run's batchSize (or producer.maxOutputBytes)"
            )
            self.fail(index, message, "shard_too_large", latency)
            return
        self.set(index, candidate, size)

    def fail(self, index: int, message: str, error_class: str, latency: float) -> None:
        update = {
            "status": "failed",
            "outputs": None,
            "error": self._redactor.clip(message, ERROR_LIMIT),
            "error_class": error_class,
            "credits_used": Decimal(0),
            "finished_at": self.now(),
            "latency_seconds": latency,
        }
        self.set(index, self.items[index].model_copy(update=update))
