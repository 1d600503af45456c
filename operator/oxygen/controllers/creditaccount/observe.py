"""What one CreditAccount pass looks at: the account, its runs' shares (from the index), the time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from oxygen.api.creditaccount import CreditAccount
from oxygen.credits import ledger
from oxygen.timefmt import rfc3339


@dataclass
class AccountMemory:
    """What the account's daemon remembers between passes: the last status it wrote (comparable form)."""

    last: dict[str, Any] | None = None


@dataclass(frozen=True)
class AccountObservation:
    account: CreditAccount
    shares: list[ledger.RunShare] = field(default_factory=list)
    now: str = ""


def observe(
    body: Mapping[str, Any], shares: Iterable[ledger.RunShare], stamp: str | None = None
) -> AccountObservation:
    """One snapshot: totals come from this one list, so `granted = captured + reserved + available`."""
    return AccountObservation(CreditAccount.model_validate(dict(body)), list(shares), stamp or rfc3339())
