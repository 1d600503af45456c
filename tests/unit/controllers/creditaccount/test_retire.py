"""Deleted runs: their figures are folded into the account once, and outlive the Run (issue 19, 6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.creditaccount import MAX_RETIRED_LISTED, Retired
from oxygen.controllers.creditaccount import retire
from oxygen.controllers.creditaccount.decide import decide
from oxygen.controllers.creditaccount.observe import observe
from oxygen.credits import ledger
from oxygen.credits.ledger import RunShare
from tests.support.workflow_builders import account, retired, share

NOW = "2030-01-01T00:00:00Z"
GONE = "2030-01-01T00:00:05Z"


@dataclass
class Case:
    name: str
    shares: list[RunShare]
    expect: dict[str, str | int]
    retired_before: dict[str, Any] | None = None
    folded: list[str] = field(default_factory=list)  # uids in status.retired.latest, newest first
    release: list[str] = field(default_factory=list)
    runs_listed: list[str] = field(default_factory=list)


CASES = [
    Case(
        "a finished run being deleted: its capture stays, available unchanged",
        [share("a", "succeeded", captured="50", released="10", deleted_at=GONE)],
        {"captured": "50", "reserved": "0", "released": "10", "available": "50", "runsTotal": 0},
        folded=["uid-a"],
        release=["a"],
    ),
    Case(
        "a run deleted while running: captured so far settled, its reservation released",
        [share("a", "running", reserved="30", captured="20", deleted_at=GONE), share("b", reserved="5")],
        {"captured": "20", "reserved": "5", "released": "30", "available": "75", "runsTotal": 1},
        folded=["uid-a"],
        release=["a"],
        runs_listed=["b"],
    ),
    Case(
        "folded before a crash, finalizer not yet removed: not counted twice, released again",
        [share("a", "succeeded", captured="50", deleted_at=GONE)],
        {"captured": "50", "available": "50", "runsTotal": 0},
        retired_before=retired(("a", "50", "0")),
        folded=["uid-a"],
        release=["a"],
    ),
    Case(
        "gone runs stay counted from the account alone",
        [share("b", "succeeded", captured="1")],
        {"captured": "51", "released": "2", "available": "49", "runsTotal": 1},
        retired_before=retired(("a", "50", "2")),
        folded=["uid-a"],
        runs_listed=["b"],
    ),
    Case(
        "a deleting run without the finalizer (unmetered, or the operator's older Runs) is not folded",
        [share("a", "succeeded", captured="0", deleted_at=GONE, held=False)],
        {"captured": "0", "runsTotal": 1},
        runs_listed=["a"],
    ),
    Case(
        "a run deleted mid-flight is not folded while its Jobs may still spend credits",
        [share("a", "running", reserved="30", captured="20", deleted_at=GONE, settled=False)],
        {"captured": "20", "reserved": "30", "released": "0", "runsTotal": 1},
        runs_listed=["a"],
    ),
    Case(
        "once stopped and settled, its final capture is folded in",
        [share("a", "canceled", captured="26", released="24", deleted_at=GONE, settled=True)],
        {"captured": "26", "reserved": "0", "released": "24", "available": "74", "runsTotal": 0},
        folded=["uid-a"],
        release=["a"],
    ),
    Case(
        "a run that is not being deleted keeps its finalizer",
        [share("a", "succeeded", captured="7")],
        {"captured": "7", "runsTotal": 1},
        runs_listed=["a"],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_deleted_runs_fold_into_the_account(case: Case) -> None:
    body = account(grants={"plan": "100"}, retired=case.retired_before)
    plan = decide(observe(body, case.shares, NOW), None)
    assert plan.status is not None
    for key, value in case.expect.items():
        assert plan.status[key] == value, key
    s = plan.status
    assert Decimal(s["granted"]) == Decimal(s["captured"]) + Decimal(s["reserved"]) + Decimal(s["available"])
    assert [r["uid"] for r in s["retired"]["latest"]] == case.folded
    assert plan.release == case.release
    assert [r["name"] for r in s["runs"]] == case.runs_listed


def test_folding_is_idempotent_in_every_order() -> None:
    """fold written / finalizer not removed / the index still lagging: the totals never move."""
    deleting = share("a", "succeeded", captured="50", released="3", deleted_at=GONE)
    once = retire.fold(Retired(), [deleted := deleting])
    assert retire.fold(once, [deleted]) == once  # the next pass finds the run still there
    assert retire.fold(once, []) == once  # the run is gone
    grants = account(grants={"plan": "100"})["spec"]["grants"]
    from oxygen.api.creditaccount import Grant

    parsed = [Grant.model_validate(g) for g in grants]
    with_run = ledger.account_totals(parsed, [deleted], once)
    without = ledger.account_totals(parsed, [], once)
    before = ledger.account_totals(parsed, [deleted], Retired())
    assert with_run == without
    assert (
        (with_run.captured, with_run.available)
        == (before.captured, before.available)
        == (Decimal(50), Decimal(50))
    )


def _passes(shares: list[RunShare], release_works: bool = True, passes: int = 20) -> tuple[Retired, int]:
    """Account passes over runs deleted at once; a released run is gone from the next pass."""
    folded, gone, used = Retired(), set(), 0
    for _ in range(passes):
        left = [s for s in shares if s.name not in gone]
        if not left:
            break
        folded = retire.fold(folded, left)
        if release_works:
            gone |= set(retire.releasable(folded, left))
        used += 1
    return folded, used


def test_many_runs_deleted_at_once_are_folded_a_few_per_pass_each_once() -> None:
    shares = [
        share(f"r{i:03}", "succeeded", captured="1", deleted_at=GONE) for i in range(MAX_RETIRED_LISTED + 5)
    ]
    folded, used = _passes(shares)
    assert folded.runs == MAX_RETIRED_LISTED + 5
    assert folded.captured == MAX_RETIRED_LISTED + 5
    assert len(folded.latest) == MAX_RETIRED_LISTED
    assert used == 6  # FOLD_PER_PASS at a time


def test_runs_never_let_go_are_never_counted_twice() -> None:
    """Finalizer removal failing pass after pass: the list fills, nothing is folded twice."""
    shares = [
        share(f"r{i:03}", "succeeded", captured="1", deleted_at=GONE) for i in range(MAX_RETIRED_LISTED + 5)
    ]
    folded, _ = _passes(shares, release_works=False)
    assert folded.runs == MAX_RETIRED_LISTED == folded.captured
    assert len({r.uid for r in folded.latest}) == MAX_RETIRED_LISTED
    # Once they go, the rest follow.
    remaining = [s for s in shares if s.uid not in retire.folded_uids(folded)]
    rest = retire.fold(folded, remaining)
    assert rest.runs == MAX_RETIRED_LISTED + 5


def test_the_gate_counts_deleted_runs() -> None:
    """A new reservation cannot spend what a deleted run captured."""
    from oxygen.api.creditaccount import CreditAccount
    from oxygen.credits import gate

    body = account(grants={"plan": "100"}, retired=retired(("gone", "60", "0")))
    snapshot = gate.CreditSnapshot("ns", "team", CreditAccount.model_validate(body), any_account=True)
    assert not gate.decide(snapshot, "uid-new", Decimal(50)).allowed
    assert gate.decide(snapshot, "uid-new", Decimal(40)).allowed
