"""The Workflow pass, table-driven: what the whole decision plans from the record, the runs and the clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from oxygen.controllers.workflow.decide import decide
from oxygen.controllers.workflow.runs import event_run_name, schedule_run_name
from tests.support.workflow_builders import (
    WF_NAME,
    every_minute,
    finished_run,
    managed,
    t,
    workflow,
    workflow_run,
)

NOW = t("2030-01-01T00:02:01Z")
FIRED = schedule_run_name(WF_NAME, t("2030-01-01T00:02:00Z"))
BUSY = workflow_run("busy", "running")
DONE = workflow_run("done", "succeeded")
FORGED_BUSY = workflow_run("forged-busy", "paused")
FORGED_DONE = workflow_run("forged-done", "succeeded")
EVENT_RUN = workflow_run(event_run_name(WF_NAME, "uid-ok", 0))
EVENTS = {"events": [{"selector": {"matchLabels": {"stage": "enrich"}}, "phase": "succeeded"}]}


@dataclass
class Case:
    name: str
    runs: list[dict[str, Any]]
    record: list[dict[str, Any]]
    create: list[str]
    active: list[str]
    delete: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    adopt: dict[str, str] = field(default_factory=dict)
    triggers: dict[str, Any] = field(default_factory=lambda: every_minute("Forbid"))
    finished: list[dict[str, Any]] = field(default_factory=list)
    limits: tuple[int, int] = (0, 0)
    marks: list[str] | None = None


CASES = [
    Case(
        "a recorded unfinished run makes Forbid skip",
        [BUSY],
        managed(BUSY),
        [],
        ["busy"],
        notices=["SkippedConcurrent"],
    ),
    Case("a forged unfinished run does not", [FORGED_BUSY], [], [FIRED], [FIRED], notices=["Fired"]),
    Case(
        "a recorded finished run beyond the limit is pruned",
        [DONE],
        managed(DONE),
        [FIRED],
        [FIRED],
        ["done"],
        ["Fired", "PrunedRun"],
    ),
    Case("a forged finished run is not", [FORGED_DONE], [], [FIRED], [FIRED], notices=["Fired"]),
    Case(
        "the fire's run created before a crash is adopted, not created again",
        [workflow_run(FIRED)],
        [{"name": FIRED, "uid": "", "since": "2030-01-01T00:02:00Z"}],
        [],
        [FIRED],
        adopt={FIRED: f"uid-{FIRED}"},
    ),
    Case(
        "a squatter on the fire's name is neither adopted nor created over",
        [workflow_run(FIRED, owner="someone-else")],
        [],
        [],
        [],
        notices=["RunNameTaken"],
    ),
    Case(
        "event fires are planned with the schedule's in one pass",
        [],
        [],
        [FIRED, "nightly-ev-"],
        [FIRED],
        notices=["Fired"],
        triggers={**every_minute(), **EVENTS},
        finished=[finished_run("ok")],
    ),
    Case(
        "an event run created before a restart is not created again (only its source's mark is owed)",
        [EVENT_RUN],
        managed(EVENT_RUN),
        [],
        [EVENT_RUN["metadata"]["name"]],
        triggers=EVENTS,
        finished=[finished_run("ok")],
        marks=["ok"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_workflow_pass(case: Case) -> None:
    body = workflow(
        status={"lastScheduleTime": "2030-01-01T00:01:00Z", "managedRuns": case.record},
        triggers=case.triggers,
        successfulRunsHistoryLimit=case.limits[0],
        failedRunsHistoryLimit=case.limits[1],
    )
    plan = decide(body, case.runs, NOW, wall_now=NOW, finished_runs=case.finished)
    created = [m["metadata"]["name"] for m in plan.create]
    assert len(created) == len(case.create)
    for name, expected in zip(created, case.create, strict=True):
        assert name.startswith(expected), (name, expected)
    assert plan.status["active"] == sorted(case.active)
    assert [name for name, _ in plan.delete] == case.delete
    assert [n.reason for n in plan.notices] == case.notices
    assert plan.adopt == case.adopt
    assert {name for name, _ in plan.forget} >= set(case.delete)  # pruned runs leave the record
    if case.marks is not None:
        assert [m.run_name for m in plan.marks] == case.marks
