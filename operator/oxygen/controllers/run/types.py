"""What the Run controller's steps hand each other: the observed snapshot, the memory of a Run's
daemon between passes, and the Plan that the pure decisions return and apply.py carries out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from oxygen.api.run import FailedItem, Run, RunStatus
from oxygen.planning.items import PlannedItem
from oxygen.planning.rounds import Shape
from oxygen.status.views import JobView, ShardView

EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True)
class Resolved:
    items: list[PlannedItem]
    shape: Shape
    unit_cost: Decimal
    # Items an estimate counts: all of a column's, a workflow's steps, an ingestion's maxPages.
    in_scope: int
    # Where the run calls out at a price it set itself (not a Provider's): see credits.require_priced.
    unpriced: tuple[str, ...] = ()
    # Never pay twice (spec.producer.cache, column runs over a Table): items whose call is cached
    # (item id → the cached outputs), and duplicates of an earlier item of the run (id → its id).
    cached: Mapping[str, Any] = field(default_factory=dict)
    followers: Mapping[str, str] = field(default_factory=dict)
    # With an item store, round 0 of a column run is never a list in the operator's memory: `source`
    # is its items as a one-pass iterator (nothing read yet), which apply-side code (item_store.stage)
    # streams into the store's COPY; what comes back is the observed fact `stored`, "round 0 is in the
    # store, N items" (then `items` is empty), and the plan is made from that count alone.
    source: Iterator[PlannedItem] | None = None
    stored: int | None = None

    @property
    def count(self) -> int:
        """How many items round 0 has."""
        return self.stored if self.stored is not None else len(self.items)


class RunFailure(Exception):
    """The run itself cannot proceed; `reason` is a CamelCase condition reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Pending:
    """A run over a Table: finished items' results the database did not take yet (its reason and
    message); the run holds its terminal phase meanwhile (controllers/run/tables.py)."""

    reason: str
    message: str
    # Tried for so long that the run finishes without them (the condition says so).
    final: bool = False


@dataclass
class RunState:
    """What one Run's daemon remembers between passes (rebuilt from the API after a restart)."""

    status: RunStatus
    last_write: float = 0.0
    # Children we created or changed whose watch events may not have reached the indexes yet.
    fresh_shards: dict[str, tuple[int, ShardView]] = field(default_factory=dict)
    fresh_jobs: dict[str, JobView] = field(default_factory=dict)
    status_writes: int = 0
    # Items resolved while the run waits for credits (resolved again when the spec changes).
    items_cache: tuple[int, Resolved] | None = None
    # Monotonic seconds of the last read confirming a Provider the index lacks (provider_gone.py).
    provider_read_at: float = 0.0
    # A column run over a Table: the cells written so far (controllers/run/tables.py CellSync).
    cells: Any = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> RunState:
        return cls(status=RunStatus.model_validate(body.get("status") or {}))


@dataclass(frozen=True)
class Observed:
    """One pass's view of a Run: its body and model, its children (index views merged with what this
    daemon just created), the status last written, and the clock."""

    body: dict[str, Any]
    run: Run
    shards: dict[str, ShardView]
    jobs: dict[str, JobView]
    written: RunStatus  # the status as last written (or read at the daemon's start)
    now: str  # RFC 3339, for timestamps in status
    clock: float  # monotonic seconds, for rate limits
    last_write: float  # monotonic seconds of the last status write
    # With an item store: the run's first failed items, read from its rows (shards hold no items).
    failed_sample: tuple[FailedItem, ...] = ()


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    type: EventType = "Normal"


@dataclass(frozen=True)
class NewShard:
    body: dict[str, Any]
    # Written at once when the created shard has no items in its status yet (shards that skip).
    initial_status: dict[str, Any] | None = None


@dataclass
class Plan:
    """Everything one decision wants changed, in the order apply.py writes it."""

    worker_identity: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    shards: list[NewShard] = field(default_factory=list)
    shard_status: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    # Never-run shards of a round that will not be recorded: (name, uid), after shard_status.
    delete_shards: list[tuple[str, str]] = field(default_factory=list)
    delete_jobs: list[str] = field(default_factory=list)
    suspend_jobs: list[JobView] = field(default_factory=list)  # the views once suspended
    resume_jobs: list[str] = field(default_factory=list)
    create_jobs: list[dict[str, Any]] = field(default_factory=list)
    status: RunStatus | None = None  # None: no status write
    events: list[Event] = field(default_factory=list)
