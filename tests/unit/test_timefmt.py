"""RFC 3339 as the API server writes it: one spelling out, every spelling the server sends in."""

from __future__ import annotations

import datetime as dt

import pytest

from oxygen.timefmt import epoch, parse_rfc3339, rfc3339

NOON = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("value", "millis", "text"),
    [
        (NOON, False, "2024-05-01T12:00:00Z"),
        (NOON, True, "2024-05-01T12:00:00.123Z"),
        (NOON.replace(tzinfo=None), False, "2024-05-01T12:00:00Z"),
        (NOON.astimezone(dt.timezone(dt.timedelta(hours=2))), False, "2024-05-01T12:00:00Z"),
        (NOON.timestamp(), True, "2024-05-01T12:00:00.123Z"),
    ],
)
def test_rfc3339_writes_utc_with_z(value: dt.datetime | float, millis: bool, text: str) -> None:
    assert rfc3339(value, millis=millis) == text


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("2024-05-01T12:00:00Z", NOON.replace(microsecond=0)),
        ("2024-05-01T12:00:00.123456Z", NOON),
        ("2024-05-01T14:00:00+02:00", NOON.replace(microsecond=0)),
        ("2024-05-01T12:00:00", NOON.replace(microsecond=0)),
        ("", None),
        (None, None),
        ("yesterday", None),
    ],
)
def test_parse_rfc3339_reads_what_the_server_sends(text: str | None, parsed: dt.datetime | None) -> None:
    assert parse_rfc3339(text) == parsed


def test_epoch_and_rfc3339_round_trip() -> None:
    assert epoch(rfc3339(1714564800.0)) == 1714564800.0
    assert epoch("not a time") is None


def test_now_without_argument_is_parseable_and_aware() -> None:
    parsed = parse_rfc3339(rfc3339())
    assert parsed is not None
    assert parsed.tzinfo is not None
