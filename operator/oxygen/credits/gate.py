"""The reservation gate: may a run hold `amount` more credits of its account?

Decisions for one account are serialized by a lock, and each is made from a fresh read of the
account and of every run in the namespace (their statuses hold what they capture and reserve).
The caller records its reservation in its run's status before leaving the lock, so the next
decision sees it; after a restart the statuses are all there is, and all that is needed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes.client.exceptions import ApiException

from oxygen.api.common import credits_str
from oxygen.api.creditaccount import CreditAccount
from oxygen.api.run import Run
from oxygen.credits import ledger
from oxygen.kube.client import Kube


@dataclass(frozen=True)
class Decision:
    metered: bool
    allowed: bool
    account: str | None
    available: Decimal = Decimal(0)
    on_insufficient: str = "queue"
    reason: str = ""
    message: str = ""


class CreditGate:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def account_lock(self, namespace: str, account: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((namespace, account), threading.Lock())
        with lock:
            yield

    def decide(self, run: Run, amount: Decimal) -> Decision:
        """Call under `account_lock`. `amount` is what the run would hold in addition."""
        ns, name = run.metadata.namespace, run.spec.credit_account
        account = self._account(ns, name)
        if account is None:
            if self.kube.list("creditaccounts", ns):
                return Decision(
                    metered=True,
                    allowed=False,
                    account=name,
                    reason="CreditAccountNotFound",
                    message=f"CreditAccount {name!r} not found in namespace {ns!r}",
                )
            return Decision(
                metered=False,
                allowed=True,
                account=None,
                message=f"unmetered: no CreditAccount in namespace {ns!r}",
            )
        shares = [share_of(body) for body in self.kube.list("runs", ns) if account_of(body) == name]
        others = [s for s in shares if s.uid != run.metadata.uid]
        mine = next((s for s in shares if s.uid == run.metadata.uid), None)
        totals = ledger.account_totals(account.spec.grants, others)
        available = totals.available - (mine.captured + mine.reserved if mine else Decimal(0))
        allowed = amount <= available
        message = (
            f"estimated {credits_str(amount)} credits; "
            f"account {name!r} has {credits_str(available)} available"
        )
        return Decision(
            metered=True,
            allowed=allowed,
            account=name,
            available=available,
            on_insufficient=account.spec.on_insufficient,
            reason="" if allowed else "InsufficientCredits",
            message=message,
        )

    def _account(self, namespace: str, name: str) -> CreditAccount | None:
        try:
            return CreditAccount.model_validate(self.kube.get("creditaccounts", namespace, name))
        except ApiException as err:
            if err.status == 404:
                return None
            raise


def account_of(body: dict[str, Any]) -> str:
    status = body.get("status") or {}
    return str(status.get("creditAccount") or (body.get("spec") or {}).get("creditAccount") or "default")


def share_of(body: dict[str, Any]) -> ledger.RunShare:
    status = body.get("status") or {}
    meta = body["metadata"]
    metered = bool(status.get("metered"))
    return ledger.RunShare(
        name=meta["name"],
        uid=meta["uid"],
        phase=status.get("phase", "queued"),
        reserved=Decimal(status.get("creditsReserved", "0")) if metered else Decimal(0),
        captured=Decimal(status.get("creditsUsed", "0")) if metered else Decimal(0),
        released=Decimal(status.get("creditsReleased", "0")) if metered else Decimal(0),
    )
