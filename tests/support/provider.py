"""A real HTTP provider on loopback for tests: scriptable replies and a call log.

    with Provider(fail_then_succeed(2)) as provider:
        ... point producer.http.url at provider.url ...
        provider.behaviour = echo()          # flip at runtime
        assert len(provider.calls_for("item-1")) == 3

A behaviour is `(item_id, attempt, body) -> Reply`; helpers below build the usual ones. Stateful
helpers (N failures, then success) count calls per item themselves, so they do not depend on the
`attempt` numbers the worker sends (those continue across rounds).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

SECRET_HEADER = re.compile(r"authorization|cookie|token|secret|password|api[-_]?key", re.IGNORECASE)
REDACTED = "<redacted>"


@dataclass(frozen=True)
class Reply:
    status: int = 200
    # JSON-serialised unless `raw` is given (raw wins: for malformed bodies).
    body: Any = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Seconds the provider waits before answering.
    delay: float = 0.0

    def payload(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return json.dumps(self.body).encode("utf-8")


Behaviour = Callable[[str, int, dict[str, Any]], Reply]


@dataclass(frozen=True)
class Call:
    item_id: str
    row_id: str | None
    attempt: int
    idempotency_key: str | None
    status: int
    at: float
    # Request headers, secret-looking values replaced by "<redacted>".
    headers: dict[str, str]
    body: dict[str, Any]


def inputs_of(body: Mapping[str, Any]) -> Any:
    item = body.get("item") or {}
    return item.get("inputs", {}) if isinstance(item, Mapping) else {}


def echo(extra: Mapping[str, Any] | None = None) -> Behaviour:
    """200 with the inputs (plus `extra`) as the outputs."""

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        outputs = inputs_of(body)
        if extra and isinstance(outputs, dict):
            outputs = {**outputs, **extra}
        return Reply(body=outputs)

    return behaviour


def with_latency(seconds: float, inner: Behaviour | None = None) -> Behaviour:
    base = inner or echo()

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        reply = base(item_id, attempt, body)
        return Reply(reply.status, reply.body, reply.raw, reply.headers, reply.delay + seconds)

    return behaviour


def with_credits(amount: str | Decimal, inner: Behaviour | None = None) -> Behaviour:
    """Successful replies carry `X-Credits-Used: amount`."""
    base = inner or echo()

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        reply = base(item_id, attempt, body)
        if not 200 <= reply.status < 300:
            return reply
        headers = {**reply.headers, "X-Credits-Used": str(amount)}
        return Reply(reply.status, reply.body, reply.raw, headers, reply.delay)

    return behaviour


def always(
    status: int = 503, message: str = "service unavailable", headers: Mapping[str, str] | None = None
) -> Behaviour:
    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        return Reply(status=status, body={"error": message}, headers=dict(headers or {}))

    return behaviour


def bad_request(message: str = "invalid input") -> Behaviour:
    return always(400, message)


def malformed(status: int = 200) -> Behaviour:
    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        return Reply(status=status, raw=b"<html>upstream exploded</html>")

    return behaviour


def fail_then_succeed(
    failures: int, status: int = 503, then: Behaviour | None = None, headers: Mapping[str, str] | None = None
) -> Behaviour:
    """The first `failures` calls of each item get `status`, later ones `then` (echo by default)."""
    after = then or echo()
    failing = always(status, f"failure injected by the test provider ({status})", headers)
    seen: defaultdict[str, int] = defaultdict(int)
    lock = threading.Lock()

    def behaviour(item_id: str, attempt: int, body: dict[str, Any]) -> Reply:
        with lock:
            seen[item_id] += 1
            count = seen[item_id]
        return failing(item_id, attempt, body) if count <= failures else after(item_id, attempt, body)

    return behaviour


def rate_limited(retry_after: float, failures: int = 1, then: Behaviour | None = None) -> Behaviour:
    """429 with `Retry-After: retry_after` for the first `failures` calls of each item."""
    return fail_then_succeed(failures, 429, then, {"Retry-After": f"{retry_after:g}"})


class Provider:
    """ThreadingHTTPServer on 127.0.0.1 (a free port); `behaviour` can be swapped at any time."""

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        host: str = "127.0.0.1",
        required_headers: Mapping[str, str] | None = None,
    ) -> None:
        self._behaviour = behaviour or echo()
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._closing = threading.Event()
        # Checked on every request (401 on mismatch) so tests verify secret headers without logging them.
        self.required_headers = dict(required_headers or {})
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/items"

    @property
    def behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviour

    @behaviour.setter
    def behaviour(self, value: Behaviour) -> None:
        with self._lock:
            self._behaviour = value

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Provider:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="test-provider",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Provider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the call log ----------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def calls_for(self, item_id: str) -> list[Call]:
        return [c for c in self.calls if c.item_id == item_id]

    def successful_calls(self) -> list[Call]:
        return [c for c in self.calls if 200 <= c.status < 300]

    def successful_item_ids(self) -> set[str]:
        return {c.item_id for c in self.successful_calls()}

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()

    def wait_for_calls(self, count: int, timeout: float = 10.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.calls
            if len(calls) >= count:
                return calls
            time.sleep(0.01)
        raise TimeoutError(f"provider saw {len(self.calls)} calls, expected {count} within {timeout}s")

    def __iter__(self) -> Iterator[Call]:
        return iter(self.calls)

    # -- serving ---------------------------------------------------------------------------------

    def _answer(self, headers: dict[str, str], raw: bytes) -> tuple[Reply, dict[str, Any]]:
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Reply(400, {"error": "request body is not JSON"}), {}
        if not isinstance(body, dict):
            return Reply(400, {"error": "request body is not a JSON object"}), {}
        lowered = {k.lower(): v for k, v in headers.items()}
        for name, expected in self.required_headers.items():
            if lowered.get(name.lower()) != expected:
                return Reply(401, {"error": f"missing or wrong {name} header"}), body
        item = body.get("item") or {}
        return self.behaviour(str(item.get("id", "")), int(body.get("attempt", 0)), body), body

    def _record(self, headers: dict[str, str], body: dict[str, Any], status: int, at: float) -> None:
        item = body.get("item") or {}
        visible = {k: (REDACTED if SECRET_HEADER.search(k) else v) for k, v in headers.items()}
        call = Call(
            item_id=str(item.get("id", "")),
            row_id=item.get("rowId"),
            attempt=int(body.get("attempt", 0) or 0),
            idempotency_key=headers.get("Idempotency-Key"),
            status=status,
            at=at,
            headers=visible,
            body=body,
        )
        with self._lock:
            self._calls.append(call)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                at = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                headers = dict(self.headers.items())
                reply, body = provider._answer(headers, raw)
                provider._record(headers, body, reply.status, at)
                if reply.delay and provider._closing.wait(reply.delay):
                    return
                payload = reply.payload()
                try:
                    self.send_response(reply.status)
                    content_type = "text/html" if reply.raw is not None else "application/json"
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up (timeout, abandoned call): nothing to answer.
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
