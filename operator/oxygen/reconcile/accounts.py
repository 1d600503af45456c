"""The CreditAccount reconciler: the account's status is derived from its runs' statuses.

The operator is the single writer; workers never touch accounts. Totals come from one snapshot of
the runs, so `granted = captured + reserved + available` holds in every status written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from oxygen.api.common import credits_str
from oxygen.api.creditaccount import AccountRun, CreditAccount, CreditAccountStatus
from oxygen.api.run import TERMINAL_PHASES
from oxygen.credits import ledger
from oxygen.kube.client import Kube, now
from oxygen.status.run import set_condition

MAX_RUNS_LISTED = 50


@dataclass
class AccountState:
    last: dict[str, Any] | None = None


class AccountReconciler:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def reconcile(self, body: dict[str, Any], shares: Iterable[ledger.RunShare], state: AccountState) -> None:
        account = CreditAccount.model_validate(body)
        shares = list(shares)
        totals = ledger.account_totals(account.spec.grants, shares)
        # Runs still holding credits first, then the rest; the list is bounded, the totals are not.
        ordered = sorted(shares, key=lambda s: (s.phase in TERMINAL_PHASES, s.name))
        status = CreditAccountStatus(
            granted=totals.granted,
            captured=totals.captured,
            reserved=totals.reserved,
            released=totals.released,
            available=totals.available,
            runs_total=len(shares),
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
            observed_generation=account.metadata.generation,
            conditions=account.status.conditions,
        )
        stamp, gen = now(), account.metadata.generation
        summary = (
            f"granted {credits_str(totals.granted)}, captured {credits_str(totals.captured)}, "
            f"reserved {credits_str(totals.reserved)}, available {credits_str(totals.available)}"
        )
        status.conditions = set_condition(status.conditions, "Ready", True, "Reconciled", summary, stamp, gen)
        status.conditions = set_condition(
            status.conditions,
            "Overdrawn",
            totals.available < Decimal(0),
            "Overdrawn" if totals.available < 0 else "WithinBalance",
            summary,
            stamp,
            gen,
        )
        wire = status.wire()
        comparable = {
            **wire,
            "conditions": [
                {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in wire["conditions"]
            ],
        }
        if comparable == state.last:
            return
        self.kube.patch_status("creditaccounts", account.metadata.namespace, account.metadata.name, wire)
        state.last = comparable
