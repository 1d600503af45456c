"""The CreditAccount decision, table-driven: totals, the bounded run list, conditions, Events, no-ops."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from oxygen.controllers.creditaccount.decide import MAX_RUNS_LISTED, comparable_form, decide
from oxygen.controllers.creditaccount.observe import observe
from oxygen.credits.ledger import RunShare
from tests.support.workflow_builders import account, share

NOW = "2030-01-01T00:00:00Z"


@dataclass
class Case:
    name: str
    grants: dict[str, str]
    shares: list[RunShare]
    expect: dict[str, Any]
    ready: str = "True"
    overdrawn: str = "False"
    notices: list[str] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)


CASES = [
    Case(
        "no runs: everything granted is available",
        {"plan": "100", "topup": "0.5"},
        [],
        {"granted": "100.5", "captured": "0", "reserved": "0", "available": "100.5", "runsTotal": 0},
    ),
    Case(
        "a running run holds, a finished one captured and released",
        {"plan": "100"},
        [share("a", "running", reserved="30"), share("b", "succeeded", captured="20", released="5")],
        {"granted": "100", "captured": "20", "reserved": "30", "released": "5", "available": "50"},
    ),
    Case(
        "a provider charging over its estimate overdraws the account: condition and one Warning",
        {"plan": "10"},
        [share("a", "succeeded", captured="12.25")],
        {"available": "-2.25"},
        overdrawn="True",
        notices=["Overdrawn"],
    ),
    Case(
        "already overdrawn: the condition stays, no second Event",
        {"plan": "10"},
        [share("a", "succeeded", captured="12")],
        {"available": "-2"},
        overdrawn="True",
        conditions=[
            {
                "type": "Overdrawn",
                "status": "True",
                "reason": "Overdrawn",
                "message": "m",
                "lastTransitionTime": NOW,
            }
        ],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_account_status(case: Case) -> None:
    body = account(grants=case.grants, conditions=case.conditions)
    plan = decide(observe(body, case.shares, NOW), None)
    assert plan.status is not None
    for key, value in case.expect.items():
        assert plan.status[key] == value, key
    conditions = {c["type"]: c for c in plan.status["conditions"]}
    assert conditions["Ready"]["status"] == case.ready
    assert conditions["Overdrawn"]["status"] == case.overdrawn
    assert [n.reason for n in plan.notices] == case.notices
    assert plan.comparable == comparable_form(plan.status)


def test_the_run_list_is_bounded_and_lists_holders_first() -> None:
    shares = [share(f"done-{i:03}", "succeeded", captured="1") for i in range(MAX_RUNS_LISTED)]
    shares.append(share("zz-running", "running", reserved="2"))
    plan = decide(observe(account(grants={"plan": "1000"}), shares, NOW), None)
    assert plan.status is not None
    assert plan.status["runsTotal"] == MAX_RUNS_LISTED + 1
    assert len(plan.status["runs"]) == MAX_RUNS_LISTED
    assert plan.status["runs"][0]["name"] == "zz-running"
    assert plan.status["captured"] == str(MAX_RUNS_LISTED)  # totals count every run, listed or not


def test_an_unchanged_account_plans_no_write_even_at_a_later_time() -> None:
    body = account(grants={"plan": "5"})
    first = decide(observe(body, [share("a", reserved="1")], NOW), None)
    assert first.status is not None
    again = decide(observe(body, [share("a", reserved="1")], "2030-01-01T00:00:09Z"), first.comparable)
    assert again.status is None and again.notices == []
    changed = decide(observe(body, [share("a", reserved="2")], NOW), first.comparable)
    assert changed.status is not None and changed.status["reserved"] == "2"
