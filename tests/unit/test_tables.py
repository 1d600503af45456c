"""Tables without a database: row selections, cache keys, never-pay-twice planning, duplicates."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from oxygen.api.run import Producer, Run, RunSpec
from oxygen.api.runshard import ItemResult, RunShardSpec
from oxygen.api.table import TablePostgres
from oxygen.controllers.run import tables
from oxygen.controllers.run.plan import never_pay_twice
from oxygen.controllers.run.tables import copied
from oxygen.controllers.run.types import Resolved
from oxygen.planning.items import PlannedItem
from oxygen.planning.rounds import SKIP_CACHED, SKIP_DUPLICATE, Shape, initial_status
from oxygen.tables import cache, cells
from oxygen.tables.cache import key_of, producer_identity
from oxygen.tables.rows import Selection, TableRef, selection_of
from tests.support import builders as b


def test_rows_selection() -> None:
    assert selection_of(None) == selection_of("empty") == Selection("empty")
    assert selection_of("all") == Selection("all")
    assert selection_of({"where": "score > 3"}) == Selection("where", "score > 3")
    for bad in ("some", {"where": ""}, {"where": "x", "limit": 3}, 3):
        with pytest.raises(ValueError, match=r'spec\.rows must be "empty", "all" or'):
            selection_of(bad)


def test_a_cache_key_is_the_inputs_whatever_their_key_order() -> None:
    assert key_of({"a": 1, "b": [1, 2]}) == key_of({"b": [1, 2], "a": 1})
    assert key_of({"a": 1}) != key_of({"a": "1"})


def test_a_column_run_over_a_table_needs_inputs_and_a_column() -> None:
    spec = RunSpec.model_validate(
        {
            "table": "leads",
            "column": "d",
            "inputs": {"d": "${row.w}"},
            "producer": {"provider": "e", "builtin": "echo"},
        }
    )
    assert spec.rows_table == "leads"
    with pytest.raises(ValueError, match="needs column"):
        RunSpec.model_validate(
            {"table": "leads", "inputs": {}, "producer": {"provider": "e", "builtin": "echo"}}
        )
    with pytest.raises(ValueError, match="exactly one of items or itemsFrom"):
        RunSpec.model_validate(
            {
                "table": "leads",
                "column": "d",
                "inputs": {},
                "items": [],
                "producer": {"provider": "e", "builtin": "echo"},
            }
        )
    informational = RunSpec.model_validate(
        {"table": "leads", "column": "d", "items": [], "producer": {"provider": "e", "builtin": "echo"}}
    )
    assert informational.rows_table is None


def items(*inputs: str) -> list[PlannedItem]:
    return [PlannedItem(str(i), f"r{i}", {"d": d}) for i, d in enumerate(inputs)]


def test_never_pay_twice_calls_each_distinct_input_once() -> None:
    planned = items("a", "b", "a", "c", "a", "b")
    resolved = Resolved(
        planned,
        Shape(),
        Decimal(2),
        len(planned),
        cached={"3": {"d": "c"}},
        followers={"2": "0", "4": "0", "5": "1"},
    )
    called, hits, repeats = never_pay_twice(planned, resolved)
    assert [i.id for i in called.items] == ["0", "1"] and called.execute
    assert ([i.id for i in hits.items], hits.execute, hits.skip_reason) == (["3"], False, SKIP_CACHED)
    assert ([i.id for i in repeats.items], repeats.execute, repeats.skip_reason) == (
        ["2", "4", "5"],
        False,
        SKIP_DUPLICATE,
    )


def shard(skip_reason: str | None, execute: bool = False) -> RunShardSpec:
    return RunShardSpec.model_validate(
        {
            "runName": "r", "runUid": "u", "round": 0, "index": 0, "execute": execute,
            "skipReason": skip_reason, "producer": {"provider": "enrich", "builtin": "echo"}, "retry": {},
            "items": [
                {"id": "3", "rowId": "r3", "inputs": {"d": "c"}},
                {"id": "4", "rowId": "r4", "cachedFrom": "0"},
            ],
        }
    )  # fmt: skip


def test_a_cache_hit_shard_is_succeeded_uncharged_and_a_duplicates_shard_waits() -> None:
    assert initial_status(shard(None, execute=True), {}) is None
    hits = initial_status(shard(SKIP_CACHED), {"3": {"d": "c"}, "4": {"d": "x"}})
    assert hits is not None and hits.phase == "Succeeded"
    assert [(i.status, i.outputs, i.cached, i.attempt_count) for i in hits.items] == [
        ("succeeded", {"d": "c"}, True, 0),
        ("succeeded", {"d": "x"}, True, 0),
    ]
    assert (
        hits.summary.succeeded,
        hits.summary.cached,
        hits.summary.credits_used,
        hits.summary.attempts,
    ) == (2, 2, Decimal(0), 0)
    assert hits.summary.by_provider["enrich"].cached == 2
    waiting = initial_status(shard(SKIP_DUPLICATE), {})
    assert waiting is not None and waiting.phase == "Pending"
    assert [i.status for i in waiting.items] == ["pending", "pending"]
    assert initial_status(shard("dry_run: nothing executes"), {}).items[0].status == "skipped"  # type: ignore[union-attr]


def test_a_duplicate_takes_its_first_items_result() -> None:
    waiting = ItemResult(id="4", row_id="r4", provider="enrich")
    ok = ItemResult(id="0", status="succeeded", outputs={"v": 1}, attempt_count=2, credits_used=Decimal(2))
    took = copied(waiting, ok)
    assert (took.status, took.outputs, took.cached) == ("succeeded", {"v": 1}, True)
    assert (took.attempt_count, took.credits_used) == (0, Decimal(0)), "not called, not charged"
    failed = ItemResult(id="0", status="failed", error="400: unknown domain", error_class="http_4xx")
    lost = copied(waiting, failed)
    assert (lost.status, lost.error_class, lost.cached) == ("failed", "http_4xx", None)
    assert lost.error == "the item with the same inputs (0) failed: 400: unknown domain"


def test_a_where_with_a_percent_sign_is_sql_not_a_placeholder() -> None:
    from oxygen.api.table import TablePostgres
    from oxygen.tables.rows import TableRef, _page_query

    postgres = TablePostgres.model_validate(
        {"secretRef": {"name": "db", "key": "dsn"}, "table": "public.leads", "rowIdColumn": "id"}
    )
    ref = TableRef(namespace="ns", name="leads", postgres=postgres, column="domain")
    query = _page_query(ref, Selection("where", "website like '%.com'"), first=True).as_string(None)
    # Run with named parameters, psycopg turns %% back into the user's %.
    assert "like '%%.com'" in query


def test_an_unparsable_dsn_is_reported_without_its_text() -> None:
    from oxygen.tables.connect import connect
    from oxygen.tables.errors import TableError

    with pytest.raises(TableError) as raised, connect("postgresql//bob:s3cretpw@db:5432/x"):
        pass
    assert "s3cretpw" not in str(raised.value)
    assert "not a valid DSN" in str(raised.value)


def test_a_producers_identity_is_what_it_calls_not_its_name() -> None:
    def identity(producer: dict[str, Any]) -> str:
        return producer_identity(Producer.model_validate(producer))

    http: dict[str, Any] = {"provider": "clearbit", "http": {"url": "https://a.example/x"}}
    assert identity({"providerRef": {"name": "clearbit"}}) == "clearbit"
    assert identity({"providerRef": {"name": "clearbit"}, "cache": {"ttlSeconds": 60}}) == "clearbit"
    # An inline producer named like the Provider is not the Provider, and two inline producers of
    # one name calling different things are two producers.
    named_alike = {identity({"provider": "clearbit", "builtin": "echo"}), identity(http)}
    assert "clearbit" not in named_alike and len(named_alike) == 2
    assert all(i.startswith("producer:") for i in named_alike)
    assert identity(http) != identity({**http, "http": {"url": "https://b.example/x"}})
    assert identity(http) != identity(
        {**http, "http": {**http["http"], "headersFrom": {"secretRef": {"name": "k"}}}}
    )
    assert identity({"provider": "a", "command": ["enrich", "--v1"]}) != identity(
        {"provider": "a", "command": ["enrich", "--v2"]}
    )
    # Its name, price, cache, concurrency, timeout and output bound change no answer.
    assert identity(http) == identity(
        {
            "provider": "renamed",
            "http": {"url": "https://a.example/x", "timeoutSeconds": 3},
            "costPerItem": "2",
            "cache": {"ttlSeconds": 5},
            "concurrency": 4,
            "maxOutputBytes": 1024,
        }
    )
    steps = [{"providerRef": {"name": "clearbit"}}, {"provider": "b", "http": {"url": "https://b.example/"}}]
    assert identity({"waterfall": steps}) != identity({"waterfall": steps[:1]})
    assert identity({"waterfall": steps}) != identity({"providerRef": {"name": "clearbit"}})


class FakeCallCache:
    """oxygen.call_cache in memory, (namespace, producer, key) → outputs, as cells.write fills it and
    cache.lookup reads it."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str, str], Any] = {}

    def lookup(self, dsn: str, namespace: str, provider: str, keys: Any, ttl: int) -> dict[str, Any]:
        return {
            k: self.calls[(namespace, provider, k)] for k in keys if (namespace, provider, k) in self.calls
        }

    def write(
        self, dsn: str, ref: TableRef, uid: str, name: str, results: list[Any], provider: str | None = None
    ) -> None:
        for r in results:
            if provider is not None and r.status == "succeeded" and not r.cached:
                self.calls[(ref.namespace, provider, key_of(r.inputs))] = r.outputs


