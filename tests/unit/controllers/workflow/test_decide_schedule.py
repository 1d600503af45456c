"""The schedule policy, table-driven: due fires, the concurrency policy, what the workflow manages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from oxygen.api.workflow import ScheduleTrigger
from oxygen.controllers.workflow.runs import schedule_run_name
from oxygen.controllers.workflow.schedule import decide_schedule
from tests.support.workflow_builders import WF_NAME, t, workflow_run

LAST = t("2030-01-01T00:01:00Z")
FIRE = t("2030-01-01T00:02:00Z")
FIRED = schedule_run_name(WF_NAME, FIRE)


@dataclass
class Case:
    name: str
    now: str
    action: str
    reason: str = ""
    policy: str = "Allow"
    runs: list[dict[str, Any]] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)
    cron: str = "* * * * *"
    deadline: int = 300


CASES = [
    Case("nothing due within the minute", "2030-01-01T00:01:59Z", "none"),
    Case("a due fire is created", "2030-01-01T00:02:05Z", "create", "Fired"),
    Case("catch-up: only the latest fire", "2030-01-01T00:09:10Z", "create", "Fired"),
    Case(
        "a fire older than the deadline is missed",
        "2030-01-01T01:05:00Z",
        "none",
        "MissedSchedule",
        cron="0 * * * *",
        deadline=60,
    ),
    Case(
        "Allow with an unfinished run",
        "2030-01-01T00:02:01Z",
        "create",
        "Fired",
        runs=[workflow_run("busy", "running")],
    ),
    Case(
        "Forbid with an unfinished run skips",
        "2030-01-01T00:02:01Z",
        "skip",
        "SkippedConcurrent",
        "Forbid",
        [workflow_run("busy", "running")],
    ),
    Case(
        "Forbid with only finished runs fires",
        "2030-01-01T00:02:01Z",
        "create",
        "Fired",
        "Forbid",
        [workflow_run("old", "succeeded")],
    ),
    Case(
        "Replace with an unfinished run replaces",
        "2030-01-01T00:02:01Z",
        "replace",
        "Replaced",
        "Replace",
        [workflow_run("busy", "paused")],
    ),
    Case(
        "the fire's run is managed already: it exists",
        "2030-01-01T00:02:30Z",
        "exists",
        "Fired",
        "Forbid",
        [workflow_run(FIRED)],
    ),
    Case(
        "the fire's name is taken by a run the workflow did not create",
        "2030-01-01T00:02:30Z",
        "taken",
        "RunNameTaken",
        taken={FIRED},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_schedule_decision(case: Case) -> None:
    trigger = ScheduleTrigger(
        cron=case.cron,
        concurrency_policy=case.policy,
        starting_deadline_seconds=case.deadline,
    )
    decision = decide_schedule(trigger, WF_NAME, LAST, t(case.now), case.runs, case.taken)
    assert decision.action == case.action
    assert decision.reason == case.reason
    if case.action in ("create", "replace", "skip", "exists", "taken"):
        assert decision.fire is not None and decision.fire <= t(case.now)
