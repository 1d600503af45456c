"""Compact, immutable views of the children a Run aggregates over (what the operator's indexes hold).

A view keeps counts and a few failed items, never every item: the operator's memory grows with
shards, not items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from oxygen.api.labels import LABEL_SHARD
from oxygen.api.run import FailedItem
from oxygen.api.runshard import ShardSummary

FAILED_SAMPLE_PER_SHARD = 10


@dataclass(frozen=True)
class ShardView:
    name: str
    round: int
    index: int
    execute: bool
    item_count: int
    provider: str
    phase: str = "Pending"
    summary: ShardSummary = field(default_factory=ShardSummary)
    failed_sample: tuple[FailedItem, ...] = ()
    message: str | None = None
    created: str = ""
    uid: str = ""  # a Job belongs to this shard only through a controller ownerReference to it
    stored: bool = False  # its items are rows of the item store (spec.range)

    @property
    def done(self) -> bool:
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class JobView:
    name: str
    suspend: bool = False
    active: int = 0
    terminating: int = 0
    complete: bool = False
    failed: bool = False
    failure_message: str = ""
    deleting: bool = False
    # When the Job failed (its Failed condition's lastTransitionTime): a replacement waits from here.
    failed_at: str = ""
    # Whose Job it is: the uid of its controller RunShard, and its `oxygen.dev/shard` label.
    owner_uid: str = ""
    shard: str = ""

    @property
    def finished(self) -> bool:
        return self.complete or self.failed

    @property
    def has_pods(self) -> bool:
        return self.active + self.terminating > 0


def shard_view(body: dict[str, Any]) -> ShardView:
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    items = status.get("items") or []
    failed = [
        FailedItem(
            id=i["id"],
            row_id=i.get("rowId"),
            error=(i.get("error") or "")[:300],
            attempt_count=i.get("attemptCount", 0),
        )
        for i in items
        if i.get("status") == "failed" and not i.get("supersededBy")
    ][:FAILED_SAMPLE_PER_SHARD]
    return ShardView(
        name=body["metadata"]["name"],
        round=int(spec.get("round", 0)),
        index=int(spec.get("index", 0)),
        execute=bool(spec.get("execute", True)),
        item_count=len(spec.get("items") or []) or _range_size(spec.get("range")),
        provider=(spec.get("producer") or {}).get("provider", ""),
        phase=status.get("phase", "Pending"),
        summary=ShardSummary.model_validate(status.get("summary") or {}),
        failed_sample=tuple(failed),
        message=status.get("message"),
        created=body["metadata"].get("creationTimestamp") or "",
        uid=str(body["metadata"].get("uid") or ""),
        stored=bool(spec.get("range")),
    )


def _range_size(span: Any) -> int:
    """Items of a shard whose rows are in the item store (`spec.range`, end exclusive)."""
    if not isinstance(span, dict):
        return 0
    return max(0, int(span.get("end") or 0) - int(span.get("start") or 0))


def job_owner(body: dict[str, Any]) -> str:
    """The uid of the RunShard that controls a Job ("" when none does)."""
    for ref in (body.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "RunShard":
            return str(ref.get("uid") or "")
    return ""


def job_view(body: dict[str, Any]) -> JobView:
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    failed = conditions.get("Failed")
    return JobView(
        name=body["metadata"]["name"],
        suspend=bool(spec.get("suspend", False)),
        active=int(status.get("active") or 0),
        terminating=int(status.get("terminating") or 0),
        complete="Complete" in conditions,
        failed=failed is not None,
        failure_message=f"{failed.get('reason', '')}: {failed.get('message', '')}" if failed else "",
        deleting=bool(body["metadata"].get("deletionTimestamp")),
        failed_at=str(failed.get("lastTransitionTime") or "") if failed else "",
        owner_uid=job_owner(body),
        shard=str((body["metadata"].get("labels") or {}).get(LABEL_SHARD) or ""),
    )
