"""Credit arithmetic, exact (Decimal) and derived from what is stored, so restarts never double-count.

Per run: every item in scope holds `costPerItem` while unfinished (the reservation). A success
captures its cost (the provider's reported cost or costPerItem); whatever was reserved and neither
captured nor still held has been released. Per account: available = granted - captured - reserved.

Exact, not rounded: a declared amount has at most 18 integer digits and 9 decimals (the CRD refuses
more, api/common.py), and every thread's Decimal context holds CREDIT_PRECISION (60) digits, set
when oxygen.api is imported. A run of 10^7 items at the bound sums to 34 digits; the default 28
would round it (issue 20: a cost of 300 nines broke granted = captured + reserved + available).
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from oxygen.api.common import CREDIT_PRECISION
from oxygen.api.creditaccount import Grant, Retired
from oxygen.api.run import TERMINAL_PHASES, LedgerEntry

MAX_LEDGER_ENTRIES = 100


def exact() -> AbstractContextManager[decimal.Context]:
    """The account's sums at CREDIT_PRECISION even in a thread whose context predates oxygen.api."""
    return decimal.localcontext(prec=CREDIT_PRECISION)


def granted(grants: Iterable[Grant]) -> Decimal:
    """Each grant id counts exactly once (the first declaration wins)."""
    seen: dict[str, Decimal] = {}
    for grant in grants:
        seen.setdefault(grant.id, grant.amount)
    with exact():
        return sum(seen.values(), Decimal(0))


def held(cost_per_item: Decimal, unfinished_items: int, metered: bool, terminal: bool) -> Decimal:
    if not metered or terminal:
        return Decimal(0)
    with exact():
        return cost_per_item * unfinished_items


def reserved_total(ledger: Sequence[LedgerEntry]) -> Decimal:
    return sum((e.amount for e in ledger if e.type == "reserved"), Decimal(0))


def released(ledger: Sequence[LedgerEntry], captured: Decimal, still_held: Decimal) -> Decimal:
    """The unused part of what was reserved (never negative: a provider may charge over estimate)."""
    return max(Decimal(0), reserved_total(ledger) - captured - still_held)


def settle(
    ledger: list[LedgerEntry], captured: Decimal, released_now: Decimal, at: str, round_: int
) -> list[LedgerEntry]:
    """Append what was captured and released since the last settlement (deltas, so nothing twice).

    Movements only go forward: when a later round over-spends its reservation, what an earlier
    settlement released is not taken back (the run's own figures stay exact; the ledger never
    shows a negative movement).
    """
    out = list(ledger)
    for kind, total in (("captured", captured), ("released", released_now)):
        recorded = sum((e.amount for e in out if e.type == kind), Decimal(0))
        delta = total - recorded
        if delta > 0:
            out.append(LedgerEntry(type=kind, amount=delta, at=at, round=round_))
    return compact(out)


def reserve(ledger: list[LedgerEntry], amount: Decimal, at: str, round_: int) -> list[LedgerEntry]:
    if amount == 0:
        return list(ledger)
    return compact([*ledger, LedgerEntry(type="reserved", amount=amount, at=at, round=round_)])


def compact(ledger: list[LedgerEntry]) -> list[LedgerEntry]:
    """Keep the ledger bounded: fold the oldest entries of each type into one, totals unchanged."""
    if len(ledger) <= MAX_LEDGER_ENTRIES:
        return ledger
    keep = ledger[-(MAX_LEDGER_ENTRIES - 3) :]
    folded: list[LedgerEntry] = []
    for kind in ("reserved", "captured", "released"):
        old = [e for e in ledger[: len(ledger) - len(keep)] if e.type == kind]
        if old:
            total = sum((e.amount for e in old), Decimal(0))
            folded.append(LedgerEntry(type=kind, amount=total, at=old[-1].at, round=old[-1].round))
    return folded + keep


@dataclass(frozen=True)
class RunShare:
    """What one run takes from its account right now."""

    name: str
    uid: str
    phase: str
    reserved: Decimal
    captured: Decimal
    released: Decimal
    # Set while the Run is being deleted (its deletionTimestamp), and whether it carries the
    # finalizer that holds it until its figures are folded into the account (RETIRE_FINALIZER).
    deleted_at: str = ""
    held_for_account: bool = False
    # Whether the run's figures are final: nothing of it still calls providers (see `settled`).
    settled: bool = True


@dataclass(frozen=True)
class AccountTotals:
    granted: Decimal
    captured: Decimal
    reserved: Decimal
    released: Decimal

    @property
    def available(self) -> Decimal:
        return self.granted - self.captured - self.reserved


def account_totals(
    grants: Iterable[Grant], runs: Iterable[RunShare], retired: Retired | None = None
) -> AccountTotals:
    """Live runs' shares plus what deleted runs left behind (a run folded in counts there, once)."""
    retired = retired or Retired()
    folded = {r.uid for r in retired.latest}
    with exact():
        captured, reserved, rel = retired.captured, Decimal(0), retired.released
        for run in runs:
            if run.uid in folded:
                continue
            captured += run.captured
            reserved += run.reserved
            rel += run.released
        return AccountTotals(granted(grants), captured, reserved, rel)


# On metered Runs: the account folds the run's figures in before the Run may go away.
RETIRE_FINALIZER = "oxygen.dev/credits"
# The Run's condition saying that, being deleted, it was stopped (Jobs gone, shards settled) and its
# status holds its final credits: only then does the account fold it in. Like any operator
# finalizer, RETIRE_FINALIZER needs the operator running to go away.
SETTLED_CONDITION = "Settled"


def settled(status: Mapping[str, Any]) -> bool:
    """A run's figures are final: it finished, was never planned (no Job ever ran), or was stopped
    for its deletion (SETTLED_CONDITION). Until then its Jobs may still spend credits."""
    if status.get("phase") in TERMINAL_PHASES or not status.get("rounds"):
        return True
    return any(
        c.get("type") == SETTLED_CONDITION and c.get("status") == "True"
        for c in status.get("conditions") or []
        if isinstance(c, Mapping)
    )
