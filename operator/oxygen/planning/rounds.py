"""Execution rounds → RunShard bodies.

Round 0 executes the run's items (or records them skipped: all of them in dry_run, those outside
the sample in smoke_test). Later rounds re-execute failed items (retry) or the items a smoke test or
dry run skipped (promotion). Names are deterministic in (run, round, index), and a round's item set
is recomputable from what is stored, so a restarted operator recreates exactly the same shards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from oxygen.api.common import API_VERSION
from oxygen.api.labels import (
    LABEL_PROVIDER,
    LABEL_ROUND,
    LABEL_RUN,
    LABEL_RUN_UID,
    MANAGED_BY,
    label_value,
    owner_reference,
)
from oxygen.api.run import Producer, Retry, RunSpec, effective_producer
from oxygen.api.runshard import (
    ItemRange,
    ItemResult,
    RunShardSpec,
    RunShardStatus,
    ShardItem,
    ShardSummary,
)
from oxygen.planning.items import PlannedItem
from oxygen.planning.names import shard_name
from oxygen.planning.shards import MAX_SHARD_INPUT_BYTES, batches
from oxygen.status.shard import shard_phase, summarize

SKIP_DRY_RUN = "dry_run: nothing executes"
SKIP_SMOKE = "outside the smoke test sample"
# Never pay twice: items whose call was cached, and duplicates waiting for their first item's result.
SKIP_CACHED = "cached: a successful call with the same provider and inputs is reused"
SKIP_DUPLICATE = "duplicate inputs: takes the result of the run's first item with them"


@dataclass(frozen=True)
class Shape:
    """How a run's shards execute (see RunShardSpec.sequence); column runs use the defaults."""

    sequence: Literal["independent", "steps", "pages"] = "independent"
    context: dict[str, Any] | None = None
    max_pages: int | None = None
    producer: Producer | None = None
    # The run's retry as its Providers allow (preflight.retry); None: the run's own.
    retry: Retry | None = None

    @property
    def single_shard(self) -> bool:
        # Steps and pages depend on the items before them: they stay together in one shard.
        return self.sequence != "independent"


@dataclass(frozen=True)
class Group:
    """Items that share a fate in a round: executed, or recorded skipped for `skip_reason`."""

    items: Sequence[PlannedItem]
    execute: bool = True
    skip_reason: str | None = None
    attempts: dict[str, int] | None = None  # prior attempts of retried items
    cached_from: Mapping[str, str] | None = None  # duplicates: the item whose result they take


def initial_groups(spec: RunSpec, items: Sequence[PlannedItem]) -> list[Group]:
    if spec.mode == "dry_run":
        return [Group(items, execute=False, skip_reason=SKIP_DRY_RUN)]
    if spec.mode == "smoke_test":
        n = spec.smoke_test.sample_size
        groups = [Group(items[:n])]
        if len(items) > n:
            groups.append(Group(items[n:], execute=False, skip_reason=SKIP_SMOKE))
        return groups
    return [Group(items)]


def shard_bodies(
    run_body: dict[str, Any],
    spec: RunSpec,
    round_: int,
    groups: Sequence[Group],
    shape: Shape | None = None,
) -> list[dict[str, Any]]:
    shape = shape or Shape()
    # Steps and pages stay together in one shard, whatever batchSize says.
    size_limit = 10**9 if shape.single_shard else MAX_SHARD_INPUT_BYTES
    bodies: list[dict[str, Any]] = []
    for group in groups:
        size = max(1, len(group.items)) if shape.single_shard else spec.batch_size
        for batch in batches(group.items, size, max_bytes=size_limit):
            items = [
                ShardItem(
                    id=i.id,
                    row_id=i.row_id,
                    inputs=i.inputs,
                    attempt_count=(group.attempts or {}).get(i.id, 0),
                    step=i.step,
                    producer=i.producer,
                    inputs_template=i.inputs_template,
                    cached_from=(group.cached_from or {}).get(i.id),
                )
                for i in batch
            ]
            bodies.append(_body(run_body, spec, round_, len(bodies), group, shape, items=items))
    return bodies


def range_bodies(
    run_body: dict[str, Any], spec: RunSpec, round_: int, count: int, shape: Shape
) -> list[dict[str, Any]]:
    """A round whose `count` items are already rows of the item store: shards of `batchSize` ranges."""
    return stored_bodies(run_body, spec, round_, [(Group(()), 0, count)], shape)


def stored_spans(spec: RunSpec, count: int) -> list[tuple[Group, int, int]]:
    """Round 0 of `count` items already in the item store, as ordinal ranges [start, end) sharing a
    fate (initial_groups by ordinal: all skipped in dry_run, the sample executed in smoke_test)."""
    if spec.mode == "dry_run":
        return [(Group((), execute=False, skip_reason=SKIP_DRY_RUN), 0, count)]
    if spec.mode == "smoke_test":
        n = min(spec.smoke_test.sample_size, count)
        spans = [(Group(()), 0, n)]
        if count > n:
            spans.append((Group((), execute=False, skip_reason=SKIP_SMOKE), n, count))
        return spans
    return [(Group(()), 0, count)]


