"""oxygen.sources: streamed rows (JSONL/CSV over HTTP), PostgreSQL values as inputs, the ceiling, and
the run failure a stopped source becomes."""

from __future__ import annotations

import datetime as dt
import io
import socket
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pydantic import ValidationError

from oxygen.api.run import ItemsFrom, UrlItems
from oxygen.controllers.run import plan
from oxygen.controllers.run.types import RunFailure
from oxygen.planning.items import ItemsSourceError, PlannedItem, iter_csv, iter_jsonl, parse_rows
from oxygen.sources import errors, url
from oxygen.sources.ceiling import bounded
from oxygen.sources.postgres import _query, _row_id_position, json_value
from tests.support import builders as b
from tests.support.file_server import FileServer


def test_jsonl_streams_one_item_per_line() -> None:
    lines = iter(['{"rowId": "a", "inputs": {"x": 1}}\n', "\n", '{"inputs": {"x": 2}}\n'])
    items = iter_jsonl(lines, "f")
    assert next(items) == PlannedItem("0", "a", {"x": 1})
    assert next(items) == PlannedItem("1", None, {"x": 2})
    assert list(items) == []


def test_jsonl_names_the_line_it_cannot_read() -> None:
    with pytest.raises(ItemsSourceError, match=r"f line 3: not valid JSON"):
        list(iter_jsonl(['{"inputs": {}}', "", "{oops"], "f"))
    with pytest.raises(ItemsSourceError, match=r"f line 1: unknown field\(s\) extra"):
        list(iter_jsonl(['{"extra": 1}'], "f"))


def test_csv_keeps_quoted_newlines_and_row_ids() -> None:
    text = 'rowId,name,note\nr1,Ann,"two\nlines"\nr2,Bob,x\n'
    items = list(iter_csv(io.StringIO(text, newline=""), "f.csv"))
    assert items == [
        PlannedItem("0", "r1", {"name": "Ann", "note": "two\nlines"}),
        PlannedItem("1", "r2", {"name": "Bob", "note": "x"}),
    ]
    assert parse_rows(text, "rows.csv") == items


def test_csv_names_a_short_row() -> None:
    with pytest.raises(ItemsSourceError, match=r"f line 3: 1 fields, the header has 2"):
        list(iter_csv(io.StringIO("a,b\n1,2\n3\n"), "f"))


@pytest.mark.parametrize(
    ("address", "fmt"),
    [("http://h:1/rows.csv", "csv"), ("http://h:1/rows.CSV?x=1", "csv"), ("http://h:1/r.jsonl", "jsonl")],
)
def test_url_format_from_the_path(address: str, fmt: str) -> None:
    assert UrlItems(url=address).row_format() == fmt
    assert UrlItems(url=address, format="jsonl").row_format() == "jsonl"


def test_items_from_needs_exactly_one_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of configMapKeyRef, postgres or url"):
        ItemsFrom.model_validate({})
    with pytest.raises(ValidationError, match="exactly one"):
        ItemsFrom.model_validate(
            {"url": {"url": "http://h:1/x"}, "configMapKeyRef": {"name": "a", "key": "b"}}
        )
    pg = ItemsFrom.model_validate(
        {"postgres": {"secretRef": {"name": "db", "key": "dsn"}, "query": "select 1"}}
    )
    assert pg.streamed and pg.postgres is not None and pg.postgres.row_id_column == "row_id"


