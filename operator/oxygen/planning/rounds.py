"""Execution rounds → RunShard bodies.

Round 0 executes the run's items (or records them skipped: all of them in dry_run, those outside
the sample in smoke_test). Later rounds re-execute failed items (retry) or the items a smoke test or
dry run skipped (promotion). Names are deterministic in (run, round, index), and a round's item set
is recomputable from what is stored, so a restarted operator recreates exactly the same shards.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from oxygen.api.runshard import ItemRange, ItemResult, RunShardSpec, RunShardStatus, ShardItem
from oxygen.planning.items import PlannedItem
from oxygen.planning.names import shard_name
from oxygen.planning.shards import MAX_SHARD_INPUT_BYTES, batches
from oxygen.status.shard import shard_phase, summarize

SKIP_DRY_RUN = "dry_run: nothing executes"
SKIP_SMOKE = "outside the smoke test sample"


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
                )
                for i in batch
            ]
            bodies.append(_body(run_body, spec, round_, len(bodies), group, shape, items=items))
    return bodies


def range_bodies(
    run_body: dict[str, Any], spec: RunSpec, round_: int, count: int, shape: Shape
) -> list[dict[str, Any]]:
    """A round whose `count` items are already rows of the item store: shards of `batchSize` ranges."""
    size = spec.batch_size
    return [
        _body(run_body, spec, round_, k, Group(()), shape, span=(start, min(start + size, count)))
        for k, start in enumerate(range(0, count, size))
    ]


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
    items = [
        ItemResult(id=i.id, row_id=i.row_id, status="skipped", attempt_count=i.attempt_count)
        for i in spec.items
    ]
    return RunShardStatus(
        phase=shard_phase(items), items=items, summary=summarize(items), message=spec.skip_reason
    )
