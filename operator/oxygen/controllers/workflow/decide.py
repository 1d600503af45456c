"""The Workflow decision: one pure, top-down pass that hands each policy to its own module.

observe (the workflow, its runs and the namespace's finished runs from the indexes, the clocks) →
`decide` → a `Plan` → apply. In order: which runs the workflow manages (managed.py), the schedule
(schedule.py), the event triggers (events.py), the history limit (history.py), then the status.

Repeating a pass is harmless: a fire's run has a deterministic name (a second create is a 409, and
a run the workflow's record shows for a fire counts as that fire), cancels and deletes are
idempotent, and the status is written only when it changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from oxygen.api.common import Condition
from oxygen.api.workflow import Workflow
from oxygen.controllers.workflow import cron
from oxygen.controllers.workflow.clock import format_time, parse_time
from oxygen.controllers.workflow.events import decide_events
from oxygen.controllers.workflow.history import prune
from oxygen.controllers.workflow.managed import sort_out
from oxygen.controllers.workflow.plan import Notice, Plan
from oxygen.controllers.workflow.runs import schedule_run
from oxygen.controllers.workflow.schedule import Decision, decide_schedule
from oxygen.controllers.workflow.views import finished, name_of, phase_of
from oxygen.status.run import set_condition


def decide(
    workflow_body: Mapping[str, Any],
    runs_of_workflow: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    last_schedule: dt.datetime | None = None,
    *,
    wall_now: dt.datetime | None = None,
    finished_runs: Sequence[Mapping[str, Any]] = (),
    fired: AbstractSet[tuple[str, int]] = frozenset(),
    marked: AbstractSet[tuple[str, int]] = frozenset(),
) -> Plan:
    """One pass.

    `runs_of_workflow`: the Runs labelled with this workflow (only those its record names count);
    `now`: the schedule clock; `wall_now`: the real time, for the record's grace (default `now`);
    `last_schedule`: a newer lastScheduleTime than the body shows, if the caller knows one;
    `finished_runs`: the namespace's finished runs, for the event triggers; `fired`, `marked`: what
    this process did for event fires that the watch may not show yet."""
    workflow = Workflow.model_validate(dict(workflow_body))
    meta = workflow.metadata
    stamp = format_time(now)
    plan = Plan()
    owned = sort_out(workflow.status.managed_runs, runs_of_workflow, meta.uid, wall_now or now)
    runs = owned.managed
    plan.adopt, plan.forget = owned.adopt, set(owned.forget)
    plan.notices.extend(owned.notices)
    conditions: list[Condition] = list(workflow.status.conditions)
    last_text = workflow.status.last_schedule_time
    active = {name_of(r) for r in runs if not finished(r)}

    trigger = workflow.spec.triggers.schedule
    ready, ready_reason, ready_message = True, "Reconciled", "triggers are valid"
    if trigger is None:
        conditions = [c for c in conditions if c.type != "Scheduled"]
    else:
        last = latest_schedule(last_text, last_schedule) or parse_time(meta.creation_timestamp or stamp)
        try:
            decision = decide_schedule(trigger, meta.name, last, now, runs, owned.taken)
        except cron.CronError as err:
            ready, ready_reason, ready_message = False, "InvalidSchedule", str(err)
            decision = Decision()
        if decision.fire is not None:
            last_text = format_time(decision.fire)
        if decision.action in ("create", "replace"):
            manifest = schedule_run(workflow_body, decision.fire or now)
            plan.create.append(manifest)
            active.add(manifest["metadata"]["name"])
        if decision.action == "replace":
            plan.cancel = sorted(
                name_of(r) for r in runs if not finished(r) and not (r.get("spec") or {}).get("cancel")
            )
        previous = next((c for c in conditions if c.type == "Scheduled"), None)
        repeated = previous is not None and (previous.reason, previous.message) == (
            decision.reason,
            decision.message,
        )
        if decision.reason and decision.action != "exists" and not repeated:
            kind = "Normal" if decision.action in ("create", "replace") else "Warning"
            plan.notices.append(Notice(decision.reason, decision.message, kind))
        if decision.reason:
            ok = decision.action in ("create", "replace", "exists")
            conditions = set_condition(
                conditions, "Scheduled", ok, decision.reason, decision.message, stamp, meta.generation
            )
        elif ready and not any(c.type == "Scheduled" for c in conditions):
            conditions = set_condition(
                conditions, "Scheduled", True, "Waiting", "no fire is due yet", stamp, meta.generation
            )
    conditions = set_condition(
        conditions, "Ready", ready, ready_reason, ready_message, stamp, meta.generation
    )

    if workflow.spec.triggers.events:
        fires, plan.marks = decide_events(workflow_body, finished_runs, fired, marked)
        mine = {name_of(r) for r in runs}
        for fire in fires:
            if fire.manifest["metadata"]["name"] in mine:
                continue  # created before a restart, its source not marked yet: only the mark is owed
            plan.create.append(fire.manifest)
            plan.event_fires.append((fire.source_uid, fire.trigger_index))

    spec = workflow.spec
    for run in prune(runs, spec.successful_runs_history_limit, spec.failed_runs_history_limit):
        uid = str(run["metadata"].get("uid") or "")
        plan.delete.append((name_of(run), uid))
        plan.forget.add((name_of(run), uid))
        plan.notices.append(
            Notice("PrunedRun", f"deleted run {name_of(run)} ({phase_of(run)}): beyond the history limit")
        )

    plan.status = {
        "active": sorted(active),
        "observedGeneration": meta.generation,
        "conditions": [c.wire() for c in conditions],
    }
    if last_text is not None:
        plan.status["lastScheduleTime"] = last_text
    return plan


def latest_schedule(text: str | None, known: dt.datetime | None) -> dt.datetime | None:
    """The later of a lastScheduleTime text and a time the caller remembers."""
    seen = parse_time(text) if text else None
    if seen is None or (known is not None and known > seen):
        return known
    return seen


def status_changed(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in desired.items())
