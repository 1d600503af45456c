"""credits.py (the Run's credits: the decision noted, a later round refused, the ledger accounting)
and the pure gate decision it takes (credits.gate.decide)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.run import LedgerEntry, Round, RunStatus
from oxygen.controllers.run import credits
from oxygen.credits.gate import Decision, decide
from oxygen.status.run import ItemCounts
from tests.support import builders as b


@pytest.mark.parametrize(
    ("snapshot", "amount", "metered", "allowed", "reason", "available"),
    [
        (b.credit_snapshot(None, any_account=False), "5", False, True, "", "0"),
        (b.credit_snapshot(None, any_account=True), "5", True, False, "CreditAccountNotFound", "0"),
        (b.credit_snapshot("10"), "10", True, True, "", "10"),
        (b.credit_snapshot("10"), "11", True, False, "InsufficientCredits", "10"),
        (
            b.credit_snapshot("10", shares=[b.share(reserved="4")]),
            "7",
            True,
            False,
            "InsufficientCredits",
            "6",
        ),
        # The run's own holdings count as spent: it asks for what it would hold in addition.
        (b.credit_snapshot("10", shares=[b.share(b.UID, captured="3")]), "7", True, True, "", "7"),
    ],
    ids=[
        "no-account-anywhere",
        "account-missing",
        "exactly-enough",
        "too-little",
        "others-hold",
        "own-share",
    ],
)
def test_decide(
    snapshot: Any, amount: str, metered: bool, allowed: bool, reason: str, available: str
) -> None:
    decision = decide(snapshot, b.UID, Decimal(amount))
    assert (decision.metered, decision.allowed, decision.reason) == (metered, allowed, reason)
    assert decision.available == Decimal(available)


@pytest.mark.parametrize(
    ("decision", "conditions"),
    [
        (Decision(False, True, None, message="unmetered"), {"Metered": "False"}),
        (Decision(True, True, "default", message="ok"), {"Metered": "True", "InsufficientCredits": "False"}),
        (
            Decision(True, False, "default", reason="InsufficientCredits", message="no"),
            {"Metered": "True", "InsufficientCredits": "True"},
        ),
    ],
    ids=["unmetered", "covered", "insufficient"],
)
def test_note(decision: Decision, conditions: dict[str, str]) -> None:
    status = RunStatus()
    credits.note(b.run(), status, decision, b.NOW)
    assert status.metered is decision.metered
    assert status.credit_account == decision.account
    assert {c.type: c.status for c in status.conditions} == conditions


def test_refused_sets_the_condition_and_says_so_once() -> None:
    decision = Decision(True, False, "default", reason="InsufficientCredits", message="short by 5")
    status = RunStatus()
    events = credits.refused(b.observed(), status, decision, "retry")
    assert [e.reason for e in events] == ["InsufficientCredits"]
    assert "retry waits for credits" in events[0].message
    cond = next(c for c in status.conditions if c.type == "InsufficientCredits")
    assert cond.message.startswith(credits.ROUND_WAIT)
    # Already said (the written status has the condition): no second Event.
    assert credits.refused(b.observed(written=status), status.model_copy(deep=True), decision, "retry") == []


def _metered(**fields: Any) -> RunStatus:
    base: dict[str, Any] = {
        "metered": True,
        "credits_per_item": Decimal(2),
        "rounds": [Round(round=0, reason="initial", items=3, shards=1, started_at=b.NOW)],
        "ledger": [LedgerEntry(type="reserved", amount=Decimal(6), at=b.NOW, round=0)],
    }
    return RunStatus(**{**base, **fields})


@pytest.mark.parametrize(
    ("counts", "terminal", "reserved", "used", "released", "settled"),
    [
        (ItemCounts(pending=2, succeeded=1, credits_used=Decimal(2)), False, "4", "2", "0", False),
        (ItemCounts(succeeded=2, failed=1, credits_used=Decimal(4)), True, "0", "4", "2", True),
    ],
    ids=["running-holds-the-unfinished", "terminal-settles"],
)
def test_account(
    counts: ItemCounts, terminal: bool, reserved: str, used: str, released: str, settled: bool
) -> None:
    status = _metered()
    credits.account(b.observed(), status, counts, terminal, False)
    assert status.credits_reserved == Decimal(reserved)
    assert status.credits_used == Decimal(used)
    assert status.credits_released == Decimal(released)
    assert (len(status.ledger) > 1) == settled


def test_unmetered_releases_nothing() -> None:
    status = RunStatus(metered=False)
    credits.account(b.observed(), status, ItemCounts(pending=1), False, False)
    assert status.credits_released == Decimal(0)


def test_ingestion_holds_every_page_up_to_max_pages() -> None:
    ingestion = {"provider": "p", "url": "http://x", "query": "q", "maxPages": 10, "costPerPage": "1"}
    obs = b.observed(b.run_body(kind="ingestion", ingestion=ingestion))
    status = _metered(credits_per_item=Decimal(1))
    credits.account(obs, status, ItemCounts(succeeded=3), False, False)
    assert status.credits_reserved == Decimal(7)


def test_a_round_wait_clears_once_no_round_waits() -> None:
    status = _metered()
    decision = Decision(True, False, "default", reason="InsufficientCredits", message="short")
    credits.refused(b.observed(), status, decision, "promotion")
    credits.account(b.observed(), status, ItemCounts(pending=3), False, True)
    assert next(c for c in status.conditions if c.type == "InsufficientCredits").status == "True"
    credits.account(b.observed(), status, ItemCounts(pending=3), False, False)
    cond = next(c for c in status.conditions if c.type == "InsufficientCredits")
    assert (cond.status, cond.reason) == ("False", "CreditsAvailable")


def test_unit_cost_prefers_the_recorded_price() -> None:
    run = b.run(producer={**b.ECHO, "costPerItem": "5"})
    assert credits.unit_cost(run, RunStatus(credits_per_item=Decimal(2))) == Decimal(2)
    assert credits.unit_cost(run, RunStatus()) == Decimal(5)
