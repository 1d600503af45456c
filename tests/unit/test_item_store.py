"""The item store's pure parts: the etcd ceiling, shards turned into ranges of rows (operator side),
the worker's hydrated shard and its batched writes, the Job's secret reference, role names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.runshard import RunShard, RunShardStatus
from oxygen.controllers.run import item_store
from oxygen.controllers.run.plan import ETCD_ITEM_CEILING, within_ceiling
from oxygen.controllers.run.types import NewShard, RunFailure
from oxygen.execution import store_shard
from oxygen.execution.jobs import ITEM_STORE_DSN_ENV, WorkerDefaults, item_store_secret, shard_job
from oxygen.itemstore.rows import ItemRow, NewItem, Result
from oxygen.itemstore.store import worker_role
from oxygen.planning.rounds import skipped_status
from oxygen.status.views import shard_view
from tests.support import builders


class FakeStore:
    """Records what the operator's side would write."""

    def __init__(self, rows: Sequence[ItemRow] = ()) -> None:
        self.rows = list(rows)
        self.appended: list[tuple[str, int, list[NewItem]]] = []
        self.results: list[tuple[str, int, list[Result]]] = []

    def append_round(self, run_uid: str, namespace: str, round_: int, items: Iterable[NewItem]) -> bool:
        self.appended.append((run_uid, round_, list(items)))
        return True

    def read_range(self, run_uid: str, round_: int, start: int, end: int) -> list[ItemRow]:
        return [r for r in self.rows if r.round == round_ and start <= r.ordinal < end]

    def write_results(self, run_uid: str, round_: int, results: Sequence[Result]) -> None:
        self.results.append((run_uid, round_, list(results)))

    def write(self, run_uid: str, round_: int, results: Sequence[Result]) -> int:
        self.write_results(run_uid, round_, results)
        return len(results)


def test_without_a_store_a_run_over_the_ceiling_is_refused_naming_the_fix() -> None:
    within_ceiling(ETCD_ITEM_CEILING, item_store=False)
    within_ceiling(ETCD_ITEM_CEILING * 10, item_store=True)
    with pytest.raises(RunFailure) as refused:
        within_ceiling(ETCD_ITEM_CEILING + 1, item_store=False)
    assert refused.value.reason == "ItemStoreRequired"
    assert str(ETCD_ITEM_CEILING) in refused.value.message
    assert "--item-store" in refused.value.message


def test_new_shards_become_ranges_of_one_copied_round() -> None:
    run = builders.run_body()
    first = builders.shard_body(run, index=0, ids=["0", "1", "2"], items=["", "", ""])
    second = builders.shard_body(run, index=1, ids=["3", "4"], items=["", ""])
    skipped = builders.shard_body(run, index=2, ids=["5"], items=[""], execute=False, skip_reason="dry")
    skipped_spec = RunShard.model_validate(skipped).spec
    initial = skipped_status(skipped_spec).wire()
    store = FakeStore()
    out = item_store.to_store(
        store,  # type: ignore[arg-type]
        run,
        [NewShard(second), NewShard(skipped, initial), NewShard(first)],
    )
    assert len(store.appended) == 1
    uid, round_, rows = store.appended[0]
    assert (uid, round_) == (builders.UID, 0)
    assert [(r.ordinal, r.item_id, r.status) for r in rows] == [
        (0, "0", "pending"),
        (1, "1", "pending"),
        (2, "2", "pending"),
        (3, "3", "pending"),
        (4, "4", "pending"),
        (5, "5", "skipped"),
    ]
    ranges = {s.body["spec"]["index"]: s.body["spec"]["range"] for s in out}
    assert ranges == {0: {"start": 0, "end": 3}, 1: {"start": 3, "end": 5}, 2: {"start": 5, "end": 6}}
    assert all("items" not in s.body["spec"] for s in out)
    (skip,) = [s for s in out if s.body["spec"]["index"] == 2]
    assert skip.initial_status is not None
    assert skip.initial_status["items"] == []
    assert skip.initial_status["summary"]["skipped"] == 1
    assert shard_view(skip.body).item_count == 1


def test_workflow_shards_stay_inline() -> None:
    run = builders.run_body()
    steps = builders.shard_body(run, ids=["0"], items=[""], sequence="steps")
    store = FakeStore()
    out = item_store.to_store(store, run, [NewShard(steps)])  # type: ignore[arg-type]
    assert store.appended == []
    assert out[0].body is steps


def stored_body(start: int, end: int, round_: int = 0) -> dict[str, Any]:
    body = builders.shard_body(builders.run_body(), round_=round_, ids=[], items=[])
    body["spec"].pop("items")
    body["spec"]["range"] = {"start": start, "end": end}
    body["status"] = {"phase": "Running", "summary": {"pending": end - start}}
    return body


