"""What one Workflow pass decided: the Plan `apply` carries out. Data only."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event to post on the Workflow (after the status write)."""

    reason: str
    message: str
    type: str = "Normal"


@dataclass(frozen=True)
class SourceMark:
    """Record on a finished run which of this workflow's event triggers it fired (see events.py)."""

    run_name: str
    run_uid: str
    indexes: frozenset[int]


@dataclass
class Plan:
    # Runs to create; their names are recorded as intents in status.managedRuns before the create.
    create: list[dict[str, Any]] = field(default_factory=list)
    # The (source uid, trigger index) of each event fire among `create` (remembered once created).
    event_fires: list[tuple[str, int]] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    # (name, uid): the uid is a delete precondition, so a newer run of the same name is never hit.
    delete: list[tuple[str, str]] = field(default_factory=list)
    # status.managedRuns edits: intents whose run is now seen ({name: uid}), entries to drop (name, uid).
    adopt: dict[str, str] = field(default_factory=dict)
    forget: set[tuple[str, str]] = field(default_factory=set)
    # The status fields to hold (managedRuns and runsCreated excluded: see apply.write_status).
    status: dict[str, Any] = field(default_factory=dict)
    marks: list[SourceMark] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def ledger_changes(self) -> bool:
        return bool(self.create or self.adopt or self.forget)
