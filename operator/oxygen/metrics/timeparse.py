"""RFC 3339 timestamps (as the API server writes them) to epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime


def epoch(stamp: str | None) -> float | None:
    """`2024-05-01T12:00:00Z` (fractions allowed) to seconds since the epoch; None if absent or bad."""
    if not stamp:
        return None
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