def row(ordinal: int, status: str = "pending", round_: int = 0, attempts: int = 0, **kw: Any) -> ItemRow:
    return ItemRow(
        round=round_,
        ordinal=ordinal,
        item_id=str(100 + ordinal),
        row_id=f"r{ordinal}",
        status=status,
        attempt_count=attempts,
        inputs={"i": ordinal},
        **kw,
    )


def test_a_decision_reads_a_hydrated_shard_and_writes_rows_and_a_summary() -> None:
    store = FakeStore([row(10, "succeeded", attempts=1, outputs={"ok": 1}), row(11, "running", attempts=1)])
    body = stored_body(10, 12)
    hydrated = item_store.hydrate(store, body)  # type: ignore[arg-type]
    shard = RunShard.model_validate(hydrated)
    assert [i.id for i in shard.spec.items] == ["110", "111"]
    assert [i.status for i in shard.status.items] == ["succeeded", "running"]
    shard.status.items[1] = shard.status.items[1].model_copy(update={"status": "skipped"})
    patched = item_store.write_status(store, body, shard.status.wire())  # type: ignore[arg-type]
    assert patched["items"] == []
    (_, _, results) = store.results[0]
    assert [(r.ordinal, r.status) for r in results] == [(10, "succeeded"), (11, "skipped")]


def test_the_worker_writes_only_changed_rows_then_a_summary_only_status() -> None:
    rows = [row(0, "succeeded", attempts=1, started_at="2026-01-01T00:00:00.000Z"), row(1), row(2)]
    store = FakeStore(rows)
    shard = store_shard.hydrate(RunShard.model_validate(stored_body(0, 3)), rows)
    patched: list[RunShardStatus] = []
    flush = store_shard.StoreFlush(store, shard, patched.append)  # type: ignore[arg-type]
    snapshot = shard.status.model_copy(deep=True)
    snapshot.items[2] = snapshot.items[2].model_copy(
        update={"status": "succeeded", "attempt_count": 1, "credits_used": Decimal("2")}
    )
    flush(snapshot)
    flush(snapshot)  # nothing changed since: no row written again
    assert [[(r.ordinal, r.status, r.credits_used) for r in rs] for _, _, rs in store.results] == [
        [(2, "succeeded", Decimal("2"))]
    ]
    assert [p.items for p in patched] == [[], []]
    assert flush.rows_written == 1


def test_prior_attempts_of_a_later_round_are_what_its_row_started_with() -> None:
    assert store_shard.prior_attempts(row(0, round_=0, attempts=2, started_at="x")) == 0
    assert store_shard.prior_attempts(row(0, round_=1, attempts=2)) == 2
    assert store_shard.prior_attempts(row(0, round_=1, attempts=3, started_at="x")) == 2


def test_a_stored_shards_job_gets_the_runs_dsn_from_its_secret() -> None:
    run = builders.run()
    body = stored_body(0, 3)
    job = shard_job(run, RunShard.model_validate(body), body, False, WorkerDefaults())
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[ITEM_STORE_DSN_ENV]["valueFrom"]["secretKeyRef"] == {
        "name": item_store_secret(run.metadata.name),
        "key": "dsn",
    }
    inline = builders.shard_body()
    job = shard_job(run, RunShard.model_validate(inline), inline, False, WorkerDefaults())
    assert ITEM_STORE_DSN_ENV not in {
        e["name"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_worker_roles_are_named_from_the_run_uid_within_63_characters() -> None:
    role = worker_role("0f8e2a6c-1234-4bcd-9abc-0123456789ab")
    assert role == "oxygen_w_0f8e2a6c12344bcd9abc0123456789ab"
    assert len(role) <= 63


def test_the_operator_refuses_to_start_on_an_unreachable_item_store(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oxygen.cli.main import main

    # `oxygen operator` sets these: restored after the test.
    monkeypatch.setenv("OXYGEN_ITEM_STORE", "")
    monkeypatch.setenv("OXYGEN_WEB_BASE_URL", "http://localhost:8083")
    monkeypatch.setenv("OXYGEN_PEERING_LIFETIME", "10")

    dsn = "postgresql://nobody:x@127.0.0.1:1/none?connect_timeout=2"
    assert main(["operator", "--item-store", dsn]) == 1
    assert "cannot use the item store" in caplog.text


def test_a_stored_later_round_is_shards_of_batch_size_ranges() -> None:
    from oxygen.planning.rounds import Shape, range_bodies

    run = builders.run_body(batchSize=4)
    bodies = range_bodies(run, builders.run(batchSize=4).spec, 2, 10, Shape())
    assert [(b["metadata"]["name"], b["spec"]["range"]) for b in bodies] == [
        ("leads-r2-0000", {"start": 0, "end": 4}),
        ("leads-r2-0001", {"start": 4, "end": 8}),
        ("leads-r2-0002", {"start": 8, "end": 10}),
    ]
    assert all(not b["spec"].get("items") and b["spec"]["round"] == 2 for b in bodies)
    assert range_bodies(run, builders.run(batchSize=4).spec, 2, 0, Shape()) == []
