"""The event policy, table-driven: which fires are owed, which are remembered, which sources to mark."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from oxygen.controllers.workflow.events import decide_events, fired_annotation
from oxygen.controllers.workflow.runs import LABEL_TRIGGER, LABEL_WORKFLOW
from tests.support.workflow_builders import finished_run, workflow

TRIGGERS = {
    "events": [
        {"selector": {"matchLabels": {"stage": "enrich"}}, "phase": "succeeded"},
        {"selector": {"matchLabels": {"stage": "enrich"}}, "phase": "failed"},
    ]
}


@dataclass
class Case:
    name: str
    runs: list[dict[str, Any]]
    fires: list[tuple[str, int]]
    marks: list[tuple[str, list[int]]]
    fired: set[tuple[str, int]] = field(default_factory=set)
    marked: set[tuple[str, int]] = field(default_factory=set)


CASES = [
    Case("a matching success fires trigger 0", [finished_run("ok")], [("ok", 0)], [("ok", [0])]),
    Case("a matching failure fires trigger 1", [finished_run("bad", "failed")], [("bad", 1)], [("bad", [1])]),
    Case("another phase fires nothing", [finished_run("c", "canceled")], [], []),
    Case("another selector fires nothing", [finished_run("s", labels={"stage": "score"})], [], []),
    Case("another namespace fires nothing", [finished_run("o", namespace="other")], [], []),
    Case(
        "finished before the workflow existed", [finished_run("old", finished="2020-01-01T00:00:00Z")], [], []
    ),
    Case(
        "a marked source fires nothing",
        [finished_run("m", annotations={fired_annotation("cleanup"): "0"})],
        [],
        [],
    ),
    Case(
        "this workflow's own event run fires nothing (no loops)",
        [finished_run("own", labels={"stage": "enrich", LABEL_WORKFLOW: "cleanup", LABEL_TRIGGER: "event"})],
        [],
        [],
    ),
    Case(
        "fired by this process, mark not seen yet: no second create, the mark is written",
        [finished_run("ok")],
        [],
        [("ok", [0])],
        fired={("uid-ok", 0)},
    ),
    Case(
        "fired and marked by this process: nothing to do",
        [finished_run("ok")],
        [],
        [],
        fired={("uid-ok", 0)},
        marked={("uid-ok", 0)},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_event_decision(case: Case) -> None:
    body = workflow("cleanup", triggers=TRIGGERS)
    fires, marks = decide_events(body, case.runs, case.fired, case.marked)
    assert [(f.source_name, f.trigger_index) for f in fires] == case.fires
    assert [(m.run_name, sorted(m.indexes)) for m in marks] == case.marks
