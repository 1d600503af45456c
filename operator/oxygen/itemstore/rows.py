"""The item store's row shape, shared by the operator's and the worker's side. No I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

# What the store hands back for timestamps: RFC 3339 in UTC with milliseconds, as the worker writes them.
TIMESTAMP_SQL: Final = "to_char({col} at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

# Columns a result write sets (the worker may update exactly these: see migrations.py).
RESULT_COLUMNS: Final = (
    "status",
    "attempt_count",
    "outputs",
    "error",
    "error_class",
    "credits_used",
    "started_at",
    "finished_at",
    "latency_seconds",
)


@dataclass(frozen=True)
class NewItem:
    """An item as a round adds it (COPY): its place, identity, inputs and starting state."""

    ordinal: int
    item_id: str
    row_id: str | None
    inputs: dict[str, Any]
    status: str = "pending"
    attempt_count: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ItemRow:
    """One stored item (a round's row), as readers see it."""

    round: int
    ordinal: int
    item_id: str
    row_id: str | None
    status: str
    attempt_count: int = 0
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: Any = None
    error: str | None = None
    error_class: str | None = None
    credits_used: Decimal = Decimal(0)
    started_at: str | None = None
    finished_at: str | None = None
    latency_seconds: float | None = None
    superseded_by: str | None = None
    step: str | None = None


@dataclass(frozen=True)
class Result:
    """What a worker (or the operator settling a shard) writes back for one row of a round."""

    ordinal: int
    status: str
    attempt_count: int
    outputs: Any = None
    error: str | None = None
    error_class: str | None = None
    credits_used: Decimal = Decimal(0)
    started_at: str | None = None
    finished_at: str | None = None
    latency_seconds: float | None = None
    superseded_by: str | None = None


def select_columns(prefix: str = "") -> str:
    p = prefix
    return ", ".join(
        [
            f"{p}round",
            f"{p}ordinal",
            f"{p}item_id",
            f"{p}row_id",
            f"{p}status",
            f"{p}attempt_count",
            f"{p}inputs",
            f"{p}outputs",
            f"{p}error",
            f"{p}error_class",
            f"coalesce({p}credits_used, 0)",
            TIMESTAMP_SQL.format(col=f"{p}started_at"),
            TIMESTAMP_SQL.format(col=f"{p}finished_at"),
            f"{p}latency_seconds",
            f"{p}superseded_by",
            f"{p}step",
        ]
    )


def to_row(record: tuple[Any, ...]) -> ItemRow:
    return ItemRow(
        round=int(record[0]),
        ordinal=int(record[1]),
        item_id=str(record[2]),
        row_id=record[3],
        status=str(record[4]),
        attempt_count=int(record[5] or 0),
        inputs=record[6] if isinstance(record[6], dict) else {},
        outputs=record[7],
        error=record[8],
        error_class=record[9],
        credits_used=Decimal(record[10]),
        started_at=record[11],
        finished_at=record[12],
        latency_seconds=record[13],
        superseded_by=record[14],
        step=record[15],
    )
