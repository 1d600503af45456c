"""Credit arithmetic: exact decimals, grants counted once, settlement by deltas, bounded ledger."""

from __future__ import annotations

from decimal import Decimal

from oxygen.api.creditaccount import Grant
from oxygen.api.run import LedgerEntry
from oxygen.credits import ledger

D = Decimal


def test_grants_count_once_per_id() -> None:
    grants = [
        Grant(id="plan", amount=D("1000")),
        Grant(id="topup", amount=D("0.5")),
        Grant(id="plan", amount=D("1000")),
    ]
    assert ledger.granted(grants) == D("1000.5")


def test_held_released_and_settlement_are_exact() -> None:
    entries = ledger.reserve([], D(50), "t0", 0)
    # 40 succeeded at 1, 10 failed: nothing held once terminal, 10 released.
    assert ledger.held(D(1), 0, metered=True, terminal=True) == 0
    assert ledger.released(entries, D(40), D(0)) == D(10)
    settled = ledger.settle(entries, D(40), D(10), "t1", 0)
    assert [(e.type, e.amount) for e in settled] == [
        ("reserved", D(50)),
        ("captured", D(40)),
        ("released", D(10)),
    ]
    # Settling again with the same totals appends nothing (restarts never double-count).
    assert ledger.settle(settled, D(40), D(10), "t2", 0) == settled
    # A retry reserves again for its items only, and settles the difference.
    retried = ledger.reserve(settled, D(10), "t3", 1)
    final = ledger.settle(retried, D(50), D(10), "t4", 1)
    assert [(e.type, e.amount) for e in final[-2:]] == [("reserved", D(10)), ("captured", D(10))]


def test_fractional_provider_costs_sum_exactly() -> None:
    captured = sum((D("0.25") for _ in range(400)), D(0))
    assert captured == D(100)
    assert ledger.released(ledger.reserve([], D(400), "t", 0), captured, D(0)) == D(300)


def test_overrun_never_releases_negative() -> None:
    assert ledger.released(ledger.reserve([], D(5), "t", 0), D(7), D(0)) == 0


def test_account_identity_holds() -> None:
    shares = [
        ledger.RunShare("a", "1", "running", D(30), D(20), D(0)),
        ledger.RunShare("b", "2", "succeeded", D(0), D("12.75"), D("1.25")),
    ]
    totals = ledger.account_totals([Grant(id="g", amount=D(100))], shares)
    assert totals.granted == totals.captured + totals.reserved + totals.available
    assert totals.available == D("37.25")


def test_ledger_stays_bounded_and_totals_survive_compaction() -> None:
    entries: list[LedgerEntry] = []
    for i in range(300):
        entries = ledger.reserve(entries, D(1), f"t{i}", i)
    assert len(entries) <= ledger.MAX_LEDGER_ENTRIES
    assert ledger.reserved_total(entries) == D(300)


def test_settlement_never_records_a_negative_movement() -> None:
    # 10 reserved, 5 captured, 5 released; a retry reserves 5 more and the provider charges 2 each.
    entries = ledger.settle(ledger.reserve([], D(10), "t0", 0), D(5), D(5), "t1", 0)
    entries = ledger.reserve(entries, D(5), "t2", 1)
    final = ledger.settle(entries, D(15), ledger.released(entries, D(15), D(0)), "t3", 1)
    assert all(e.amount > 0 for e in final)
    assert [(e.type, e.amount) for e in final[-1:]] == [("captured", D(10))]
