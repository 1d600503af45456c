"""The HTTP producer: POSTs each item to a provider over one bounded aiohttp connection pool per shard.

One `ClientSession` per producer (a shard's run producer, or a workflow step's), its connector
limited to the producer's `concurrency`: that many kept-alive connections at most, never more. No
redirects are followed and no proxy settings from the environment are used.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

import aiohttp

from oxygen.execution.item_calls import (
    CREDITS_HEADER,
    DEFAULT_MAX_RESPONSE_BYTES,
    MESSAGE_LIMIT,
    REDACT_WINDOW_BYTES,
    ItemCall,
    PermanentError,
    ProducerResult,
    RetryableError,
    parse_credits,
    parse_json_output,
    parse_retry_after,
)
from oxygen.execution.redaction import Redactor

READ_CHUNK: Final = 64 * 1024


@dataclass
class HttpProducer:
    url: str
    timeout_seconds: float
    headers: dict[str, str] = field(default_factory=dict)
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    # The pool's size: the most requests (and connections) this producer has open at once.
    concurrency: int = 16

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("producer.http.url must be an absolute http(s) URL")
        # A port out of range fails here, at start, not as a retried connection error on every call.
        _ = parts.port
        # What it sends it never repeats: error text is cleaned of its own header values before
        # it is cut (the worker redacts outputs and messages again, with every secret it holds).
        self._redactor = Redactor(self.headers.values())
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use, inside the worker's event loop (a session belongs to one loop).
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout_seconds),
                trust_env=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def call(self, call: ItemCall) -> ProducerResult:
        body = json.dumps(call.payload(), separators=(",", ":")).encode("utf-8")
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Idempotency-Key": call.idempotency_key,
        }
        try:
            async with self._client().post(
                self.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                data = await self._read(response)
                return self._interpret(response.status, response.headers, data)
        except TimeoutError as exc:
            raise RetryableError(f"no reply within {self.timeout_seconds:g}s", "timeout") from exc
        except (OSError, aiohttp.ClientError) as exc:
            # Connection refused/reset, DNS, TLS: the provider may be back on the next attempt.
            raise RetryableError(f"connection failed: {exc.__class__.__name__}: {exc}", "connection") from exc

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """At most max_response_bytes + 1 bytes: enough to tell an oversized reply, never the rest."""
        chunks: list[bytes] = []
        total = 0
        while total <= self.max_response_bytes:
            chunk = await response.content.read(min(READ_CHUNK, self.max_response_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)

    def _interpret(self, status: int, headers: Mapping[str, str], data: bytes) -> ProducerResult:
        if 200 <= status < 300:
            return self._outputs(headers, data)
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
        raise PermanentError(f"unexpected HTTP {status}: {text}", "http_unexpected")

    def _outputs(self, headers: Mapping[str, str], data: bytes) -> ProducerResult:
        if len(data) > self.max_response_bytes:
            raise PermanentError(
                f"reply body is over {self.max_response_bytes} bytes; nothing was kept",
                "output_too_large",
            )
        outputs = parse_json_output(data, "reply body", self._redactor)
        cost_header = headers.get(CREDITS_HEADER)
        cost = parse_credits(cost_header) if cost_header is not None else None
        return ProducerResult(outputs=outputs, cost=cost)
