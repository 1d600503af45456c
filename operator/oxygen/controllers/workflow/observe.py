"""What one Workflow pass looks at, and what its daemon remembers between passes.

The indexes and the Workflow's body come from the watch, which may lag this process's own writes
by a moment: the runs it just created, the record entries it just wrote or dropped, and the last
schedule time it handled are remembered here, for FRESH_SECONDS, and laid over what is seen.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oxygen.api.workflow import ManagedRun, Workflow
from oxygen.controllers.workflow.clock import Clock, SystemClock
from oxygen.controllers.workflow.views import name_of

# How long this process's own writes are assumed to be on their way through the watch.
FRESH_SECONDS = 120.0


@dataclass
class WorkflowMemory:
    """What one Workflow's daemon remembers between passes."""

    last_schedule: dt.datetime | None = None
    # Runs this process created, by name, with when: counted until the index shows them.
    fresh: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    # status.managedRuns entries this process wrote (by name) or dropped ((name, uid)), with when.
    recorded: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    dropped: dict[tuple[str, str], float] = field(default_factory=dict)
    last_status: dict[str, Any] | None = None
    # (source run uid, trigger index) pairs fired by this process (the annotation may lag).
    fired: set[tuple[str, int]] = field(default_factory=set)
    marked: set[tuple[str, int]] = field(default_factory=set)

    def expire(self) -> None:
        horizon = time.monotonic() - FRESH_SECONDS
        for table in (self.fresh, self.recorded):
            for key in [k for k, (at, _) in table.items() if at < horizon]:
                del table[key]
        for pair in [p for p, at in self.dropped.items() if at < horizon]:
            del self.dropped[pair]

    def runs(self, indexed: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        names = {name_of(r) for r in indexed}
        for name in [n for n in self.fresh if n in names]:
            del self.fresh[name]
        return [*indexed, *(view for _, view in self.fresh.values())]

    def entries(self, seen: Sequence[ManagedRun]) -> list[ManagedRun]:
        """The record as this process last left it: seen entries, minus those it dropped, with the
        ones it wrote (an intent it has since filled in shows its uid)."""
        out = [e for e in seen if (e.name, e.uid) not in self.dropped]
        by_name = {e.name: e for e in out}
        for name, (_, raw) in self.recorded.items():
            entry = ManagedRun.model_validate(raw)
            if (entry.name, entry.uid) in self.dropped:
                continue
            known = by_name.get(name)
            if known is None:
                out.append(entry)
            elif not known.uid and entry.uid:
                out[out.index(known)] = entry
        return out

    def wrote(self, entries: Sequence[Mapping[str, Any]], dropped: Sequence[tuple[str, str]]) -> None:
        at = time.monotonic()
        for entry in entries:
            self.recorded[str(entry["name"])] = (at, dict(entry))
        for pair in dropped:
            self.dropped[pair] = at
            if pair[0] in self.recorded and (self.recorded[pair[0]][1].get("uid") or "") == pair[1]:
                del self.recorded[pair[0]]


@dataclass(frozen=True)
class Observation:
    body: dict[str, Any]
    runs: list[Mapping[str, Any]]
    finished_runs: list[Mapping[str, Any]]
    now: dt.datetime
    wall_now: dt.datetime


def observe(
    body: Mapping[str, Any],
    indexed_runs: Sequence[Mapping[str, Any]],
    finished_runs: Sequence[Mapping[str, Any]],
    memory: WorkflowMemory,
    clock: Clock,
    wall: Clock | None = None,
) -> Observation:
    """One snapshot for decide: the body with the record as this process left it, and the clocks."""
    memory.expire()
    snapshot = dict(body)
    workflow = Workflow.model_validate(snapshot)
    entries = memory.entries(workflow.status.managed_runs)
    status = dict(snapshot.get("status") or {})
    status["managedRuns"] = [e.wire() for e in entries]
    snapshot["status"] = status
    return Observation(
        body=snapshot,
        runs=memory.runs(indexed_runs),
        finished_runs=list(finished_runs),
        now=clock.now(),
        wall_now=(wall or SystemClock()).now(),
    )
