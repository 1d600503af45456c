"""Event triggers: fire a workflow when a Run matching a selector finishes with a given phase.

Each (source run, trigger) fires exactly once, across operator restarts:
- the fired run's name is deterministic (`<workflow>-ev-<hash of (source uid, trigger index)>`), so
  a repeated create is a 409, not a second run;
- after firing, the source run is annotated `events.oxygen.dev/<workflow>: "<trigger indexes>"`, so
  a fire whose run was since deleted by the history limit is not repeated after a restart.
A trigger fires only for runs that finished after the Workflow was created (a new Workflow does not
replay the namespace's history), in the Workflow's namespace, and never for a run that this
workflow's own event trigger created (no self-loops).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from oxygen.api.common import GROUP, VERSION
from oxygen.api.workflow import Workflow
from oxygen.kube.client import Kube
from oxygen.triggers.clock import parse_time
from oxygen.triggers.runs import LABEL_TRIGGER, LABEL_WORKFLOW, event_run, fit, workflow_label
from oxygen.triggers.workflows import WorkflowReconciler, WorkflowState, phase_of, record_created

log = logging.getLogger("oxygen.triggers")

FIRED_PREFIX = "events.oxygen.dev/"
EVENT_PHASES = frozenset({"succeeded", "completed", "failed", "canceled"})


def fired_annotation(workflow_name: str) -> str:
    return FIRED_PREFIX + fit(workflow_name)


def fired_indexes(annotations: Mapping[str, str], workflow_name: str) -> set[int]:
    raw = annotations.get(fired_annotation(workflow_name), "")
    return {int(part) for part in raw.split(",") if part.strip().isdigit()}


@dataclass(frozen=True)
class EventFire:
    source_name: str
    source_uid: str
    trigger_index: int
    manifest: dict[str, Any]


def matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def due_event_fires(
    workflow_body: Mapping[str, Any], finished_runs: Iterable[Mapping[str, Any]]
) -> list[EventFire]:
    """The fires this workflow's event triggers owe for these finished runs (not yet marked). Pure."""
    workflow = Workflow.model_validate(workflow_body)
    triggers = workflow.spec.triggers.events
    if not triggers:
        return []
    meta = workflow.metadata
    since = parse_time(meta.creation_timestamp) if meta.creation_timestamp else None
    own_label = workflow_label(meta.name)
    fires: list[EventFire] = []
    for run in finished_runs:
        run_meta = run.get("metadata") or {}
        phase = phase_of(run)
        if phase not in EVENT_PHASES or run_meta.get("namespace") != meta.namespace:
            continue
        if run_meta.get("deletionTimestamp"):
            continue
        labels: Mapping[str, str] = run_meta.get("labels") or {}
        if labels.get(LABEL_WORKFLOW) == own_label and labels.get(LABEL_TRIGGER) == "event":
            continue  # this workflow's own event run: firing again would loop
        ended = (run.get("status") or {}).get("finishedAt") or run_meta.get("creationTimestamp")
        if since is not None and ended and parse_time(ended) < since:
            continue
        uid = str(run_meta.get("uid") or "")
        already = fired_indexes(run_meta.get("annotations") or {}, meta.name)
        for index, trigger in enumerate(triggers):
            if trigger.phase != phase or not matches(trigger.selector.match_labels, labels):
                continue
            if index in already:
                continue
            source = {"name": run_meta.get("name", ""), "uid": uid}
            fires.append(
                EventFire(source["name"], uid, index, event_run(workflow_body, source, index, trigger.inputs))
            )
    return fires


def fire_events(
    reconciler: WorkflowReconciler,
    workflow_body: Mapping[str, Any],
    finished_runs: Sequence[Mapping[str, Any]],
    state: WorkflowState,
) -> int:
    """Create the runs the event triggers owe, then mark their sources; returns runs created."""
    kube = reconciler.kube
    meta = workflow_body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    created = 0
    fires = due_event_fires(workflow_body, finished_runs)
    for fire in fires:
        key = (fire.source_uid, fire.trigger_index)
        if key in state.fired:
            continue  # fired by this process; its mark has not reached the watch yet
        if reconciler.create_run(namespace, fire.manifest, state) is not None:
            created += 1
        state.fired.add(key)
    if created:
        record_created(kube, namespace, name, created)
    by_source: dict[tuple[str, str], set[int]] = {}
    for fire in fires:
        if (fire.source_uid, fire.trigger_index) not in state.marked:
            by_source.setdefault((fire.source_name, fire.source_uid), set()).add(fire.trigger_index)
    for (source_name, uid), indexes in by_source.items():
        if _mark_fired(kube, namespace, source_name, uid, name, indexes):
            state.marked.update((uid, index) for index in indexes)
    return created


def _mark_fired(
    kube: Kube, namespace: str, run_name: str, uid: str, workflow_name: str, indexes: set[int]
) -> bool:
    """Record on the source run which of this workflow's triggers it fired (a merge patch of one key)."""
    try:
        run = kube.get("runs", namespace, run_name)
        if run["metadata"].get("uid") != uid:
            return True  # the source was replaced by a namesake: nothing left to mark
        key = fired_annotation(workflow_name)
        merged = fired_indexes(run["metadata"].get("annotations") or {}, workflow_name) | indexes
        kube.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            "runs",
            run_name,
            {
                "metadata": {
                    "resourceVersion": run["metadata"]["resourceVersion"],
                    "annotations": {key: ",".join(str(i) for i in sorted(merged))},
                }
            },
        )
        return True
    except ApiException as err:
        if err.status == 404:
            return True  # the source is gone
        if err.status == 409:
            return False  # it changed under us: the next pass marks it again
        raise
