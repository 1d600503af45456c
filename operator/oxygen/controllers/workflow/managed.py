"""Which Runs a Workflow manages: those it recorded in `status.managedRuns` when it created them. Pure.

A label and a controller ownerReference are not proof: a user who may patch Runs can forge both.
The workflow's own status is written only by the operator (and by the CLI for `workflows run`), so
a run counts for the concurrency policy and is pruned as history only when its uid is recorded there.

Crash safety: before a create, the run's name goes into the record as an intent (no uid); once the
create returns, its uid replaces the intent. A crash in between leaves an intent whose run exists:
a run of that name controlled by this workflow is adopted. Without a crash, a create that finds the
name taken (409) drops the intent (see apply.py), so a run somebody else created under a fire's
predictable name is never adopted, unless it was created in the moments between the intent write
and a crash of the operator.

The record stays bounded: an entry is dropped once its run is pruned or gone. Runs just created
may not be in the watch yet, so an entry whose run is not seen is kept for FRESH_SECONDS after its
`since` (wall-clock time, not the schedule clock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from oxygen.api.workflow import ManagedRun
from oxygen.controllers.workflow.clock import parse_time
from oxygen.controllers.workflow.plan import Notice
from oxygen.controllers.workflow.views import controlled_by, deleting, name_of, uid_of

FRESH_SECONDS = 120.0


@dataclass
class Ownership:
    """The runs seen, sorted out against the workflow's record."""

    managed: list[Mapping[str, Any]] = field(default_factory=list)
    # Names of seen runs this workflow does not manage (a fire must not claim them).
    taken: set[str] = field(default_factory=set)
    adopt: dict[str, str] = field(default_factory=dict)
    forget: set[tuple[str, str]] = field(default_factory=set)
    notices: list[Notice] = field(default_factory=list)


def _stale(entry: ManagedRun, wall_now: dt.datetime) -> bool:
    if not entry.since:
        return True
    try:
        return (wall_now - parse_time(entry.since)).total_seconds() > FRESH_SECONDS
    except ValueError:
        return True


def sort_out(
    entries: Sequence[ManagedRun], runs: Sequence[Mapping[str, Any]], workflow_uid: str, wall_now: dt.datetime
) -> Ownership:
    by_uid = {uid_of(r): r for r in runs}
    by_name = {name_of(r): r for r in runs}
    out = Ownership()
    for entry in entries:
        if entry.uid:
            run = by_uid.get(entry.uid)
            if run is None:
                if _stale(entry, wall_now):
                    out.forget.add((entry.name, entry.uid))
            elif not deleting(run):
                out.managed.append(run)
            continue
        run = by_name.get(entry.name)
        if run is None:
            if _stale(entry, wall_now):
                out.forget.add((entry.name, ""))
        elif controlled_by(run, workflow_uid):
            out.adopt[entry.name] = uid_of(run)
            if not deleting(run):
                out.managed.append(run)
        else:
            out.forget.add((entry.name, ""))
            out.notices.append(
                Notice(
                    "RunNameTaken",
                    f"run {entry.name} exists and is not controlled by this workflow",
                    "Warning",
                )
            )
    mine = {uid_of(r) for r in out.managed}
    out.taken = {name_of(r) for r in runs if uid_of(r) not in mine}
    return out


def edited(
    entries: Iterable[Mapping[str, Any]],
    since: str,
    *,
    intend: Iterable[str] = (),
    record: Mapping[str, str] | None = None,
    drop: Iterable[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    """The record after: intents added for `intend` (names), `record` ({name: uid}) written as
    created (replacing an intent of that name, or added), and the (name, uid) pairs in `drop` removed
    (uid "" means the intent of that name)."""
    out = [dict(e) for e in entries]
    names = {e.get("name") for e in out}
    for name in intend:
        if name not in names:
            out.append({"name": name, "uid": "", "since": since})
            names.add(name)
    for name, uid in (record or {}).items():
        intent = next((e for e in out if e.get("name") == name and not e.get("uid")), None)
        if intent is not None:
            intent["uid"], intent["since"] = uid, since
        elif not any(e.get("uid") == uid for e in out):
            out.append({"name": name, "uid": uid, "since": since})
    doomed = set(drop)
    return [e for e in out if (e.get("name"), e.get("uid") or "") not in doomed]
