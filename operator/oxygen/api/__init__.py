"""Typed models of oxygen's resources (group oxygen.dev, version v1alpha1); CRDs are generated from them."""

from oxygen.api.common import GROUP, VERSION, Condition, Credits
from oxygen.api.creditaccount import CreditAccount, CreditAccountSpec, CreditAccountStatus, Grant
from oxygen.api.run import ItemStatus, Producer, Run, RunPhase, RunSpec, RunStatus
from oxygen.api.runshard import ItemResult, RunShard, RunShardSpec, RunShardStatus, ShardItem, ShardSummary

__all__ = [
    "GROUP",
    "VERSION",
    "Condition",
    "CreditAccount",
    "CreditAccountSpec",
    "CreditAccountStatus",
    "Credits",
    "Grant",
    "ItemResult",
    "ItemStatus",
    "Producer",
    "Run",
    "RunPhase",
    "RunShard",
    "RunShardSpec",
    "RunShardStatus",
    "RunSpec",
    "RunStatus",
    "ShardItem",
    "ShardSummary",
]
