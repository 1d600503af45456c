"""Time as the API server writes it: RFC 3339 in UTC (`2024-05-01T12:00:00Z`). The one place that formats
and parses timestamps, so status, events, metrics and the CLI agree on one spelling."""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


def rfc3339(value: dt.datetime | float | None = None, *, millis: bool = False) -> str:
    """A datetime (naive means UTC) or epoch seconds as `…T12:00:00Z` (`…T12:00:00.123Z` with millis);
    None means now."""
    if value is None:
        value = now()
    elif isinstance(value, int | float):
        value = dt.datetime.fromtimestamp(value, dt.UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = value.astimezone(dt.UTC).isoformat(timespec="milliseconds" if millis else "seconds")
    return text.replace("+00:00", "Z")


def parse_rfc3339(text: str | None) -> dt.datetime | None:
    """`2024-05-01T12:00:00Z` (fractions and offsets allowed) as an aware datetime; None if absent or bad."""
    if not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def epoch(text: str | None) -> float | None:
    """An RFC 3339 timestamp as seconds since the epoch; None if absent or bad."""
    parsed = parse_rfc3339(text)
    return None if parsed is None else parsed.timestamp()
