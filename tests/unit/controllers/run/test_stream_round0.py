"""With an item store, round 0 streams from its source into the store's COPY: never a list in the
operator's memory, one pass over the source, and shards that are `batchSize` ranges of ordinals."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.run import RunStatus
from oxygen.controllers.run import item_store, plan
from oxygen.controllers.run.apply import Applier
from oxygen.controllers.run.reconcile import ACTIVE_INTERVAL, IDLE_INTERVAL, RunController
from oxygen.controllers.run.types import RunFailure, RunState
from oxygen.credits.gate import Decision
from oxygen.itemstore.rows import NewItem
from oxygen.itemstore.store import ItemStore
from oxygen.planning.items import PlannedItem
from oxygen.planning.rounds import SKIP_DRY_RUN, SKIP_SMOKE, stored_status
from oxygen.planning.shards import MAX_SHARD_INPUT_BYTES
from tests.support import builders as b
from tests.support.recording_kube import RecordingKube
from tests.unit.controllers.run.test_reconcile import StubReader, _controller, _pass

UNMETERED = Decision(metered=False, allowed=True, account=None, message="unmetered")
STREAMED: dict[str, Any] = {"itemsFrom": {"url": {"url": "http://h:1/rows.jsonl"}}}
WIDE = "x" * 200  # inputs that a byte split would cut into many more shards than batchSize


class OnePass:
    """A streamed source that counts what it yields; it may be opened once and has no length."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.opened = 0
        self.yielded = 0

    def open(self) -> Iterator[PlannedItem]:
        self.opened += 1
        assert self.opened == 1, "the source was read twice"
        for k in range(self.n):
            self.yielded += 1
            yield PlannedItem(str(k), f"r{k}", {"k": k, "w": WIDE})

    def __len__(self) -> int:
        raise AssertionError("round 0 was counted as a list")


class StreamingStore:
    """append_round as the COPY does it: one row at a time, each checked against what the source has
    yielded so far (a materialised round would have drained the source before the first row)."""

    def __init__(self, source: OnePass | None = None, stored: int | None = None) -> None:
        self.source = source
        self.stored = stored
        self.rows = 0
        self.statuses: dict[str, int] = {}
        self.ahead = 0

    def append_round(self, run_uid: str, namespace: str, round_: int, items: Iterable[NewItem]) -> bool:
        assert round_ == 0
        if self.stored is not None:
            return False
        for item in items:
            assert item.ordinal == self.rows
            if self.source is not None:
                self.ahead = max(self.ahead, self.source.yielded - self.rows)
            self.statuses[item.status] = self.statuses.get(item.status, 0) + 1
            self.rows += 1
        self.stored = self.rows
        return True

    def round_count(self, run_uid: str, round_: int) -> int:
        return self.stored or 0


def _store(fake: StreamingStore) -> ItemStore:
    return fake  # type: ignore[return-value]


def stage(run_body: dict[str, Any], resolved: Any, fake: StreamingStore) -> int:
    run = b.observed(run_body).run
    assert resolved.source is not None
    return item_store.stage(
        _store(fake), run_body, resolved.source, lambda ordinal: stored_status(run.spec, ordinal)
    )


def test_round_zero_streams_item_by_item_and_shards_are_batch_size_ranges() -> None:
    n = 25_000
    assert n * len(WIDE) > 10 * MAX_SHARD_INPUT_BYTES  # by bytes, many more than 3 shards
    body = b.run_body(batchSize=10_000, **STREAMED)
    obs = b.observed(body)
    source = OnePass(n)
    resolved = plan.resolve(obs.run, plan.Sources(stream=source.open, ceiling=None), store=True)
    assert resolved.items == [] and source.opened == 0  # nothing read while planning
    fake = StreamingStore(source)
    count = stage(body, resolved, fake)
    assert (count, fake.rows, source.opened) == (n, n, 1)
    assert fake.ahead <= 1, "the source ran ahead of the COPY: round 0 was materialised"
    assert fake.statuses == {"pending": n}

    status = RunStatus()
    result = plan.initial(obs, status, plan.stored(resolved, count), UNMETERED, b.settings())
    spans = [s.body["spec"]["range"] for s in result.shards]
    assert spans == [
        {"start": 0, "end": 10_000},
        {"start": 10_000, "end": 20_000},
        {"start": 20_000, "end": n},
    ]
    assert all(not s.body["spec"].get("items") and s.initial_status is None for s in result.shards)
    assert status.items_total == n
    assert [(r.items, r.shards) for r in status.rounds] == [(n, 3)]
    assert result.events[0].message.startswith(f"{n} items in 3 shards")


def test_a_failing_source_fails_the_run_from_inside_the_copy() -> None:
    def broken() -> Iterator[PlannedItem]:
        yield PlannedItem("0", None, {})
        from oxygen.sources import errors

        raise errors.SourceError(errors.QUERY_FAILED, 'relation "nope" does not exist')

    body = b.run_body(**STREAMED)
    resolved = plan.resolve(b.observed(body).run, plan.Sources(stream=broken, ceiling=None), store=True)
    with pytest.raises(RunFailure, match="nope"):
        stage(body, resolved, StreamingStore())


