"""The CreditAccount decision, pure: the status the account should hold, and the Events to post.

Totals come from one snapshot of the runs, so `granted = captured + reserved + available` holds in
every status written. The status is written only when it differs (transition times aside) from what
this daemon wrote last, so an idle account costs no API calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from oxygen.api.common import Condition, credits_str
from oxygen.api.creditaccount import AccountRun, CreditAccountStatus
from oxygen.api.run import TERMINAL_PHASES
from oxygen.controllers.creditaccount import retire
from oxygen.controllers.creditaccount.observe import AccountObservation
from oxygen.credits import ledger
from oxygen.status.run import set_condition

MAX_RUNS_LISTED = 50


@dataclass(frozen=True)
class Notice:
    """A Kubernetes Event to post on the account (after its status write)."""

    reason: str
    message: str
    type: str = "Normal"


@dataclass
class AccountPlan:
    # The status to write (wire form), or None when it is what was written last.
    status: dict[str, Any] | None = None
    # What the daemon remembers as written once the write succeeded.
    comparable: dict[str, Any] | None = None
    notices: list[Notice] = field(default_factory=list)
    # Runs being deleted whose figures the account holds (in the status written, or last written):
    # their finalizer is released once that write succeeded.
    release: list[str] = field(default_factory=list)


def comparable_form(wire: dict[str, Any]) -> dict[str, Any]:
    """The status without transition times: two passes over the same runs compare equal."""
    return {
        **wire,
        "conditions": [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in wire.get("conditions", [])
        ],
    }


def _was_overdrawn(conditions: list[Condition]) -> bool:
    return any(c.type == "Overdrawn" and c.status == "True" for c in conditions)


def decide(seen: AccountObservation, last: dict[str, Any] | None) -> AccountPlan:
    account = seen.account
    retired = retire.fold(account.status.retired, seen.shares)
    totals = ledger.account_totals(account.spec.grants, seen.shares, retired)
    live = [s for s in seen.shares if s.uid not in retire.folded_uids(retired)]
    # Runs still holding credits first, then the rest; the list is bounded, the totals are not.
    ordered = sorted(live, key=lambda s: (s.phase in TERMINAL_PHASES, s.name))
    status = CreditAccountStatus(
        granted=totals.granted,
        captured=totals.captured,
        reserved=totals.reserved,
        released=totals.released,
        available=totals.available,
        runs_total=len(live),
        runs=[
            AccountRun(
                name=s.name,
                uid=s.uid,
                phase=s.phase,
                reserved=s.reserved,
                captured=s.captured,
                released=s.released,
            )
            for s in ordered[:MAX_RUNS_LISTED]
        ],
        retired=retired,
        observed_generation=account.metadata.generation,
        conditions=account.status.conditions,
    )
    stamp, gen = seen.now, account.metadata.generation
    summary = (
        f"granted {credits_str(totals.granted)}, captured {credits_str(totals.captured)}, "
        f"reserved {credits_str(totals.reserved)}, available {credits_str(totals.available)}"
    )
    overdrawn = totals.available < Decimal(0)
    status.conditions = set_condition(status.conditions, "Ready", True, "Reconciled", summary, stamp, gen)
    status.conditions = set_condition(
        status.conditions,
        "Overdrawn",
        overdrawn,
        "Overdrawn" if overdrawn else "WithinBalance",
        summary,
        stamp,
        gen,
    )
    wire = status.wire()
    comparable = comparable_form(wire)
    release = retire.releasable(retired, seen.shares)
    if comparable == last:
        return AccountPlan(release=release)
    plan = AccountPlan(status=wire, comparable=comparable, release=release)
    if overdrawn and not _was_overdrawn(account.status.conditions):
        # A provider charged over its estimate: the balance went below zero. Said once, on the way in.
        plan.notices.append(Notice("Overdrawn", f"the account is overdrawn: {summary}", "Warning"))
    return plan
