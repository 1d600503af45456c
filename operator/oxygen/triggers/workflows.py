"""The Workflow reconciler: schedule fires, concurrency policy, status and the history limit.

`reconcile(workflow_body, runs_of_workflow, now)` is one pure, idempotent pass that returns a `Plan`;
`WorkflowReconciler.apply` carries it out with the operator's client. Repeating a pass is harmless:
a schedule fire's run has a deterministic name (a second create is a 409, and a run that already
exists for a fire counts as that fire), cancels and deletes are idempotent, and the status is
written only when it changes.

Schedule semantics follow CronJob:
- the fires considered are those after `status.lastScheduleTime` (or the Workflow's creation);
  of those, only the most recent is started, and only within `startingDeadlineSeconds` (no storm
  after an outage; see `schedule.due_fires`);
- Allow creates the run; Forbid skips the fire while a run of this workflow is unfinished (the
  skipped fire counts as handled: `lastScheduleTime` moves to it, so it is not started late);
  Replace sets `spec.cancel: true` on the unfinished runs and creates the new one.

Runs of a workflow are the Runs it controls (ownerReference with controller=true); only those are
counted as active and pruned. History: finished runs beyond `successfulRunsHistoryLimit` (phase
succeeded) and `failedRunsHistoryLimit` (failed, completed, canceled) are deleted, oldest first.
`status.runsCreated` is a counter written only by `record_created` (optimistic concurrency), so the
webhook, event triggers and this pass never overwrite each other's counts.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from oxygen.api.common import GROUP, VERSION, Condition
from oxygen.api.run import TERMINAL_PHASES
from oxygen.api.workflow import ScheduleTrigger, Workflow
from oxygen.kube.client import Kube
from oxygen.status.run import set_condition
from oxygen.triggers import schedule
from oxygen.triggers.clock import Clock, format_time, parse_time
from oxygen.triggers.runs import schedule_run, schedule_run_name

log = logging.getLogger("oxygen.triggers")

SUCCEEDED_PHASES = frozenset({"succeeded"})
FAILED_PHASES = frozenset({"failed", "completed", "canceled"})
# How long a run this operator created is assumed to exist before the watch shows it.
FRESH_SECONDS = 120.0


# -- views of Runs (what the kopf index keeps) -----------------------------------------------------


def run_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a Run this module reads, shaped like the Run (so whole bodies work too)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    return {
        "metadata": {
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", ""),
            "uid": meta.get("uid", ""),
            "labels": dict(meta.get("labels") or {}),
            "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if GROUP in k},
            "ownerReferences": [dict(o) for o in meta.get("ownerReferences") or []],
            "creationTimestamp": meta.get("creationTimestamp"),
            "deletionTimestamp": meta.get("deletionTimestamp"),
        },
        "spec": {"cancel": bool(spec.get("cancel", False))},
        "status": {"phase": status.get("phase"), "finishedAt": status.get("finishedAt")},
    }


def name_of(run: Mapping[str, Any]) -> str:
    return str(run["metadata"]["name"])


def phase_of(run: Mapping[str, Any]) -> str | None:
    phase = (run.get("status") or {}).get("phase")
    return str(phase) if phase else None


def finished(run: Mapping[str, Any]) -> bool:
    return phase_of(run) in TERMINAL_PHASES


def controlled_by(run: Mapping[str, Any], uid: str) -> bool:
    refs = (run.get("metadata") or {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def history_key(run: Mapping[str, Any]) -> tuple[str, str]:
    """Oldest first: by creation time, then name (creation times have one-second resolution)."""
    return (str(run["metadata"].get("creationTimestamp") or ""), name_of(run))


# -- the pure pass ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event to post on the Workflow."""

    reason: str
    message: str
    type: str = "Normal"


@dataclass
class Plan:
    create: list[dict[str, Any]] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    # (name, uid): the uid is a delete precondition, so a newer run of the same name is never hit.
    delete: list[tuple[str, str]] = field(default_factory=list)
    # The status to hold (runsCreated excluded: see record_created).
    status: dict[str, Any] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)


