"""The cron parser and the CronJob rule for due fires (pure; no cluster)."""

from __future__ import annotations

import datetime as dt

import pytest

from oxygen.controllers.workflow.cron import (
    CronError,
    due_fires,
    missed_fire,
    next_fire,
    parse,
    previous_fire,
    validate,
)


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def fires(cron: str, after: str, n: int, tz: str = "UTC") -> list[str]:
    out: list[str] = []
    at = t(after)
    for _ in range(n):
        at = next_fire(cron, tz, at)
        out.append(at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def test_fields_lists_ranges_steps_and_names() -> None:
    cron = parse("*/15 9-17/4 1,15 jan-MAR mon-fri")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {9, 13, 17}
    assert cron.days == {1, 15}
    assert cron.months == {1, 2, 3}
    assert cron.weekdays == {1, 2, 3, 4, 5}
    assert parse("5/20 * * * *").minutes == {5, 25, 45}
    assert parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert parse("0 0 * * 0-7").weekdays == set(range(7))


def test_macros() -> None:
    assert parse("@hourly") == parse("0 * * * *")
    assert parse("@daily") == parse("0 0 * * *") == parse("@midnight")
    assert parse("@weekly") == parse("0 0 * * 0")
    assert parse("@monthly") == parse("0 0 1 * *")
    assert parse("@yearly") == parse("@annually") == parse("0 0 1 1 *")


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24"),
        ("* * 0 * *", "day of month: 0"),
        ("* * * 13 *", "month: 13"),
        ("* * * * 8", "day of week: 8"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("a * * * *", "'a' is not a number"),
        ("1,,2 * * * *", "empty list element"),
        ("@sometimes", "unknown macro"),
    ],
)
def test_invalid_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse(expression)


def test_unknown_time_zone_and_never_firing_schedule() -> None:
    with pytest.raises(CronError, match="unknown time zone 'Mars/Olympus'"):
        validate("* * * * *", "Mars/Olympus")
    with pytest.raises(CronError, match="never fires"):
        validate("0 0 30 2 *", "UTC")


def test_next_fire_is_strictly_after() -> None:
    assert fires("* * * * *", "2030-01-01T00:00:00Z", 2) == ["2030-01-01T00:01:00Z", "2030-01-01T00:02:00Z"]
    assert fires("* * * * *", "2030-01-01T00:00:30Z", 1) == ["2030-01-01T00:01:00Z"]
    assert fires("@hourly", "2030-01-01T23:59:59Z", 2) == ["2030-01-02T00:00:00Z", "2030-01-02T01:00:00Z"]
    assert fires("0 0 1 * *", "2030-01-31T12:00:00Z", 2) == ["2030-02-01T00:00:00Z", "2030-03-01T00:00:00Z"]
    assert fires("0 12 29 2 *", "2030-01-01T00:00:00Z", 1) == ["2032-02-29T12:00:00Z"]  # leap day


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # 2030-01-01 is a Tuesday: the 13th (Sunday) or any Friday.
    assert fires("0 0 13 * fri", "2030-01-01T00:00:00Z", 3) == [
        "2030-01-04T00:00:00Z",
        "2030-01-11T00:00:00Z",
        "2030-01-13T00:00:00Z",
    ]
    # Only one restricted: both must hold (every Friday, any day of month).
    assert fires("0 0 * * fri", "2030-01-01T00:00:00Z", 1) == ["2030-01-04T00:00:00Z"]


def test_time_zone_wall_clock() -> None:
    # 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer.
    assert fires("0 9 * * *", "2030-01-15T00:00:00Z", 1, "America/New_York") == ["2030-01-15T14:00:00Z"]
    assert fires("0 9 * * *", "2030-07-15T00:00:00Z", 1, "America/New_York") == ["2030-07-15T13:00:00Z"]
    # 05:30 in Kolkata is 00:00 UTC; "after" is strict, so the next one is the following day.
    assert fires("30 5 * * *", "2030-01-15T00:00:00Z", 1, "Asia/Kolkata") == ["2030-01-16T00:00:00Z"]


def test_dst_gap_is_skipped_and_overlap_fires_once() -> None:
    # Europe/Berlin springs forward 2030-03-31 02:00 -> 03:00: 02:30 does not exist that day.
    assert fires("30 2 * * *", "2030-03-30T12:00:00Z", 2, "Europe/Berlin") == [
        "2030-04-01T00:30:00Z",
        "2030-04-02T00:30:00Z",
    ]
    # It falls back 2030-10-27 03:00 -> 02:00: 02:30 happens twice and fires once (the first).
    assert fires("30 2 * * *", "2030-10-26T12:00:00Z", 2, "Europe/Berlin") == [
        "2030-10-27T00:30:00Z",
        "2030-10-28T01:30:00Z",
    ]
    # Every 30 minutes across the fall-back hour: strictly increasing instants, none repeated.
    seen = fires("*/30 * * * *", "2030-10-26T23:00:00Z", 8, "Europe/Berlin")
    assert seen == sorted(set(seen))


def test_previous_fire() -> None:
    assert previous_fire("*/5 * * * *", "UTC", t("2030-01-01T00:07:00Z")) == t("2030-01-01T00:05:00Z")
    assert previous_fire("*/5 * * * *", "UTC", t("2030-01-01T00:05:00Z")) == t("2030-01-01T00:05:00Z")
    assert previous_fire("0 0 1 1 *", "UTC", t("2030-06-01T00:00:00Z")) == t("2030-01-01T00:00:00Z")


def test_due_fires_follow_cronjob() -> None:
    minute = "* * * * *"
    deadline = dt.timedelta(seconds=300)
    last = t("2030-01-01T00:00:00Z")
    assert due_fires(minute, "UTC", last, t("2030-01-01T00:00:59Z"), deadline) == []
    assert due_fires(minute, "UTC", last, t("2030-01-01T00:01:00Z"), deadline) == [t("2030-01-01T00:01:00Z")]
    # Three missed fires: only the most recent is started.
    assert due_fires(minute, "UTC", last, t("2030-01-01T00:03:10Z"), deadline) == [t("2030-01-01T00:03:00Z")]
    # The most recent fire is older than the deadline: nothing, and it is reported as missed.
    hourly_last = t("2030-01-01T00:00:00Z")
    late = t("2030-01-01T01:06:00Z")
    assert due_fires("0 * * * *", "UTC", hourly_last, late, deadline) == []
    assert missed_fire("0 * * * *", "UTC", hourly_last, late, deadline) == t("2030-01-01T01:00:00Z")
    assert missed_fire("0 * * * *", "UTC", hourly_last, t("2030-01-01T01:04:00Z"), deadline) is None


def test_a_year_long_outage_is_one_fire_not_a_storm() -> None:
    due = due_fires(
        "* * * * *",
        "Europe/Berlin",
        t("2029-01-01T00:00:00Z"),
        t("2030-01-01T00:00:30Z"),
        dt.timedelta(seconds=300),
    )
    assert due == [t("2030-01-01T00:00:00Z")]
