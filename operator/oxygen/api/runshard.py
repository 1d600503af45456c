"""The RunShard resource: one batch of a Run's items (spec) and their results (status).

The operator writes the spec once; the worker in the shard's Job pod is the writer of the status
(the operator writes it only where no worker runs: skipped shards, a failed Job, a canceled run,
and marking items a later round took over).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import ConfigDict, Field

from oxygen.api.common import CreditTotal, Json, JsonObject, Model, ObjectMeta
from oxygen.api.run import ItemStatus, Producer, Retry

ShardPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class ShardItem(Model):
    """An item as the worker receives it."""

    id: str
    row_id: str | None = None
    inputs: JsonObject = Field(default_factory=dict)
    # Attempts made in earlier rounds; a retried item continues counting from here.
    attempt_count: int = 0
    # Workflow steps: the step's name, its own producer, and inputs templated from the run's inputs
    # and earlier steps' outputs ("${inputs.x}", "${steps.<name>.outputs.y}"), resolved when it runs.
    step: str | None = None
    producer: Producer | None = None
    inputs_template: JsonObject | None = None
    # A duplicate of an earlier item of the run (same provider and inputs): not called, it takes
    # that item's result once it has one (the operator writes it; the shard does not execute).
    cached_from: str | None = None


class ItemRange(Model):
    """With an item store: the shard's items are the rows of its round with start <= ordinal < end."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)


class RunShardSpec(Model):
    # Immutable: a shard's Job (its pod's ServiceAccount, image, command) is derived from its Run, and the
    # worker, which may patch its shards' status, must not be able to point a shard elsewhere.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self == oldSelf", "message": "a RunShard's spec is immutable"},
                {
                    "rule": "has(self.range) != (has(self.items) && size(self.items) > 0)",
                    "message": "a RunShard has exactly one of items and range",
                },
                {
                    "rule": "!has(self.range) || self.range.start < self.range.end",
                    "message": "range.start must be below range.end",
                },
            ]
        }
    )

    run_name: str
    run_uid: str
    round: int = Field(ge=0)
    index: int = Field(ge=0)
    # False: nothing executes (dry_run, or outside a smoke test's sample); items are recorded skipped.
    execute: bool = True
    skip_reason: str | None = None
    producer: Producer
    retry: Retry
    # The items themselves (inputs inline), or, with an item store, the range of their rows.
    items: list[ShardItem] = Field(default_factory=list, max_length=10000)
    range: ItemRange | None = None
    # independent: items in any order; steps: in order, a failed step skips the rest;
    # pages: in order, each page's nextCursor adds the next page (up to ingestion.maxPages).
    sequence: Literal["independent", "steps", "pages"] = "independent"
    # What templated inputs may refer to: {"inputs": {...}, "steps": {name: {"outputs": ...}}}.
    context: JsonObject | None = None
    max_pages: int | None = None


class ProviderCall(Model):
    """A waterfall item's calls to one provider: how many (with retries), what they cost, whether
    its answer was the item's."""

    provider: str
    attempts: int = 0
    credits_used: CreditTotal = Decimal(0)
    hit: bool = False


class ItemResult(Model):
    """An item's result: the item shape of DESIGN.md minus inputs (those stay in the spec)."""

    id: str
    row_id: str | None = None
    step: str | None = None
    # Set when the item's producer is not the shard's (workflow steps): summaries count per provider.
    provider: str | None = None
    # Inputs of items found while running (ingestion pages) or resolved from a template (steps).
    inputs: Json = None
    status: ItemStatus = "pending"
    attempt_count: int = 0
    outputs: Json = None
    error: str | None = None
    error_class: str | None = None
    credits_used: CreditTotal = Decimal(0)
    started_at: str | None = None
    finished_at: str | None = None
    latency_seconds: float | None = None
    # Set when a later round (retry or promotion) re-executes this item in another shard.
    superseded_by: str | None = None
    # Waterfall items: each provider called, in order (the summary's per-provider tallies).
    provider_calls: list[ProviderCall] | None = None
    # The outputs are a cached call's (an earlier run's, or a duplicate's in this run): no call, no charge.
    cached: bool | None = None


class ProviderTally(Model):
    succeeded: int = 0
    failed: int = 0
    credits_used: CreditTotal = Decimal(0)
    attempts: int = 0
    latency_seconds_sum: float = 0.0
    # Waterfall items this provider answered non-empty.
    hits: int = 0
    # Items that took a cached call's outputs.
    cached: int = 0


class ShardSummary(Model):
    """Counts over the shard's items that no later round took over."""

    pending: int = 0
    running: int = 0
    retrying: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    credits_used: CreditTotal = Decimal(0)
    attempts: int = 0
    latency_seconds_sum: float = 0.0
    # Cumulative counts of finished items by latency, keyed by the bucket's upper bound ("0.1", …,
    # "+Inf"): the operator turns these into a Prometheus histogram per provider.
    latency_buckets: dict[str, int] = Field(default_factory=dict)
    error_classes: dict[str, int] = Field(default_factory=dict)
    # Calls made and calls answered 429, over every pod of the shard (the worker counts them): the
    # Provider's allocator cuts the effective rate on new 429s.
    calls: int = 0
    throttled_calls: int = 0
    # Items that took a cached call's outputs instead of calling.
    cached: int = 0
    # Only for shards whose items name their own providers (workflow steps).
    by_provider: dict[str, ProviderTally] = Field(default_factory=dict)


class RunShardStatus(Model):
    phase: ShardPhase = "Pending"
    items: list[ItemResult] = Field(default_factory=list)
    summary: ShardSummary = Field(default_factory=ShardSummary)
    worker: str | None = None
    # The epoch of the Provider rate share the worker keeps to now: the operator raises other shares
    # only once the lowered ones are acknowledged here.
    rate_share_epoch: int | None = None
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class RunShard(Model):
    api_version: str = "oxygen.dev/v1alpha1"
    kind: str = "RunShard"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: RunShardSpec
    status: RunShardStatus = Field(default_factory=RunShardStatus)
