"""cli/storeitems.py: stored rows in the item shape of the shards' items, and which shard holds a row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from oxygen.cli import storeitems
from oxygen.cli.shapes import item_shape
from oxygen.itemstore.rows import ItemRow


class _Shards:
    def __init__(self, shards: list[dict[str, Any]]) -> None:
        self.shards = shards

    def shard_pages(self, run: dict[str, Any], page: int) -> Any:
        for k in range(0, len(self.shards), page):
            yield self.shards[k : k + page]


def _shard(name: str, round_: int, start: int, end: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"round": round_, "range": {"start": start, "end": end}}}


def test_a_row_has_the_keys_of_a_shard_item_in_the_same_order() -> None:
    row = ItemRow(
        round=0,
        ordinal=3,
        item_id="3",
        row_id="r3",
        status="succeeded",
        attempt_count=1,
        inputs={"a": 1},
        outputs={"a": 1},
        credits_used=Decimal("0.2500"),
        finished_at="2026-01-01T00:00:00.000Z",
    )
    shape = storeitems.row_shape(row, shard="s-r0-0", provider="echo")
    reference = item_shape({"id": "3", "rowId": "r3", "inputs": {"a": 1}}, {"status": "succeeded"})
    assert list(shape) == list(reference)
    assert shape["credits_used"] == "0.25"
    assert (shape["id"], shape["row_id"], shape["status"], shape["attempt_count"]) == (
        "3",
        "r3",
        "succeeded",
        1,
    )


def test_credits_as_the_status_writes_them() -> None:
    assert storeitems.credits_text(Decimal("0")) == "0"
    assert storeitems.credits_text(Decimal("2.000")) == "2"
    assert storeitems.credits_text(Decimal("0.10")) == "0.1"
    assert storeitems.credits_text(Decimal("1E+2")) == "100"


def test_shard_names_by_range() -> None:
    shards = [_shard("r-r0-0", 0, 0, 10), _shard("r-r0-1", 0, 10, 15), _shard("r-r1-0", 1, 0, 3)]
    names = storeitems.ShardNames(_Shards(shards), {"metadata": {}})  # type: ignore[arg-type]
    assert [names.of(0, k) for k in (0, 9, 10, 14, 15)] == ["r-r0-0", "r-r0-0", "r-r0-1", "r-r0-1", None]
    assert names.of(1, 2) == "r-r1-0"
    assert names.of(2, 0) is None


def test_the_worker_secret_name() -> None:
    assert storeitems.worker_secret_name("leads") == "leads-item-store"
