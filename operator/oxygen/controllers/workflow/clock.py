"""The operator's clock for schedules: the system clock, or (tests only) a clock read from a file.

`OXYGEN_FAKE_CLOCK_FILE=/path` makes every reading come from that file, which holds one ISO 8601
timestamp (`2030-01-01T00:00:30Z`; no zone means UTC); a test advances time by rewriting it. It is
meant for tests that drive schedules without waiting minutes, never for production: a stale or
missing file stops time, so nothing is scheduled.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Protocol

from oxygen.timefmt import rfc3339

FAKE_CLOCK_ENV = "OXYGEN_FAKE_CLOCK_FILE"

log = logging.getLogger("oxygen.workflow.clock")


class Clock(Protocol):
    def now(self) -> dt.datetime:
        """The current time, timezone-aware (UTC)."""
        ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FileClock:
    """Reads the time from a file on every call; keeps the last good reading if the file is bad."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last: dt.datetime | None = None

    def now(self) -> dt.datetime:
        try:
            self._last = parse_time(self.path.read_text().strip())
        except (OSError, ValueError) as err:
            if self._last is None:
                raise RuntimeError(f"fake clock {self.path}: {err}") from err
            log.warning("fake clock %s unreadable (%s); keeping %s", self.path, err, self._last.isoformat())
        return self._last


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 / RFC 3339 timestamp as an aware UTC datetime (naive means UTC)."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 in UTC, second precision, as Kubernetes writes timestamps."""
    return rfc3339(value)


def clock_from_env() -> Clock:
    path = os.environ.get(FAKE_CLOCK_ENV)
    if path:
        log.warning("using the fake clock from %s (%s): for tests only", path, FAKE_CLOCK_ENV)
        return FileClock(Path(path))
    return SystemClock()