def prune(
    runs: Sequence[Mapping[str, Any]], successful_limit: int, failed_limit: int
) -> list[Mapping[str, Any]]:
    """The finished runs beyond the history limits, oldest first."""
    doomed: list[Mapping[str, Any]] = []
    for phases, limit in ((SUCCEEDED_PHASES, successful_limit), (FAILED_PHASES, failed_limit)):
        done = sorted((r for r in runs if phase_of(r) in phases), key=history_key)
        doomed.extend(done[: max(len(done) - limit, 0)])
    return sorted(doomed, key=history_key)


@dataclass(frozen=True)
class Decision:
    """What the schedule does in this pass."""

    fire: dt.datetime | None = None
    action: str = "none"  # none | create | skip | replace | exists
    reason: str = ""
    message: str = ""


def decide(
    trigger: ScheduleTrigger,
    workflow_name: str,
    last: dt.datetime,
    now: dt.datetime,
    runs: Sequence[Mapping[str, Any]],
) -> Decision:
    """The schedule's decision for this pass (raises schedule.CronError for an unusable schedule)."""
    deadline = dt.timedelta(seconds=trigger.starting_deadline_seconds)
    due = schedule.due_fires(trigger.cron, trigger.time_zone, last, now, deadline)
    if not due:
        missed = schedule.missed_fire(trigger.cron, trigger.time_zone, last, now, deadline)
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


def reconcile(
    workflow_body: Mapping[str, Any],
    runs_of_workflow: Sequence[Mapping[str, Any]],
    now: dt.datetime,
    last_schedule: dt.datetime | None = None,
) -> Plan:
    """One pass. `runs_of_workflow`: the Runs labelled with this workflow (others are ignored);
    `last_schedule`: a newer lastScheduleTime than the body shows, if the caller knows one."""
    workflow = Workflow.model_validate(workflow_body)
    meta = workflow.metadata
    stamp = format_time(now)
    runs = [
        r
        for r in runs_of_workflow
        if controlled_by(r, meta.uid) and not (r.get("metadata") or {}).get("deletionTimestamp")
    ]
    plan = Plan()
    conditions: list[Condition] = list(workflow.status.conditions)
    last_text = workflow.status.last_schedule_time
    active = {name_of(r) for r in runs if not finished(r)}

    trigger = workflow.spec.triggers.schedule
    ready, ready_reason, ready_message = True, "Reconciled", "triggers are valid"
    if trigger is None:
        conditions = [c for c in conditions if c.type != "Scheduled"]
    else:
        last = _latest(last_text, last_schedule) or parse_time(meta.creation_timestamp or stamp)
        try:
            decision = decide(trigger, meta.name, last, now, runs)
        except schedule.CronError as err:
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

    spec = workflow.spec
    for run in prune(runs, spec.successful_runs_history_limit, spec.failed_runs_history_limit):
        plan.delete.append((name_of(run), str(run["metadata"].get("uid") or "")))
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


def _latest(text: str | None, known: dt.datetime | None) -> dt.datetime | None:
    seen = parse_time(text) if text else None
    if seen is None or (known is not None and known > seen):
        return known
    return seen