class ShardsKube:
    """The API reads of a cells pass: the run's one shard."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        assert (plural, name) == ("runshards", self.body["metadata"]["name"])
        return self.body


@pytest.fixture
def call_cache(monkeypatch: pytest.MonkeyPatch) -> FakeCallCache:
    fake = FakeCallCache()
    postgres = TablePostgres.model_validate({"secretRef": {"name": "s", "key": "dsn"}, "table": "leads"})
    monkeypatch.setattr(cache, "lookup", fake.lookup)
    monkeypatch.setattr(cells, "write", fake.write)
    monkeypatch.setattr(tables, "target", lambda kube, run: ("dsn", TableRef(b.NS, "leads", postgres, "d")))
    return fake


def column_run(name: str, producer: dict[str, Any]) -> Run:
    body = b.run_body(name=name, uid=f"{name}-uid", table="leads", column="d", inputs={"n": "${row.n}"})
    body["spec"].pop("items")
    body["spec"]["producer"] = producer
    return Run.model_validate(body)


def fill(run: Run) -> None:
    """The run's one item succeeded; the pass writes its cell and remembers the call."""
    owner = b.run_body(name=run.metadata.name, uid=run.metadata.uid)
    kube = ShardsKube(
        b.shard_body(owner, items=["succeeded"], row_id="r0", outputs={"from": run.metadata.name})
    )
    view = b.shard_view(run=run.metadata.name, phase="Succeeded", succeeded=1)
    tables.sync(kube, run, b.shards(view), tables.CellSync())  # type: ignore[arg-type]