def test_postgres_values_become_json() -> None:
    assert json_value(Decimal("1.50")) == "1.50"
    assert json_value(dt.date(2026, 1, 2)) == "2026-01-02"
    assert json_value(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2026-01-02T03:04:05+00:00"
    assert json_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert json_value(b"\x01\xff") == "01ff"
    assert json_value(float("nan")) == "nan"
    assert json_value({"a": [Decimal("2"), None, True]}) == {"a": ["2", None, True]}
    assert json_value(7) == 7


def test_postgres_query_and_row_id_column() -> None:
    assert _query("  select 1 ;  ") == "select 1"
    assert _row_id_position(["a", "id"], "id") == 1
    with pytest.raises(errors.SourceError, match=r"no column 'row_id' \(rowIdColumn\); its columns: a, b"):
        _row_id_position(["a", "b"], "row_id")
    with pytest.raises(errors.SourceError, match="column\\(s\\) a more than once"):
        _row_id_position(["a", "a", "row_id"], "row_id")


def _items(n: int) -> Iterator[PlannedItem]:
    for k in range(n):
        yield PlannedItem(str(k), None, {})


def test_the_ceiling_stops_the_stream_at_the_first_item_over_it() -> None:
    assert len(bounded(_items(3), limit=3)) == 3
    source = _items(10)
    with pytest.raises(errors.SourceError, match="more than 3 items") as caught:
        bounded(source, limit=3)
    assert caught.value.reason == errors.TOO_LARGE
    assert next(source).id == "4"  # read no further than one past the limit


def test_a_stopped_source_fails_the_run_with_its_message() -> None:
    def broken() -> Iterator[PlannedItem]:
        yield PlannedItem("0", None, {})
        raise errors.SourceError(
            errors.QUERY_FAILED, 'the items query failed: relation "nope" does not exist'
        )

    run = b.run(itemsFrom={"url": {"url": "http://h:1/rows.jsonl"}})
    with pytest.raises(RunFailure) as caught:
        plan.resolve(run, plan.Sources(stream=broken))
    assert caught.value.reason == errors.QUERY_FAILED
    assert 'relation "nope" does not exist' in caught.value.message
    resolved = plan.resolve(run, plan.Sources(stream=lambda: _items(2)))
    assert [i.id for i in resolved.items] == ["0", "1"]


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    files = {
        "/rows.jsonl": (200, b'{"rowId": "a", "inputs": {"x": 1}}\n{"rowId": "b", "inputs": {"x": 2}}\n'),
        "/rows.csv": (200, b'rowId,name\r\nr1,"A, B"\r\nr2,C\r\n'),
        "/bad.jsonl": (200, b'{"inputs": {}}\n[1]\n'),
        "/latin1.csv": (200, b"a\n\xe9\n"),
        "/boom": (500, b"database on fire"),
        "/to-metadata": (302, b"http://169.254.169.254/latest/meta-data/"),
        "/to-file": (302, b"file:///etc/passwd"),
        "/to-rows": (302, b"/rows.jsonl"),
    }
    with FileServer(files) as server:
        yield server.url


def test_url_streams_jsonl_and_csv(served: str) -> None:
    assert list(url.stream(f"{served}/rows.jsonl", "jsonl")) == [
        PlannedItem("0", "a", {"x": 1}),
        PlannedItem("1", "b", {"x": 2}),
    ]
    assert list(url.stream(f"{served}/rows.csv", "csv")) == [
        PlannedItem("0", "r1", {"name": "A, B"}),
        PlannedItem("1", "r2", {"name": "C"}),
    ]


@pytest.mark.parametrize(
    ("path", "fmt", "reason", "message"),
    [
        ("/nope.jsonl", "jsonl", errors.NOT_FOUND, r"/nope.jsonl: 404 Not Found: no such file"),
        ("/boom", "jsonl", errors.HTTP_ERROR, r"/boom: 500 Internal Server Error: database on fire"),
        ("/bad.jsonl", "jsonl", errors.MALFORMED, r"/bad.jsonl line 2: expected a JSON object, got list"),
        ("/latin1.csv", "csv", errors.MALFORMED, r"not UTF-8 text"),
    ],
)
def test_url_failures_carry_the_server_message(
    served: str, path: str, fmt: str, reason: str, message: str
) -> None:
    with pytest.raises(errors.SourceError, match=message) as caught:
        list(url.stream(f"{served}{path}", fmt))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local"),
        ("http://[fe80::1]/rows.jsonl", "link-local"),
        ("http://0.0.0.0:1/rows.jsonl", "unspecified"),
        ("{served}/to-metadata", "169.254.169.254, a link-local"),
        ("{served}/to-file", "Redirection to url 'file:///etc/passwd' is not allowed"),
    ],
    ids=["metadata", "ipv6-link-local", "unspecified", "redirect-to-metadata", "redirect-to-file"],
)
def test_url_never_fetched_from_where_the_operator_alone_reaches(
    served: str, address: str, message: str
) -> None:
    with pytest.raises(errors.SourceError, match=message) as caught:
        list(url.stream(address.format(served=served), "jsonl"))
    assert caught.value.reason in (errors.UNREACHABLE, errors.HTTP_ERROR)


def test_url_follows_a_redirect_it_would_fetch(served: str) -> None:
    assert [i.row_id for i in url.stream(f"{served}/to-rows", "jsonl")] == ["a", "b"]


def _free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_url_unreachable() -> None:
    with pytest.raises(errors.SourceError, match="Connection refused") as caught:
        list(url.stream(f"http://127.0.0.1:{_free_port()}/rows.jsonl", "jsonl"))
    assert caught.value.reason == errors.UNREACHABLE


def test_an_unparsable_dsn_fails_without_quoting_it() -> None:
    from oxygen.sources.postgres import stream

    with pytest.raises(errors.SourceError) as raised:
        list(stream("postgresql//bob:s3cretpw@db:5432/x", "select 1"))
    assert "s3cretpw" not in str(raised.value)
    assert "not a valid DSN" in str(raised.value)
