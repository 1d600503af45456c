"""Credit amounts are bounded (18 integer digits, 9 decimals) to what the arithmetic holds exactly.

A declared amount beyond the bound is refused (the CRD's pattern at apply, the model in Python);
at the bound, sums over 10^7 items and an account's identity granted = captured + reserved +
available hold exactly, in any thread (the reconcile passes run in worker threads)."""

from __future__ import annotations

import decimal
import re
import threading
from decimal import Decimal

import pytest
from pydantic import ValidationError

from oxygen.api.common import CREDITS_PATTERN, credits_str
from oxygen.api.creditaccount import Grant
from oxygen.api.run import Producer
from oxygen.credits import ledger
from oxygen.credits.ledger import RunShare

TOP = "999999999999999999.999999999"  # the largest declarable amount
TINY = "0.000000001"

REFUSED = [
    "1.0000000000000000000000000000001",  # issue 20: rounded to 1 by the old arithmetic
    "9" * 300,
    "9" * 19,
    "0.0000000001",
    "1e999",
    "NaN",
    "Infinity",
    "-1",
    "",
    "0x10",
]
# Within the bound as numbers, but not the text a credit amount is written as: the pattern refuses.
NOT_CANONICAL = ["1E3", " 1", "1.", ".5", "+1"]


@pytest.mark.parametrize("amount", REFUSED)
def test_out_of_bound_amounts_are_refused(amount: str) -> None:
    assert not re.match(CREDITS_PATTERN, amount)
    with pytest.raises(ValidationError):
        Producer(provider="p", builtin="echo", cost_per_item=amount)
    with pytest.raises(ValidationError):
        Grant(id="g", amount=amount)


@pytest.mark.parametrize("amount", NOT_CANONICAL)
def test_the_pattern_wants_plain_decimal_text(amount: str) -> None:
    assert not re.match(CREDITS_PATTERN, amount)


@pytest.mark.parametrize("amount", [TOP, TINY, "0", "1", "0.25", "9" * 18, "1.5"])
def test_amounts_within_the_bound_are_exact(amount: str) -> None:
    assert re.match(CREDITS_PATTERN, amount)
    cost = Producer(provider="p", builtin="echo", cost_per_item=amount).cost_per_item
    assert cost == Decimal(amount)
    assert Decimal(credits_str(cost)) == Decimal(amount)


def _exact_in_a_new_thread() -> dict[str, str]:
    """The arithmetic at the bound, in a thread whose Decimal context is fresh."""
    out: dict[str, str] = {}

    def work() -> None:
        cost = Decimal(TOP)
        items = 10**7
        out["held"] = credits_str(ledger.held(cost, items, metered=True, terminal=False))
        out["sum"] = credits_str(sum((cost for _ in range(1000)), Decimal(0)) * 10**4)
        grants = [Grant(id=f"g{i}", amount=Decimal(TOP)) for i in range(items // 10**5)]
        tiny = Decimal(TINY)
        runs = [
            RunShare("a", "u1", "running", reserved=cost * 3, captured=cost * 5 + tiny, released=cost),
            RunShare("b", "u2", "running", reserved=tiny, captured=cost * items, released=Decimal(0)),
        ]
        totals = ledger.account_totals(grants, runs)
        out["identity"] = str(totals.granted == totals.captured + totals.reserved + totals.available)
        out["available"] = credits_str(totals.available)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    return out


def test_sums_at_the_bound_are_exact_in_any_thread() -> None:
    top_units = 999999999999999999999999999  # TOP in units of 10^-9
    out = _exact_in_a_new_thread()
    exact = f"{top_units * 10**7 // 10**9}.{top_units * 10**7 % 10**9:09d}".rstrip("0").rstrip(".")
    assert out["held"] == exact
    assert out["sum"] == exact
    assert out["identity"] == "True"
    granted, captured, reserved = top_units * 100, top_units * (5 + 10**7) + 1, top_units * 3 + 1
    available = granted - captured - reserved
    assert Decimal(out["available"]) == Decimal(available).scaleb(-9)


def test_the_ledger_is_exact_even_in_a_thread_with_the_default_precision() -> None:
    out: list[Decimal] = []

    def work() -> None:
        decimal.getcontext().prec = 28  # a context made before oxygen.api raised the default
        cost = Decimal(TOP)
        grants = [Grant(id=f"g{i}", amount=cost) for i in range(3)]
        totals = ledger.account_totals(grants, [RunShare("a", "u", "running", cost, cost * 2, Decimal(0))])
        out.extend([ledger.held(cost, 10**7 + 1, metered=True, terminal=False), totals.available])

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    # 35 significant digits: a 28-digit context would have rounded them.
    assert credits_str(out[0]) == "10000000999999999999999999.989999999"
    assert out[1] == 0
