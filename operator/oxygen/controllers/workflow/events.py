"""The event policy: fire a workflow when a Run matching a selector finishes with a given phase.

Each (source run, trigger) fires exactly once, across operator restarts:
- the fired run's name is deterministic (`<workflow>-ev-<hash of (source uid, trigger index)>`), so
  a repeated create is a 409, not a second run;
- after firing, the source run is annotated `events.oxygen.dev/<workflow>: "<trigger indexes>"`, so
  a fire whose run was since deleted by the history limit is not repeated after a restart.
A trigger fires only for runs that finished after the Workflow was created (a new Workflow does not
replay the namespace's history), in the Workflow's namespace, and never for a run that this
workflow's own event trigger created (no self-loops). Pure: apply.py creates and marks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from oxygen.api.workflow import Workflow
from oxygen.controllers.workflow.clock import parse_time
from oxygen.controllers.workflow.plan import SourceMark
from oxygen.controllers.workflow.runs import LABEL_TRIGGER, LABEL_WORKFLOW, event_run, fit, workflow_label
from oxygen.controllers.workflow.views import phase_of

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


def decide_events(
    workflow_body: Mapping[str, Any],
    finished_runs: Iterable[Mapping[str, Any]],
    fired: AbstractSet[tuple[str, int]] = frozenset(),
    marked: AbstractSet[tuple[str, int]] = frozenset(),
) -> tuple[list[EventFire], list[SourceMark]]:
    """The fires to create now and the source marks to write. Pure.

    `fired`: (source uid, trigger index) pairs this process created already (the mark may lag);
    `marked`: pairs whose mark this process wrote (the watch may not show it yet)."""
    fires = due_event_fires(workflow_body, finished_runs)
    by_source: dict[tuple[str, str], set[int]] = {}
    for fire in fires:
        if (fire.source_uid, fire.trigger_index) not in marked:
            by_source.setdefault((fire.source_name, fire.source_uid), set()).add(fire.trigger_index)
    marks = [SourceMark(name, uid, frozenset(indexes)) for (name, uid), indexes in by_source.items()]
    return [f for f in fires if (f.source_uid, f.trigger_index) not in fired], marks
