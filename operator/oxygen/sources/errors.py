"""What stops an items source: a reason for the run's Failed condition, and the source's own message."""

from __future__ import annotations

# Condition reasons (the run's `Failed` condition and its Warning Event).
NOT_FOUND = "ItemsSourceNotFound"  # the file (404/410) or the Secret's key is not there
UNREACHABLE = "ItemsSourceUnreachable"  # no connection: the database or the web server is away
QUERY_FAILED = "ItemsQueryFailed"  # the database refused or aborted the query (bad SQL, missing table…)
MALFORMED = "ItemsSourceMalformed"  # a line or a row that is not an item
HTTP_ERROR = "ItemsSourceHTTPError"  # any other non-2xx reply
TOO_LARGE = "ItemStoreRequired"  # more items than a run without an item store may hold (plan.py)


class SourceError(Exception):
    """The run cannot read its items: `reason` for the condition, `message` names the source and quotes
    what the database or the server said."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def one_line(text: str, limit: int = 900) -> str:
    """A driver's or server's message fit for a condition: its lines joined, bounded."""
    joined = " ".join(part.strip() for part in text.strip().splitlines() if part.strip())
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"
