"""Producers: what one item's call does (builtin echo, an HTTP provider, a local command).

A producer returns the item's outputs and, optionally, the cost the provider reported, or raises
`RetryableError` / `PermanentError`. Error classes are a small fixed vocabulary (`ERROR_CLASSES`)
because they become Prometheus label values: never put ids, urls or messages in them.

HTTP contract (documented for provider authors):
- request: `POST <url>` with `{"run": ..., "item": {"id", "rowId", "inputs"}, "attempt": n}`,
  `Content-Type: application/json` and `Idempotency-Key: <runUid>/<itemId>` (the same for every
  attempt of an item within a run, so at-least-once delivery is safe for the provider to dedupe);
- headers from the Secret named in `headersFrom` arrive as env vars `OXYGEN_HEADER_<Header-Name>`;
  their values never reach status: where a reply echoes them they read `[redacted]`;
- a 2xx reply's body must be JSON; any JSON value is accepted as the outputs (an object is the
  convention). `X-Credits-Used: <decimal>` is that item's cost;
- 408, 429 and 5xx are retried (honouring `Retry-After`), as are timeouts and connection errors;
  every other status fails the item at once with the body's first ~500 characters as the message.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from oxygen.api.common import CREDITS_PATTERN, JsonObject
from oxygen.api.run import Producer
from oxygen.execution.headers import (
    HEADER_ENV_PREFIX,
    headers_from_env,
    run_env,
    secret_values,
    step_env,
    step_header_prefix,
)
from oxygen.execution.redaction import Redactor

CREDITS_HEADER: Final = "X-Credits-Used"
MESSAGE_LIMIT: Final = 500
EX_TEMPFAIL: Final = 75
DEFAULT_COMMAND_TIMEOUT: Final = 300.0
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
    def call(self, call: ItemCall) -> ProducerResult: ...


def truncate(text: str, limit: int = MESSAGE_LIMIT) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EchoProducer:
    """`builtin: echo`: outputs are the inputs; for smoke tests and demos, no network."""

    def call(self, call: ItemCall) -> ProducerResult:
        return ProducerResult(outputs=call.inputs)


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
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        snippet = (redactor or Redactor()).clip(
            body[:REDACT_WINDOW_BYTES].decode("utf-8", "replace"), MESSAGE_LIMIT
        )
        raise PermanentError(
            f"{source} is not JSON ({exc.__class__.__name__}): {snippet or '<empty>'}",
            "malformed_response",
        ) from exc


@dataclass
class HttpProducer:
    """POSTs each item to a provider (stdlib http.client: no redirects followed, no proxies)."""

    url: str
    timeout_seconds: float
    headers: dict[str, str] = field(default_factory=dict)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("producer.http.url must be an absolute http(s) URL")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        # What it sends it never repeats: error text is cleaned of its own header values before
        # it is cut (the worker redacts outputs and messages again, with every secret it holds).
        self._redactor = Redactor(self.headers.values())

    def call(self, call: ItemCall) -> ProducerResult:
        body = json.dumps(call.payload(), separators=(",", ":")).encode("utf-8")
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": call.idempotency_key,
        }
        status, reply_headers, data = self._post(body, headers)
        return self._interpret(status, reply_headers, data)

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout_seconds)
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_seconds)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = self._connection()
        try:
            conn.request("POST", self._path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(self.max_response_bytes + 1)
            return response.status, response.headers, data
        except TimeoutError as exc:
            raise RetryableError(f"no reply within {self.timeout_seconds:g}s", "timeout") from exc
        except (OSError, http.client.HTTPException) as exc:
            # Connection refused/reset, DNS, TLS: the provider may be back on the next attempt.
            raise RetryableError(f"connection failed: {exc.__class__.__name__}: {exc}", "connection") from exc
        finally:
            conn.close()

    def _interpret(self, status: int, headers: http.client.HTTPMessage, data: bytes) -> ProducerResult:
        retry_after = parse_retry_after(headers.get("Retry-After"))
        text = self._redactor.clip(data[:REDACT_WINDOW_BYTES].decode("utf-8", "replace"), MESSAGE_LIMIT)
        if status == 429:
            raise RetryableError(f"HTTP 429 (rate limited): {text}", "http_429", retry_after)
        if status >= 500:
            raise RetryableError(f"HTTP {status}: {text}", "http_5xx", retry_after)
        if status == 408:
            raise RetryableError(f"HTTP 408: {text}", "timeout", retry_after)
        if 400 <= status < 500:
            raise PermanentError(f"HTTP {status}: {text}", "http_4xx")
        if not 200 <= status < 300:
            raise PermanentError(f"unexpected HTTP {status}: {text}", "http_unexpected")
        if len(data) > self.max_response_bytes:
            raise PermanentError(
                f"reply body is over {self.max_response_bytes} bytes; nothing was kept",
                "output_too_large",
            )
        outputs = parse_json_output(data, "reply body", self._redactor)
        cost_header = headers.get(CREDITS_HEADER)
        cost = parse_credits(cost_header) if cost_header is not None else None
        return ProducerResult(outputs=outputs, cost=cost)


@dataclass
class CommandProducer:
    """Runs argv per item: the call JSON on stdin, the outputs JSON on stdout.

    Exit 75 (EX_TEMPFAIL) asks for a retry; any other non-zero exit fails the item with the tail
    of stderr. `cancel` lets the worker end the process group when it abandons a call on SIGTERM.
    `env` is the process's whole environment (None: the worker's own); `make_producer` passes one
    without other steps' header variables.
    """

    argv: list[str]
    timeout_seconds: float = DEFAULT_COMMAND_TIMEOUT
    cancel: threading.Event | None = None
    poll_seconds: float = 0.1
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    env: Mapping[str, str] | None = None

    def call(self, call: ItemCall) -> ProducerResult:
        stdin = json.dumps(call.payload(), separators=(",", ":")).encode("utf-8")
        try:
            # Own session: on timeout or cancel the whole tree goes, not just the direct child.
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=None if self.env is None else dict(self.env),
            )
        except OSError as exc:
            raise PermanentError(
                f"cannot start {self.argv[0]!r}: {exc.strerror or exc}", "command_failed"
            ) from exc
        stdout, stderr = self._communicate(proc, stdin)
        return self._interpret(proc.returncode, stdout, stderr)

    def _communicate(self, proc: subprocess.Popen[bytes], stdin: bytes) -> tuple[bytes, bytes]:
        deadline = time.monotonic() + self.timeout_seconds
        data: bytes | None = stdin
        while True:
            try:
                return proc.communicate(data, timeout=min(self.poll_seconds, self.timeout_seconds))
            except subprocess.TimeoutExpired:
                # communicate() refuses input once started; it keeps what it already read.
                data = None
            if self.cancel is not None and self.cancel.is_set():
                self._kill(proc)
                raise CallAbandoned()
            if time.monotonic() >= deadline:
                self._kill(proc)
                raise RetryableError(f"command ran over {self.timeout_seconds:g}s", "timeout")

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.communicate()

    def _interpret(self, code: int, stdout: bytes, stderr: bytes) -> ProducerResult:
        redactor = Redactor(secret_values(os.environ if self.env is None else self.env))
        tail = stderr[-REDACT_WINDOW_BYTES:].decode("utf-8", "replace")
        tail = truncate(redactor.text(tail)[-MESSAGE_LIMIT:])
        if code == EX_TEMPFAIL:
            raise RetryableError(f"command asked for a retry (exit 75): {tail}", "command_tempfail")
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            raise PermanentError(f"command failed ({how}): {tail or '<no stderr>'}", "command_failed")
        if len(stdout) > self.max_response_bytes:
            raise PermanentError(
                f"command wrote over {self.max_response_bytes} bytes to stdout", "output_too_large"
            )
        return ProducerResult(outputs=parse_json_output(stdout, "command stdout", redactor))


def make_producer(
    spec: Producer,
    *,
    env: Mapping[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> ItemProducer:
    """The producer a shard's spec names; header secrets come from `env` (default os.environ).

    `env` is already this producer's own (`run_env` or `step_env`): a command gets exactly it as
    its process environment.
    """
    source = os.environ if env is None else env
    if spec.builtin == "echo":
        return EchoProducer()
    if spec.http is not None:
        headers = headers_from_env(source)
        return HttpProducer(url=spec.http.url, timeout_seconds=spec.http.timeout_seconds, headers=headers)
    if spec.command:
        return CommandProducer(argv=list(spec.command), cancel=cancel, env=dict(source))
    raise ValueError("producer needs exactly one of http, builtin or command")


__all__ = [
    "CREDITS_HEADER",
    "ERROR_CLASSES",
    "HEADER_ENV_PREFIX",
    "CallAbandoned",
    "CommandProducer",
    "EchoProducer",
    "HttpProducer",
    "ItemCall",
    "ItemProducer",
    "PermanentError",
    "ProducerError",
    "ProducerResult",
    "RetryableError",
    "headers_from_env",
    "make_producer",
    "parse_retry_after",
    "run_env",
    "secret_values",
    "step_env",
    "step_header_prefix",
]