def hits(run: Run) -> dict[str, Any]:
    cached, _ = tables.never_pay_twice(None, run, [PlannedItem("0", "r0", {"n": "0"})], 3600)  # type: ignore[arg-type]
    return cached


def test_inline_producers_named_alike_share_no_calls_and_a_provider_shares_its_own(
    call_cache: FakeCallCache,
) -> None:
    provider = {"providerRef": {"name": "clearbit"}}
    fill(column_run("echoes", {"provider": "clearbit", "builtin": "echo"}))
    # Neither the Provider of that name nor an http producer of that name takes the echo's outputs.
    assert hits(column_run("paid", provider)) == {}
    assert hits(column_run("inline", {"provider": "clearbit", "http": {"url": "https://a.example/"}})) == {}
    # The same echo under another name and cache is the same producer.
    again = column_run("again", {"provider": "renamed", "builtin": "echo", "cache": {"ttlSeconds": 9}})
    assert hits(again) == {"0": {"from": "echoes"}}
    # The Provider's calls are its own, whichever run made them.
    fill(column_run("paid", provider))
    assert hits(column_run("later", {**provider, "cache": {"ttlSeconds": 60}})) == {"0": {"from": "paid"}}
    assert hits(column_run("echo-again", {"provider": "clearbit", "builtin": "echo"})) == {
        "0": {"from": "echoes"}
    }
