"""Which runs a Workflow manages (finding 8 of the tenancy issue), table-driven, and the record's edits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from oxygen.api.workflow import ManagedRun
from oxygen.controllers.workflow.managed import FRESH_SECONDS, edited, sort_out
from tests.support.workflow_builders import WF_UID, t, workflow_run

NOW = t("2030-01-01T01:00:00Z")
RECENT = "2030-01-01T00:59:30Z"
OLD = "2030-01-01T00:00:00Z"
MINE = workflow_run("mine", "running")
FORGED = workflow_run("forged", "running")  # label and controller ownerReference, but not recorded
STRANGER = workflow_run("stranger", "running", owner="other-uid")


def entry(name: str, uid: str | None = None, since: str = RECENT) -> ManagedRun:
    return ManagedRun(name=name, uid=f"uid-{name}" if uid is None else uid, since=since)


@dataclass
class Case:
    name: str
    entries: list[ManagedRun]
    runs: list[dict[str, Any]]
    managed: list[str]
    taken: set[str] = field(default_factory=set)
    adopt: dict[str, str] = field(default_factory=dict)
    forget: set[tuple[str, str]] = field(default_factory=set)
    notices: list[str] = field(default_factory=list)


CASES = [
    Case("a recorded run is managed", [entry("mine")], [MINE], ["mine"]),
    Case("label and owner forged: not managed", [entry("mine")], [MINE, FORGED], ["mine"], taken={"forged"}),
    Case("a recorded uid with a namesake of another uid", [entry("mine", "uid-old")], [MINE], [], {"mine"}),
    Case("a recorded run not yet seen is kept", [entry("new")], [], []),
    Case(
        "a recorded run long gone is forgotten",
        [entry("gone", since=OLD)],
        [],
        [],
        forget={("gone", "uid-gone")},
    ),
    Case(
        "an intent whose run is controlled by the workflow is adopted (crash after the create)",
        [entry("mine", "")],
        [MINE],
        ["mine"],
        adopt={"mine": "uid-mine"},
    ),
    Case(
        "an intent whose run another owner controls is dropped",
        [entry("stranger", "")],
        [STRANGER],
        [],
        {"stranger"},
        forget={("stranger", "")},
        notices=["RunNameTaken"],
    ),
    Case("a fresh intent without its run is kept", [entry("soon", "")], [], []),
    Case(
        "a stale intent without its run is dropped", [entry("never", "", OLD)], [], [], forget={("never", "")}
    ),
    Case(
        "a run being deleted is not counted, its entry stays",
        [entry("bye")],
        [workflow_run("bye", "succeeded", deletionTimestamp="2030-01-01T00:59:00Z")],
        [],
        {"bye"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_sort_out(case: Case) -> None:
    out = sort_out(case.entries, case.runs, WF_UID, NOW)
    assert [r["metadata"]["name"] for r in out.managed] == case.managed
    assert out.taken == case.taken
    assert out.adopt == case.adopt
    assert out.forget == case.forget
    assert [n.reason for n in out.notices] == case.notices


def test_the_grace_is_the_fresh_window() -> None:
    edge = t("2030-01-01T01:00:00Z")
    just = entry("x", since="2030-01-01T00:58:00Z")  # exactly FRESH_SECONDS before
    assert FRESH_SECONDS == 120.0
    assert sort_out([just], [], WF_UID, edge).forget == set()


def test_record_edits() -> None:
    since = "2030-01-01T00:00:00Z"
    record = edited([], since, intend=["a", "b"])
    assert record == [{"name": "a", "uid": "", "since": since}, {"name": "b", "uid": "", "since": since}]
    assert edited(record, since, intend=["a"]) == record  # an intent is written once
    record = edited(record, "later", record={"a": "uid-a", "c": "uid-c"}, drop=[("b", "")])
    assert record == [
        {"name": "a", "uid": "uid-a", "since": "later"},
        {"name": "c", "uid": "uid-c", "since": "later"},
    ]
    assert edited(record, since, record={"c": "uid-c"}) == record  # recorded once
    assert edited(record, since, drop=[("a", "uid-a")]) == [record[1]]
    assert edited(record, since, drop=[("a", "uid-other")]) == record  # a namesake's pair removes nothing