def test_a_round_already_stored_is_counted_and_its_source_never_opened() -> None:
    body = b.run_body(batchSize=10_000, **STREAMED)
    source = OnePass(5)
    resolved = plan.resolve(b.observed(body).run, plan.Sources(stream=source.open, ceiling=None), store=True)
    fake = StreamingStore(stored=30_001)
    assert stage(body, resolved, fake) == 30_001
    assert (source.opened, fake.rows) == (0, 0)


@pytest.mark.parametrize(
    ("spec", "statuses", "shards", "estimate"),
    [
        ({"mode": "dry_run"}, {"skipped": 25}, [(0, 10, False), (10, 20, False), (20, 25, False)], "50"),
        (
            {"mode": "smoke_test", "smokeTest": {"sampleSize": 12}},
            {"pending": 12, "skipped": 13},
            [(0, 10, True), (10, 12, True), (12, 22, False), (22, 25, False)],
            "24",
        ),
    ],
    ids=["dry-run", "smoke-test"],
)
def test_modes_pick_the_sample_by_ordinal(
    spec: dict[str, Any], statuses: dict[str, int], shards: list[tuple[int, int, bool]], estimate: str
) -> None:
    items = [{"rowId": f"r{k}", "inputs": {"k": k}} for k in range(25)]
    body = b.run_body(batchSize=10, items=items, producer={**b.ECHO, "costPerItem": "2"}, **spec)
    obs = b.observed(body)
    resolved = plan.resolve(obs.run, plan.Sources(), store=True)
    fake = StreamingStore()
    resolved = plan.stored(resolved, stage(body, resolved, fake))
    assert fake.statuses == statuses
    assert plan.estimate(obs.run, resolved) == Decimal(estimate)
    result = plan.initial(obs, RunStatus(), resolved, UNMETERED, b.settings())
    got = [(s.body["spec"]["range"]["start"], s.body["spec"]["range"]["end"]) for s in result.shards]
    assert [
        (lo, hi, s.body["spec"]["execute"]) for (lo, hi), s in zip(got, result.shards, strict=True)
    ] == shards
    for shard in result.shards:
        if shard.body["spec"]["execute"]:
            assert shard.initial_status is None
            continue
        size = shard.body["spec"]["range"]["end"] - shard.body["spec"]["range"]["start"]
        assert shard.initial_status is not None
        assert shard.initial_status["summary"]["skipped"] == size
        assert shard.initial_status["phase"] == "Succeeded" and not shard.initial_status.get("items")
        assert shard.initial_status["message"] in (SKIP_DRY_RUN, SKIP_SMOKE)


def test_a_run_with_cache_hits_stays_a_list() -> None:
    body = b.run_body(items=[{"inputs": {"k": 1}}])
    sources = plan.Sources(cached={"0": {"out": 1}})
    resolved = plan.resolve(b.observed(body).run, sources, store=True)
    assert resolved.source is None and len(resolved.items) == 1


class RecordingStore(StreamingStore):
    def __init__(self) -> None:
        super().__init__()
        self.appends = 0
        self.abandoned: list[int] = []

    def append_round(self, run_uid: str, namespace: str, round_: int, items: Iterable[NewItem]) -> bool:
        self.appends += 1
        return super().append_round(run_uid, namespace, round_, items)

    def abandon_round(self, run_uid: str, round_: int) -> None:
        self.abandoned.append(round_)
        self.stored = None


def _store_controller(snapshot: Any, fake: RecordingStore, kube: RecordingKube) -> RunController:
    controller = _controller(StubReader(snapshot=snapshot), kube)
    controller.applier = Applier(kube, store=_store(fake))  # type: ignore[arg-type]
    return controller


def test_a_run_waiting_for_credits_is_staged_once_and_its_rows_go_when_canceled() -> None:
    kube, fake = RecordingKube(), RecordingStore()
    body = b.run_body(producer={**b.ECHO, "costPerItem": "50"})
    state = RunState.from_body(body)
    controller = _store_controller(b.credit_snapshot("10"), fake, kube)
    assert _pass(controller, body, state) == ACTIVE_INTERVAL
    # The finalizer before the first row; the count decides (3 items at 50 each, 10 granted): it waits.
    assert kube.calls == [
        ("add-finalizer:runs", "leads"),
        ("status:runs", "leads"),
        ("event", "InsufficientCredits"),
    ]
    assert (fake.appends, fake.rows, state.status.phase, state.status.items_total) == (1, 3, "queued", 3)
    _pass(controller, body, state)
    assert fake.appends == 1  # a second pass writes nothing
    canceled = b.run_body(producer={**b.ECHO, "costPerItem": "50"}, cancel=True)
    _pass(controller, canceled, state)
    assert fake.abandoned == [0] and state.items_cache is None


def test_an_unaffordable_run_that_fails_leaves_no_rows() -> None:
    kube, fake = RecordingKube(), RecordingStore()
    body = b.run_body(producer={**b.ECHO, "costPerItem": "50"})
    state = RunState.from_body(body)
    controller = _store_controller(b.credit_snapshot("10", on_insufficient="fail"), fake, kube)
    assert _pass(controller, body, state) == IDLE_INTERVAL
    assert state.status.phase == "failed"
    assert [c for c in kube.calls if c[0] == "event"] == [("event", "InsufficientCredits")]
    assert (fake.appends, fake.abandoned) == (1, [0])
    assert not kube.shards
