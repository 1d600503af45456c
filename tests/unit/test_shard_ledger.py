"""shard_ledger.py: the status byte budget is measured only where there is one."""

from __future__ import annotations

from decimal import Decimal

import pytest

from oxygen.api.run import Producer, Retry
from oxygen.api.runshard import RunShard, RunShardSpec, RunShardStatus, ShardItem
from oxygen.execution import shard_ledger
from oxygen.execution.item_calls import ProducerResult
from oxygen.execution.redaction import Redactor
from oxygen.execution.store_shard import UNBOUNDED_STATUS_BYTES


def _shard(n: int) -> RunShard:
    spec = RunShardSpec(
        run_name="r",
        run_uid="u",
        round=0,
        index=0,
        execute=True,
        producer=Producer(provider="p", builtin="echo", cost_per_item=Decimal("0.5")),
        retry=Retry(max_attempts=2, backoff_seconds=1.0),
        items=[ShardItem(id=str(k), inputs={"k": k}) for k in range(n)],
    )
    return RunShard(spec=spec, status=RunShardStatus())


def test_an_item_store_shard_is_never_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    def measured(item: object) -> int:
        raise AssertionError("an unbounded status was measured")

    monkeypatch.setattr(shard_ledger, "item_bytes", measured)
    ledger = shard_ledger.ShardLedger(
        _shard(3), clock=lambda: 0.0, redactor=Redactor([]), max_status_bytes=UNBOUNDED_STATUS_BYTES
    )
    for k in range(3):
        ledger.succeed(k, ProducerResult(outputs={"x": "y" * 1000}), 0.01)
    assert [i.status for i in ledger.items] == ["succeeded"] * 3
    assert ledger.settled == 3


def test_a_bounded_status_still_fails_the_item_that_would_overflow_it() -> None:
    ledger = shard_ledger.ShardLedger(
        _shard(2), clock=lambda: 0.0, redactor=Redactor([]), max_status_bytes=9000
    )
    ledger.succeed(0, ProducerResult(outputs={"x": "y" * 2000}), 0.01)
    assert (ledger.items[0].status, ledger.items[0].error_class) == ("failed", "shard_too_large")
