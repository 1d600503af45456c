"""A small cron parser with time zones, and the CronJob rule for which fires are due. Pure.

Five fields, `minute hour day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a
list `a,b`, or a step `*/n`, `a-b/n`, `a/n`; months and weekdays also by name (`jan`, `mon`);
weekday 0 and 7 are both Sunday. Macros: @yearly (@annually), @monthly, @weekly, @daily
(@midnight), @hourly. As in Vixie cron and Kubernetes, when both day-of-month and day-of-week are
restricted a day matches if either does.

Times are wall-clock times in the schedule's time zone. Across DST changes: a wall-clock time that
does not exist that day (spring forward) is skipped; one that happens twice (fall back) fires once,
at its first occurrence.

Why not a library: cronsim (small, typed, no dependencies) follows Debian cron across DST (a fire
in the skipped hour runs right after the jump) and has no @macros; croniter (now under pallets-eco)
pulls in python-dateutil. Either would change what a schedule does on DST days and the error
messages users see on the Workflow; this module is ~200 lines with its own tests.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1
    )
}
WEEKDAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
# Wall-clock hours further than this from the reference time are skipped without a zone lookup
# (UTC offsets change by at most a few hours at once).
_SLACK = dt.timedelta(hours=3)
# How far ahead next_fire looks before deciding a schedule never fires (e.g. `0 0 30 2 *`).
SEARCH_YEARS = 8


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


@dataclass(frozen=True)
class Cron:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays


def _field(text: str, low: int, high: int, names: dict[str, int] | None, what: str) -> frozenset[int]:
    def number(token: str) -> int:
        key = token.lower()
        if names is not None and key in names:
            return names[key]
        if not token.isdigit():
            raise CronError(f"{what}: {token!r} is not a number")
        value = int(token)
        if not low <= value <= high:
            raise CronError(f"{what}: {value} is outside {low}-{high}")
        return value

    values: set[int] = set()
    for part in text.split(","):
        if not part:
            raise CronError(f"{what}: empty list element in {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{what}: step {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = number(first), number(last)
            if start > end:
                raise CronError(f"{what}: range {base!r} runs backwards")
        else:
            start = number(base)
            end = high if step_text else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


@lru_cache(maxsize=256)
def parse(expression: str) -> Cron:
    text = " ".join(expression.split())
    text = MACROS.get(text.lower(), text)
    if text.startswith("@"):
        raise CronError(f"unknown macro {text!r} (known: {', '.join(sorted(MACROS))})")
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; cron needs 5 (minute hour day month weekday)"
        )
    minute, hour, day, month, weekday = fields
    weekdays = _field(weekday, 0, 7, WEEKDAYS, "day of week")
    return Cron(
        minutes=_field(minute, 0, 59, None, "minute"),
        hours=_field(hour, 0, 23, None, "hour"),
        days=_field(day, 1, 31, None, "day of month"),
        months=_field(month, 1, 12, MONTHS, "month"),
        weekdays=frozenset(d % 7 for d in weekdays),
        days_restricted=not day.startswith("*"),
        weekdays_restricted=not weekday.startswith("*"),
    )


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise CronError(f"unknown time zone {name!r}") from err


def validate(cron: str, tz: str) -> None:
    """Raise CronError when the schedule cannot be used (including one that never fires)."""
    next_fire(cron, tz, dt.datetime(2000, 1, 1, tzinfo=dt.UTC))


def _aware(wall: dt.datetime, tzinfo: ZoneInfo) -> dt.datetime | None:
    """The instant of a wall-clock time, or None when it does not exist (a DST gap)."""
    local = wall.replace(tzinfo=tzinfo, fold=0)
    instant = local.astimezone(dt.UTC)
    if instant.astimezone(tzinfo).replace(tzinfo=None) != wall:
        return None
    return instant


def _walk(spec: Cron, tzinfo: ZoneInfo, near: dt.datetime, backwards: bool) -> Iterator[dt.datetime]:
    """Fire instants in wall-clock order, from around the wall-clock time `near` onwards (or backwards)."""
    step = dt.timedelta(days=-1 if backwards else 1)
    minutes = sorted(spec.minutes, reverse=backwards)
    hours = sorted(spec.hours, reverse=backwards)
    day = near.date() + step * -1
    for _ in range(366 * SEARCH_YEARS):
        if spec.matches_day(day):
            for hour in hours:
                hour_wall = dt.datetime(day.year, day.month, day.day, hour)
                if backwards and hour_wall > near + _SLACK:
                    continue
                if not backwards and hour_wall + dt.timedelta(hours=1) < near - _SLACK:
                    continue
                for minute in minutes:
                    instant = _aware(hour_wall.replace(minute=minute), tzinfo)
                    if instant is not None:
                        yield instant
        day += step


def next_fire(cron: str, tz: str, after: dt.datetime) -> dt.datetime:
    """The first fire strictly after `after` (an aware datetime), in UTC."""
    spec, tzinfo = parse(cron), zone(tz)
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    near = after.astimezone(tzinfo).replace(tzinfo=None)
    for instant in _walk(spec, tzinfo, near, backwards=False):
        if instant > after:
            return instant
    raise CronError(f"{cron!r} never fires (nothing within {SEARCH_YEARS} years)")


def previous_fire(cron: str, tz: str, at_or_before: dt.datetime) -> dt.datetime | None:
    """The latest fire at or before `at_or_before`, in UTC (None if none within the search window)."""
    spec, tzinfo = parse(cron), zone(tz)
    if at_or_before.tzinfo is None:
        raise ValueError("at_or_before must be timezone-aware")
    near = at_or_before.astimezone(tzinfo).replace(tzinfo=None)
    for instant in _walk(spec, tzinfo, near, backwards=True):
        if instant <= at_or_before:
            return instant
    return None


def due_fires(
    cron: str, tz: str, last: dt.datetime, now: dt.datetime, deadline: dt.timedelta
) -> list[dt.datetime]:
    """The fires to start now, given the last one handled: CronJob's rule, bounded.

    Of the fires in (last, now], only the most recent is started, and only if it is at most
    `deadline` old (startingDeadlineSeconds); older missed fires are dropped, never replayed. The
    most recent fire is found by searching backwards from `now`, so a long outage costs no more
    work than a short one. Returns [] or [fire].
    """
    latest = previous_fire(cron, tz, now)
    if latest is None or latest <= last or now - latest > deadline:
        return []
    return [latest]


def missed_fire(
    cron: str, tz: str, last: dt.datetime, now: dt.datetime, deadline: dt.timedelta
) -> dt.datetime | None:
    """The most recent fire in (last, now] when it was dropped for being older than `deadline`."""
    latest = previous_fire(cron, tz, now)
    if latest is None or latest <= last or now - latest <= deadline:
        return None
    return latest
