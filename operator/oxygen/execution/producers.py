"""Producers: what one item's call does (builtin echo, an HTTP provider, a local command).

A producer returns the item's outputs and, optionally, the cost the provider reported, or raises
`RetryableError` / `PermanentError`. Calls are coroutines: a worker keeps up to the producer's
`concurrency` of them in flight on one event loop.

HTTP contract (documented for provider authors):
- request: `POST <url>` with `{"run": ..., "item": {"id", "rowId", "inputs"}, "attempt": n}`,
  `Content-Type: application/json` and `Idempotency-Key: <runUid>/<itemId>` (the same for every
  attempt of an item within a run, so at-least-once delivery is safe for the provider to dedupe);
- up to `concurrency` requests of one shard arrive at once, over at most that many kept-alive
  connections;
- headers from the Secret named in `headersFrom` arrive as env vars `OXYGEN_HEADER_<Header-Name>`;
  their values never reach status: where a reply echoes them they read `[redacted]`;
- a 2xx reply's body must be JSON; any JSON value is accepted as the outputs (an object is the
  convention). `X-Credits-Used: <decimal>` is that item's cost;
- 408, 429 and 5xx are retried (honouring `Retry-After`, which holds back the whole shard), as are
  timeouts and connection errors; every other status fails the item at once with the body's first
  ~500 characters as the message.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import Final

from oxygen.api.run import Producer, Retry
from oxygen.execution.command_producer import CommandProducer
from oxygen.execution.headers import (
    HEADER_ENV_PREFIX,
    headers_from_env,
    run_env,
    secret_values,
    step_env,
    step_header_prefix,
    waterfall_headers,
)
from oxygen.execution.http_producer import HttpProducer
from oxygen.execution.item_calls import (
    CREDITS_HEADER,
    ERROR_CLASSES,
    CallAbandoned,
    ItemCall,
    ItemProducer,
    PermanentError,
    ProducerError,
    ProducerResult,
    RetryableError,
    parse_retry_after,
)
from oxygen.execution.waterfall import WaterfallProducer, WaterfallProvider

# Items of one shard in flight at once when the spec says nothing: HTTP providers are built to
# serve many callers; a command is a process per item, so it stays one at a time unless asked.
DEFAULT_HTTP_CONCURRENCY: Final = 16
DEFAULT_CONCURRENCY: Final = 1


def concurrency_of(spec: Producer) -> int:
    """How many items of a shard with this producer may be in flight at once."""
    if spec.concurrency is not None:
        return spec.concurrency
    return DEFAULT_HTTP_CONCURRENCY if spec.http is not None or spec.waterfall else DEFAULT_CONCURRENCY


class EchoProducer:
    """`builtin: echo`: outputs are the inputs; for smoke tests and demos, no network."""

    async def call(self, call: ItemCall) -> ProducerResult:
        return ProducerResult(outputs=call.inputs)

    async def close(self) -> None:
        return None


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
        return HttpProducer(
            url=spec.http.url,
            timeout_seconds=spec.http.timeout_seconds,
            headers=headers_from_env(source),
            concurrency=concurrency_of(spec),
        )
    if spec.command:
        return CommandProducer(argv=list(spec.command), cancel=cancel, env=dict(source))
    if spec.waterfall:
        return WaterfallProducer(
            [
                WaterfallProvider(
                    step.name,
                    HttpProducer(
                        url=step.http.url,
                        timeout_seconds=step.http.timeout_seconds,
                        headers=waterfall_headers(source, k),
                        concurrency=concurrency_of(spec),
                    ),
                    step.cost_per_item,
                    step.retry or Retry(),
                )
                for k, step in enumerate(spec.waterfall)
                if step.http is not None  # resolved at planning: every step is an http call
            ]
        )
    raise ValueError("producer needs exactly one of http, builtin, command or waterfall")


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
    "concurrency_of",
    "headers_from_env",
    "make_producer",
    "parse_retry_after",
    "run_env",
    "secret_values",
    "step_env",
    "step_header_prefix",
]