def status_changed(current: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    return any(current.get(key) != value for key, value in desired.items())


# -- carrying out a plan ---------------------------------------------------------------------------


@dataclass
class WorkflowState:
    """What one Workflow's daemon remembers between passes (the watch may lag its own writes)."""

    last_schedule: dt.datetime | None = None
    # Runs this process created, by name, with when: counted until the index shows them.
    fresh: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    last_status: dict[str, Any] | None = None
    # (source run uid, trigger index) pairs fired by this process (the annotation may lag).
    fired: set[tuple[str, int]] = field(default_factory=set)
    marked: set[tuple[str, int]] = field(default_factory=set)

    def merge(self, indexed: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        names = {name_of(r) for r in indexed}
        horizon = time.monotonic() - FRESH_SECONDS
        for name, (at, _) in list(self.fresh.items()):
            if name in names or at < horizon:
                del self.fresh[name]
        return [*indexed, *(view for _, view in self.fresh.values())]


class WorkflowReconciler:
    def __init__(self, kube: Kube, clock: Clock) -> None:
        self.kube = kube
        self.clock = clock

    def reconcile(
        self, body: dict[str, Any], indexed_runs: Sequence[Mapping[str, Any]], state: WorkflowState
    ) -> None:
        """One pass for one Workflow (blocking: call it from a thread)."""
        runs = state.merge(indexed_runs)
        now = self.clock.now()
        plan = reconcile(body, runs, now, state.last_schedule)
        self.apply(body, plan, state)

    def apply(self, body: dict[str, Any], plan: Plan, state: WorkflowState) -> None:
        meta = body["metadata"]
        ns, name = meta["namespace"], meta["name"]
        for run_name in plan.cancel:
            self._cancel(ns, run_name)
        created = 0
        for manifest in plan.create:
            if self.create_run(ns, manifest, state) is not None:
                created += 1
        if "lastScheduleTime" in plan.status:
            state.last_schedule = _latest(plan.status["lastScheduleTime"], state.last_schedule)
        current = body.get("status") or {}
        if created:
            # One write: the new count together with the fire's lastScheduleTime and active list.
            record_created(self.kube, ns, name, created, plan.status)
            state.last_status = plan.status
        elif status_changed(current, plan.status) and plan.status != state.last_status:
            try:
                self.kube.patch_status("workflows", ns, name, plan.status)
                state.last_status = plan.status
            except ApiException as err:
                if err.status != 404:
                    raise
        for run_name, uid in plan.delete:
            self._delete(ns, run_name, uid)
        for notice in plan.notices:
            self._notice(body, notice)

    def create_run(
        self, namespace: str, manifest: dict[str, Any], state: WorkflowState | None
    ) -> dict[str, Any] | None:
        """Create a Run; None when one of that name exists already (the fire happened before)."""
        try:
            created: dict[str, Any] = self.kube.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "runs", manifest
            )
        except ApiException as err:
            if err.status == 409:
                return None
            raise
        log.info(
            "workflow %s/%s: created run %s (trigger %s)",
            namespace,
            manifest["spec"]["workflowRef"]["name"],
            created["metadata"]["name"],
            manifest["spec"]["trigger"],
        )
        if state is not None:
            state.fresh[created["metadata"]["name"]] = (time.monotonic(), run_view(created))
        return created

    def _cancel(self, namespace: str, run_name: str) -> None:
        try:
            self.kube.patch_spec("runs", namespace, run_name, {"cancel": True})
        except ApiException as err:
            if err.status != 404:
                raise

    def _delete(self, namespace: str, run_name: str, uid: str) -> None:
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            self.kube.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "runs", run_name, body=body
            )
        except ApiException as err:
            if err.status not in (404, 409):
                raise

    def _notice(self, body: dict[str, Any], notice: Notice) -> None:
        try:
            self.kube.event({"kind": "Workflow", **body}, notice.reason, notice.message, notice.type)
        except ApiException as err:  # an Event is best effort; the pass itself succeeded
            log.warning("could not post event %s: %s", notice.reason, err.reason)


def record_created(
    kube: Kube,
    namespace: str,
    name: str,
    count: int = 1,
    status: Mapping[str, Any] | None = None,
    attempts: int = 8,
) -> None:
    """Add `count` to the Workflow's status.runsCreated, with `status` in the same write.

    Optimistic concurrency (the read resourceVersion is a precondition), retried on conflict.
    """
    for _ in range(attempts):
        try:
            workflow = kube.get("workflows", namespace, name)
            current = int((workflow.get("status") or {}).get("runsCreated") or 0)
            kube.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                "workflows",
                name,
                {
                    "metadata": {"resourceVersion": workflow["metadata"]["resourceVersion"]},
                    "status": {**(status or {}), "runsCreated": current + count},
                },
            )
            return
        except ApiException as err:
            if err.status == 404:
                return
            if err.status != 409:
                raise
    log.warning("workflow %s/%s: runsCreated not updated after %d conflicts", namespace, name, attempts)
