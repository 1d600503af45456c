"""The reservation gate: may a run hold `amount` more credits of its account?

Decisions for one account are serialized by a lock (`AccountLocks`), and each is made from a fresh
snapshot of the account and of every run in the namespace (their statuses hold what they capture and
reserve; the Run controller's observe step reads it). The caller records its reservation in its run's
status before leaving the lock, so the next decision sees it; after a restart the statuses are all
there is, and all that is needed. `decide` itself is pure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from oxygen.api.common import credits_str
from oxygen.api.creditaccount import CreditAccount
from oxygen.credits import ledger


@dataclass(frozen=True)
class Decision:
    metered: bool
    allowed: bool
    account: str | None
    available: Decimal = Decimal(0)
    on_insufficient: str = "queue"
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class CreditSnapshot:
    """What one decision reads: the run's account (None: not found), whether the namespace has any
    account at all, and the shares of the runs charged to that account."""

    namespace: str
    name: str
    account: CreditAccount | None
    any_account: bool
    shares: Sequence[ledger.RunShare] = ()


class AccountLocks:
    """One lock per (namespace, account): decisions on an account never interleave."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, namespace: str, account: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((namespace, account), threading.Lock())
        with lock:
            yield


def decide(snapshot: CreditSnapshot, run_uid: str, amount: Decimal) -> Decision:
    """Take the snapshot under the account's lock. `amount` is what the run would hold in addition."""
    ns, name = snapshot.namespace, snapshot.name
    account = snapshot.account
    if account is None:
        if snapshot.any_account:
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
    others = [s for s in snapshot.shares if s.uid != run_uid]
    mine = next((s for s in snapshot.shares if s.uid == run_uid), None)
    totals = ledger.account_totals(account.spec.grants, others, account.status.retired)
    available = totals.available - (mine.captured + mine.reserved if mine else Decimal(0))
    allowed = amount <= available
    message = (
        f"estimated {credits_str(amount)} credits; account {name!r} has {credits_str(available)} available"
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
        deleted_at=str(meta.get("deletionTimestamp") or ""),
        held_for_account=ledger.RETIRE_FINALIZER in (meta.get("finalizers") or []),
        settled=ledger.settled(status),
    )
