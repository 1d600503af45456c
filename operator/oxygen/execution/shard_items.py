"""A shard's items as the worker sees them (spec merged with what earlier pods recorded), and the
small rules around executing them: which need a call, how long to back off, how big they are.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any, Final

from oxygen.api.run import TERMINAL_ITEM_STATUSES
from oxygen.api.runshard import ItemResult, RunShard, ShardItem

MAX_BACKOFF_SECONDS: Final = 60.0
# Retry-After is honoured, but a provider asking for an hour must not park a pod for an hour.
MAX_RETRY_AFTER_SECONDS: Final = 300.0
JITTER: Final = 0.2


def rfc3339(epoch_seconds: float) -> str:
    text = datetime.fromtimestamp(epoch_seconds, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def backoff_delay(
    base_seconds: float,
    retry_number: int,
    rng: random.Random,
    *,
    retry_after: float | None = None,
    cap: float = MAX_BACKOFF_SECONDS,
    retry_after_cap: float = MAX_RETRY_AFTER_SECONDS,
) -> float:
    """Seconds before retry number `retry_number` (1 = the first retry).

    Exponential with ±20 % jitter so a fleet of pods that failed together does not retry together.
    """
    delay = min(cap, base_seconds * 2.0 ** max(0, retry_number - 1))
    delay = min(cap, delay * (1 + rng.uniform(-JITTER, JITTER)))
    if retry_after is not None:
        delay = max(delay, min(retry_after, retry_after_cap))
    return max(0.0, delay)


def json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def item_bytes(item: ItemResult) -> int:
    """What an item adds to the shard status: `json_bytes(item.wire())`, serialized by pydantic-core
    (several times cheaper; it runs once or twice per call)."""
    return len(item.model_dump_json(by_alias=True, exclude_none=True).encode("utf-8"))


def needs_execution(item: ItemResult) -> bool:
    return item.superseded_by is None and item.status not in TERMINAL_ITEM_STATUSES


def work_items(shard: RunShard) -> list[ShardItem]:
    """The spec's items plus those found while running (ingestion pages) that an earlier pod recorded."""
    work = list(shard.spec.items)
    declared = {item.id for item in work}
    for result in shard.status.items:
        if result.id not in declared and isinstance(result.inputs, dict):
            work.append(ShardItem(id=result.id, row_id=result.row_id, inputs=result.inputs))
    return work


def initial_items(shard: RunShard) -> list[ItemResult]:
    """Spec items merged with what an earlier pod recorded, so a restarted pod resumes."""
    known = {result.id: result for result in shard.status.items}
    items: list[ItemResult] = []
    for spec_item in shard.spec.items:
        prior = known.get(spec_item.id)
        if prior is None:
            items.append(
                ItemResult(id=spec_item.id, row_id=spec_item.row_id, attempt_count=spec_item.attempt_count)
            )
        elif prior.attempt_count < spec_item.attempt_count:
            items.append(prior.model_copy(update={"attempt_count": spec_item.attempt_count}))
        else:
            items.append(prior)
    declared = {spec_item.id for spec_item in shard.spec.items}
    items += [result for result in shard.status.items if result.id not in declared]
    for spec_item, item in zip(shard.spec.items, items, strict=False):
        if spec_item.step and item.step is None:
            item.step = spec_item.step
    return items
