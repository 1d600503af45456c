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


class AccountRun(Model):
    """One run's share of the account (the status keeps a bounded number of these)."""

    name: str
    uid: str
    phase: str
    reserved: CreditTotal = Decimal(0)
    captured: CreditTotal = Decimal(0)
    released: CreditTotal = Decimal(0)


class CreditAccountStatus(Model):
    granted: CreditTotal = Decimal(0)
    captured: CreditTotal = Decimal(0)
    reserved: CreditTotal = Decimal(0)
    released: CreditTotal = Decimal(0)
    available: CreditTotal = Decimal(0)
    runs_total: int = 0
    runs: list[AccountRun] = Field(default_factory=list, max_length=50)
    observed_generation: int = 0
    conditions: list[Condition] = Field(default_factory=list)


class CreditAccount(Model):
    api_version: str = "oxygen.dev/v1alpha1"
    kind: str = "CreditAccount"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CreditAccountSpec = Field(default_factory=CreditAccountSpec)
    status: CreditAccountStatus = Field(default_factory=CreditAccountStatus)
