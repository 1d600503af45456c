"""`oxygen billing ledger`: a deleted run's charges, kept by its account, are still rows of the ledger."""

from __future__ import annotations

from decimal import Decimal

from oxygen.cli.billing import retired_rows
from tests.support.workflow_builders import account, retired


def test_deleted_runs_are_rows_and_every_type_sums_to_the_account() -> None:
    body = account(retired=retired(("a", "50", "0"), ("b", "2.5", "1")))
    rows = retired_rows(body)
    assert [(r["run"], r["type"], r["amount"]) for r in rows] == [
        ("a", "reserved", "50"),
        ("a", "captured", "50"),
        ("b", "reserved", "3.5"),
        ("b", "captured", "2.5"),
        ("b", "released", "1"),
    ]
    assert all(r["account"] == "team" and r["reason"] == "run deleted" for r in rows)


def test_runs_beyond_the_list_are_one_row_per_type() -> None:
    status = retired(("a", "5", "0"), total_runs=3)
    status["captured"] = "12"  # two earlier deleted runs captured 7 between them
    status["reserved"] = "12"
    rows = retired_rows(account(retired=status))
    earlier = [r for r in rows if r["run"] is None]
    assert [(r["type"], r["amount"], r["reason"]) for r in earlier] == [
        ("reserved", "7", "2 earlier deleted runs"),
        ("captured", "7", "2 earlier deleted runs"),
    ]
    assert sum(Decimal(r["amount"]) for r in rows if r["type"] == "captured") == Decimal("12")


def test_an_account_without_deleted_runs_has_no_rows() -> None:
    assert retired_rows(account()) == []