def stored_status(spec: RunSpec, ordinal: int) -> str:
    """The status round 0's item at `ordinal` is stored with (stored_spans): pending, or skipped."""
    if spec.mode == "dry_run" or (spec.mode == "smoke_test" and ordinal >= spec.smoke_test.sample_size):
        return "skipped"
    return "pending"


def stored_bodies(
    run_body: dict[str, Any],
    spec: RunSpec,
    round_: int,
    spans: Sequence[tuple[Group, int, int]],
    shape: Shape,
) -> list[dict[str, Any]]:
    """Shards of at most `batchSize` ordinals over each span: no inputs in the spec, so no byte split."""
    size = spec.batch_size
    bodies: list[dict[str, Any]] = []
    for group, first, end in spans:
        for start in range(first, end, size):
            span = (start, min(start + size, end))
            bodies.append(_body(run_body, spec, round_, len(bodies), group, shape, span=span))
    return bodies


def _body(
    run_body: dict[str, Any],
    spec: RunSpec,
    round_: int,
    index: int,
    group: Group,
    shape: Shape,
    items: list[ShardItem] | None = None,
    span: tuple[int, int] | None = None,
) -> dict[str, Any]:
    meta = run_body["metadata"]
    shard_spec = RunShardSpec(
        run_name=meta["name"],
        run_uid=meta["uid"],
        round=round_,
        index=index,
        execute=group.execute,
        skip_reason=group.skip_reason,
        producer=shape.producer or effective_producer(spec),
        retry=shape.retry or spec.retry,
        sequence=shape.sequence,
        context=shape.context,
        max_pages=shape.max_pages,
        items=items or [],
        range=ItemRange(start=span[0], end=span[1]) if span is not None else None,
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "RunShard",
        "metadata": {
            "name": shard_name(meta["name"], round_, index),
            "namespace": meta["namespace"],
            "labels": {
                LABEL_RUN: label_value(meta["name"]),
                LABEL_RUN_UID: meta["uid"],
                LABEL_ROUND: str(round_),
                **provider_label(spec),
                **MANAGED_BY,
            },
            "ownerReferences": [owner_reference(run_body)],
        },
        "spec": shard_spec.wire(),
    }


def provider_label(spec: RunSpec) -> dict[str, str]:
    """The Provider a column run names (its shards then carry that Provider's resolved producer)."""
    ref = spec.producer.provider_ref if spec.producer is not None else None
    return {LABEL_PROVIDER: ref.name[:63]} if ref is not None else {}


def skipped_status(spec: RunShardSpec) -> RunShardStatus:
    """The status of a shard that does not execute: every item skipped, for the recorded reason."""
    if spec.range is not None:
        # Its items are rows of the item store, stored skipped (stored_status): the summary counts them.
        summary = ShardSummary(skipped=spec.range.end - spec.range.start)
        return RunShardStatus(phase="Succeeded", items=[], summary=summary, message=spec.skip_reason)
    items = [
        ItemResult(id=i.id, row_id=i.row_id, status="skipped", attempt_count=i.attempt_count)
        for i in spec.items
    ]
    return RunShardStatus(
        phase=shard_phase(items), items=items, summary=summarize(items), message=spec.skip_reason
    )


def cached_status(spec: RunShardSpec, outputs: Mapping[str, Any]) -> RunShardStatus:
    """A shard of cache hits: every item succeeded with the cached outputs, neither called nor charged."""
    items = [
        ItemResult(
            id=i.id,
            row_id=i.row_id,
            provider=spec.producer.name,
            status="succeeded",
            outputs=outputs.get(i.id),
            cached=True,
        )
        for i in spec.items
    ]
    return RunShardStatus(
        phase=shard_phase(items), items=items, summary=summarize(items), message=spec.skip_reason
    )


def waiting_status(spec: RunShardSpec) -> RunShardStatus:
    """A shard of duplicates: pending until the items they repeat have a result."""
    items = [ItemResult(id=i.id, row_id=i.row_id, provider=spec.producer.name) for i in spec.items]
    return RunShardStatus(
        phase=shard_phase(items), items=items, summary=summarize(items), message=spec.skip_reason
    )


def initial_status(spec: RunShardSpec, cached: Mapping[str, Any]) -> RunShardStatus | None:
    """What the operator writes into a new shard: None for one that executes (its worker writes)."""
    if spec.execute:
        return None
    if spec.skip_reason == SKIP_CACHED:
        return cached_status(spec, cached)
    if spec.skip_reason == SKIP_DUPLICATE:
        return waiting_status(spec)
    return skipped_status(spec)
