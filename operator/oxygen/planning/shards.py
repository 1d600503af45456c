"""Items → shard batches, by count and by bytes, so a RunShard stays far below etcd's limit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TypeVar

from oxygen.planning.items import PlannedItem

# The API server refuses objects above ~1.5 MiB. A shard's spec holds its items' inputs; its status
# holds their outputs (each capped by producer.maxOutputBytes). Keep inputs to a fraction of that.
MAX_SHARD_INPUT_BYTES = 256 * 1024

T = TypeVar("T", bound=PlannedItem)


def item_bytes(item: PlannedItem) -> int:
    return len(json.dumps(item.inputs, separators=(",", ":"))) + len(item.row_id or "") + len(item.id) + 40


def batches(items: Sequence[T], batch_size: int, max_bytes: int = MAX_SHARD_INPUT_BYTES) -> list[list[T]]:
    """Consecutive batches of at most `batch_size` items and `max_bytes` of inputs (≥ 1 item each)."""
    out: list[list[T]] = []
    current: list[T] = []
    size = 0
    for item in items:
        weight = item_bytes(item)
        if current and (len(current) >= batch_size or size + weight > max_bytes):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += weight
    if current:
        out.append(current)
    return out
