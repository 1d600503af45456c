"""The CreditAccount resource: a balance runs reserve against, with grants declared in its spec."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field

from oxygen.api.common import Condition, Credits, CreditTotal, Model, ObjectMeta


class Grant(Model):
    """A plan refill or top-up. Each id counts once, however often it appears."""

    id: str = Field(min_length=1, max_length=253)
    amount: Credits
    reason: str | None = None


class CreditAccountSpec(Model):
    grants: list[Grant] = Field(default_factory=list)
    on_insufficient: Literal["queue", "fail"] = "queue"
    # True: runs charged here must name Providers (prices from objects tenants do not control); a run
    # with an inline producer (its own price) fails at planning, reason UnpricedProducer.
    require_providers: bool = False


class AccountRun(Model):
    """One run's share of the account (the status keeps a bounded number of these)."""

    name: str
    uid: str
    phase: str
    reserved: CreditTotal = Decimal(0)
    captured: CreditTotal = Decimal(0)
    released: CreditTotal = Decimal(0)


MAX_RETIRED_LISTED = 50


class RetiredRun(Model):
    """A deleted run's settled figures, folded into its account before the Run went away."""

    name: str
    uid: str
    reserved: Credits = Decimal(0)
    captured: Credits = Decimal(0)
    released: Credits = Decimal(0)
    deleted_at: str | None = None


class Retired(Model):
    """What deleted runs took from the account: totals over all of them, the latest listed.

    A run's uid in `latest` means it has been folded in: a pass that finds the same run still being
    deleted (its finalizer not yet removed) does not count it again.
    """

    runs: int = 0
    reserved: Credits = Decimal(0)
    captured: Credits = Decimal(0)
    released: Credits = Decimal(0)
    latest: list[RetiredRun] = Field(default_factory=list, max_length=MAX_RETIRED_LISTED)


class CreditAccountStatus(Model):
    granted: CreditTotal = Decimal(0)
    captured: CreditTotal = Decimal(0)
    reserved: CreditTotal = Decimal(0)
    released: CreditTotal = Decimal(0)
    available: CreditTotal = Decimal(0)
    runs_total: int = 0
    runs: list[AccountRun] = Field(default_factory=list, max_length=50)
    # Deleted runs' charges: captured credits outlive their Run.
    retired: Retired = Field(default_factory=Retired)
    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)


class CreditAccount(Model):
    api_version: str = "oxygen.dev/v1alpha1"
    kind: str = "CreditAccount"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CreditAccountSpec = Field(default_factory=CreditAccountSpec)
    status: CreditAccountStatus = Field(default_factory=CreditAccountStatus)
