"""What every producer shares: one item's call, its result, the error vocabulary, reply parsing.

Error classes are a small fixed vocabulary (`ERROR_CLASSES`) because they become Prometheus label
values: never put ids, urls or messages in them.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol

from oxygen.api.common import CREDITS_PATTERN, JsonObject
from oxygen.api.nesting import MAX_INPUT_DEPTH, too_deep
from oxygen.execution.redaction import Redactor

CREDITS_HEADER: Final = "X-Credits-Used"
MESSAGE_LIMIT: Final = 500
# Read no more than this from a provider: the per-item output cap is enforced later on the
# parsed JSON, this only keeps a misbehaving provider from exhausting the pod's memory.
DEFAULT_MAX_RESPONSE_BYTES: Final = 8 * 1024 * 1024
# Error text is redacted over this much of a reply before it is cut to MESSAGE_LIMIT, so a secret
# straddling the cut is still found whole.
REDACT_WINDOW_BYTES: Final = 64 * 1024

ERROR_CLASSES: Final = frozenset(
    {
        "http_429",
        "http_5xx",
        "http_4xx",
        "http_unexpected",
        "timeout",
        "connection",
        "malformed_response",
        "output_too_large",
        "command_failed",
        "command_tempfail",
        "producer_error",
        "shard_too_large",
    }
)


class ProducerError(Exception):
    def __init__(self, message: str, error_class: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class


class RetryableError(ProducerError):
    def __init__(self, message: str, error_class: str, retry_after: float | None = None) -> None:
        super().__init__(message, error_class)
        self.retry_after = retry_after


class PermanentError(ProducerError):
    pass


class CallAbandoned(ProducerError):
    """The worker is stopping and the producer gave the call up: no result, no attempt counted."""

    def __init__(self, message: str = "call abandoned: the worker is stopping") -> None:
        super().__init__(message, "abandoned")


@dataclass(frozen=True)
class ItemCall:
    """One attempt at one item, as a producer sees it."""

    run_name: str
    run_uid: str
    item_id: str
    row_id: str | None
    inputs: JsonObject
    attempt: int

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_uid}/{self.item_id}"

    def payload(self) -> dict[str, Any]:
        return {
            "run": self.run_name,
            "item": {"id": self.item_id, "rowId": self.row_id, "inputs": self.inputs},
            "attempt": self.attempt,
        }


@dataclass(frozen=True)
class ProducerResult:
    outputs: Any
    # None: the provider reported nothing, the producer's costPerItem applies.
    cost: Decimal | None = None


class ItemProducer(Protocol):
    """One item's call; many may be in flight at once on the worker's event loop."""

    async def call(self, call: ItemCall) -> ProducerResult: ...

    async def close(self) -> None:
        """Release what the producer holds (an HTTP connection pool)."""


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds == float("inf"):
        return None
    return max(0.0, seconds)


def parse_credits(value: str) -> Decimal:
    """An exact, non-negative credit amount; anything else is the provider's bug, not ours."""
    text = value.strip()
    if not re.match(CREDITS_PATTERN, text):
        raise PermanentError(
            f"provider sent an invalid {CREDITS_HEADER} header {truncate(text, 40)!r}: "
            "expected a non-negative decimal such as 0.25",
            "malformed_response",
        )
    try:
        return Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already excludes this
        raise PermanentError(f"invalid {CREDITS_HEADER} header", "malformed_response") from exc


def parse_json_output(body: bytes, source: str, redactor: Redactor | None = None) -> Any:
    """The reply's JSON; one nested deeper than item inputs may be is refused here, because the
    worker walks outputs recursively (size check, redaction, status) and a later step takes them as
    its inputs: a reply the decoder cannot even nest (RecursionError) is refused the same way."""
    try:
        value = json.loads(body.decode("utf-8"))
    except RecursionError as exc:
        raise _too_deep(source) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        snippet = (redactor or Redactor()).clip(
            body[:REDACT_WINDOW_BYTES].decode("utf-8", "replace"), MESSAGE_LIMIT
        )
        raise PermanentError(
            f"{source} is not JSON ({exc.__class__.__name__}): {snippet or '<empty>'}",
            "malformed_response",
        ) from exc
    if too_deep(value) is not None:
        raise _too_deep(source)
    return value


def _too_deep(source: str) -> PermanentError:
    return PermanentError(f"{source} nests deeper than {MAX_INPUT_DEPTH} levels", "malformed_response")
