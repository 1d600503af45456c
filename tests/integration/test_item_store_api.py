"""The item store against a real PostgreSQL: migrations, COPY of a round, retry rounds by one
INSERT … SELECT, keyset pages, batched result writes, bounded deletes, and the workers' scoped role."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from oxygen.itemstore.migrations import MIGRATIONS, current_version
from oxygen.itemstore.results import write_results
from oxygen.itemstore.store import ItemStore, NewItem, Result

pytestmark = pytest.mark.cluster


@pytest.fixture
def store(postgres: str) -> Iterator[ItemStore]:
    s = ItemStore(postgres)
    s.migrate()
    yield s
    s.close()


def items(n: int) -> Iterator[NewItem]:
    for i in range(n):
        yield NewItem(ordinal=i, item_id=str(i), row_id=f"r{i}", inputs={"i": i})


def test_migrations_are_versioned_and_idempotent(store: ItemStore) -> None:
    assert store.migrate() == []
    assert current_version(store.conn()) == MIGRATIONS[-1][0]


def test_a_round_is_copied_once_paged_by_keyset_and_deleted_in_batches(store: ItemStore) -> None:
    uid = str(uuid.uuid4())
    assert store.append_round(uid, "ns", 0, items(2500))
    assert not store.append_round(uid, "ns", 0, items(2500))  # a second pass writes nothing
    assert store.counts(uid) == {"pending": 2500}
    seen = list(store.iterate(uid, page_size=700))
    assert [r.ordinal for r in seen] == list(range(2500))
    assert seen[7].inputs == {"i": 7} and seen[7].row_id == "r7"
    assert [r.ordinal for r in store.read_range(uid, 0, 100, 103)] == [100, 101, 102]
    assert store.delete_run(uid, batch=1000) == 2500
    assert store.counts(uid) == {}


def test_a_died_copy_leaves_nothing_and_the_retry_writes_it_whole(store: ItemStore) -> None:
    uid = str(uuid.uuid4())

    def dying() -> Iterator[NewItem]:
        yield from items(10)
        raise RuntimeError("operator died mid-COPY")

    with pytest.raises(RuntimeError):
        store.append_round(uid, "ns", 0, dying())
    assert store.counts(uid) == {}
    assert store.append_round(uid, "ns", 0, items(20))
    assert store.counts(uid) == {"pending": 20}
    store.delete_run(uid)


def test_results_retry_round_and_failed_sample(store: ItemStore) -> None:
    uid = str(uuid.uuid4())
    store.append_round(uid, "ns", 0, items(10))
    results = [
        Result(
            ordinal=i,
            status="failed" if i % 3 == 0 else "succeeded",
            attempt_count=2,
            outputs=None if i % 3 == 0 else {"ok": i},
            error="boom" if i % 3 == 0 else None,
            credits_used=Decimal(0) if i % 3 == 0 else Decimal("1.5"),
            started_at="2026-01-01T00:00:00.000Z",
            finished_at="2026-01-01T00:00:01.250Z",
            latency_seconds=0.5,
        )
        for i in range(10)
    ]
    store.write_results(uid, 0, results)
    assert store.counts(uid) == {"failed": 4, "succeeded": 6}
    assert [r.item_id for r in store.first_failed(uid, 3)] == ["0", "3", "6"]
    row = store.read_range(uid, 0, 1, 2)[0]
    assert (row.outputs, row.credits_used, row.finished_at) == (
        {"ok": 1},
        Decimal("1.5"),
        "2026-01-01T00:00:01.250Z",
    )
    assert store.round_size(uid, 1, "retry") == 4
    assert store.next_round_from(uid, 1, "retry") == 4
    assert store.next_round_from(uid, 1, "retry") == 4  # idempotent
    assert store.round_size(uid, 1, "retry") == 4
    retried = store.read_range(uid, 1, 0, 100)
    assert [(r.ordinal, r.item_id, r.status, r.attempt_count) for r in retried] == [
        (0, "0", "pending", 2),
        (1, "3", "pending", 2),
        (2, "6", "pending", 2),
        (3, "9", "pending", 2),
    ]
    assert store.counts(uid) == {"pending": 4, "succeeded": 6}
    assert [r.superseded_by for r in store.item(uid, "3")] == ["1", None]
    store.abandon_round(uid, 1)
    assert store.counts(uid) == {"failed": 4, "succeeded": 6}
    store.delete_run(uid)


def test_a_workers_role_sees_and_writes_only_its_runs_rows(store: ItemStore) -> None:
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    store.append_round(mine, "ns", 0, items(5))
    store.append_round(other, "ns", 0, items(5))
    dsn = store.grant_worker(mine)
    assert "postgres" not in psycopg.conninfo.conninfo_to_dict(dsn)["user"]  # type: ignore[operator]
    with psycopg.connect(dsn, autocommit=True) as conn:
        runs = conn.execute("select distinct run_uid from oxygen.items").fetchall()
        assert runs == [(mine,)]
        done = [Result(ordinal=i, status="succeeded", attempt_count=1, outputs={"i": i}) for i in range(5)]
        assert write_results(conn, mine, 0, done) == 5
        assert write_results(conn, other, 0, done) == 0  # another run's rows are invisible
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update oxygen.items set superseded_by = 'x' where run_uid = %s", (mine,))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from oxygen.items")
    assert store.counts(mine) == {"succeeded": 5}
    assert store.counts(other) == {"pending": 5}
    store.revoke_worker(mine)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dsn, connect_timeout=5).close()
    store.delete_run(mine)
    store.delete_run(other)
