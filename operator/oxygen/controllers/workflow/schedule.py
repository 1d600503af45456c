"""The schedule policy: which fire is due and what the concurrency policy does with it. Pure.

Schedule semantics follow CronJob:
- the fires considered are those after `status.lastScheduleTime` (or the Workflow's creation);
  of those, only the most recent is started, and only within `startingDeadlineSeconds` (no storm
  after an outage; see `cron.due_fires`);
- Allow creates the run; Forbid skips the fire while a run of this workflow is unfinished (the
  skipped fire counts as handled: `lastScheduleTime` moves to it, so it is not started late);
  Replace sets `spec.cancel: true` on the unfinished runs and creates the new one.
A fire's run has a deterministic name: when the workflow's own record shows a run of that name, the
fire happened (`exists`); when a run of that name exists that the workflow did not create, the name
is taken (`taken`: nothing is created, and the fire counts as handled).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from oxygen.api.workflow import ScheduleTrigger
from oxygen.controllers.workflow import cron
from oxygen.controllers.workflow.clock import format_time
from oxygen.controllers.workflow.runs import schedule_run_name
from oxygen.controllers.workflow.views import finished, name_of

Action = Literal["none", "create", "skip", "replace", "exists", "taken"]


@dataclass(frozen=True)
class Decision:
    """What the schedule does in this pass."""

    fire: dt.datetime | None = None
    action: Action = "none"
    reason: str = ""
    message: str = ""


def decide_schedule(
    trigger: ScheduleTrigger,
    workflow_name: str,
    last: dt.datetime,
    now: dt.datetime,
    runs: Sequence[Mapping[str, Any]],
    taken: Collection[str] = (),
) -> Decision:
    """The schedule's decision (raises cron.CronError for an unusable schedule).

    `runs`: the runs this workflow manages; `taken`: names of runs it does not manage."""
    deadline = dt.timedelta(seconds=trigger.starting_deadline_seconds)
    due = cron.due_fires(trigger.cron, trigger.time_zone, last, now, deadline)
    if not due:
        missed = cron.missed_fire(trigger.cron, trigger.time_zone, last, now, deadline)
        if missed is not None:
            return Decision(
                reason="MissedSchedule",
                message=f"the fire at {format_time(missed)} was missed by more than "
                f"startingDeadlineSeconds ({trigger.starting_deadline_seconds}s); not started",
            )
        return Decision()
    fire = due[0]
    name = schedule_run_name(workflow_name, fire)
    stamp = format_time(fire)
    if any(name_of(r) == name for r in runs):
        return Decision(fire, "exists", "Fired", f"run {name} for the fire at {stamp}")
    if name in taken:
        return Decision(
            fire,
            "taken",
            "RunNameTaken",
            f"skipped the fire at {stamp}: a run named {name} exists that this workflow did not create",
        )
    active = sorted(name_of(r) for r in runs if not finished(r))
    if active and trigger.concurrency_policy == "Forbid":
        return Decision(
            fire,
            "skip",
            "SkippedConcurrent",
            f"skipped the fire at {stamp}: concurrencyPolicy Forbid and {len(active)} run(s) "
            f"unfinished ({', '.join(active[:5])})",
        )
    if active and trigger.concurrency_policy == "Replace":
        return Decision(
            fire,
            "replace",
            "Replaced",
            f"run {name} for the fire at {stamp} replaces {', '.join(active[:5])}",
        )
    return Decision(fire, "create", "Fired", f"run {name} for the fire at {stamp}")
