"""A fast HTTP provider on loopback (aiohttp): a fixed latency, many connections, a call log.

`Provider` (tests/support/provider.py) answers on a thread per connection, which is fine for a few
dozen calls in flight; this one serves a thousand at once on one event loop, for throughput tests
and the benchmark. It records each call's start time and the most calls it ever had in flight.

    with LoopbackProvider(latency=0.1) as provider:
        ... point producer.http.url at provider.url ...
        assert provider.peak_in_flight <= 100

`python -m tests.support.loopback --latency 0.1` serves in the foreground (for bench/throughput.py:
the provider in its own process, so it shares no interpreter with what it measures); it prints
`port <n>`; GET /stats answers {"calls", "peak", "first", "last"}, POST /reset zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from types import TracebackType
from typing import Any

from aiohttp import web

from tests.support.provider import Behaviour, Call, echo


class LoopbackProvider:
    def __init__(
        self, latency: float = 0.1, behaviour: Behaviour | None = None, *, record: bool = True
    ) -> None:
        self.latency = latency
        self.behaviour = behaviour or echo()
        self._record = record
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self.count = 0
        # Calls that arrived (counted at their start, before any latency or hold).
        self.started = 0
        self._gate: asyncio.Event | None = None
        # Wall-clock times of the first call's arrival and the last call's answer.
        self.first_at: float | None = None
        self.last_at: float | None = None
        # Calls waiting at a closed gate right now.
        self.held = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/items"

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/items", self._handle)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/reset", self._reset)
        return app

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"calls": self.count, "peak": self.peak_in_flight, "first": self.first_at, "last": self.last_at}
        )

    async def _reset(self, request: web.Request) -> web.Response:
        self.count, self.peak_in_flight, self.first_at, self.last_at = 0, 0, None, None
        return web.json_response({})

    async def _handle(self, request: web.Request) -> web.Response:
        at = time.time()
        self.first_at = self.first_at or at
        self.started += 1
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            body: dict[str, Any] = await request.json()
            item = body.get("item") or {}
            reply = self.behaviour(str(item.get("id", "")), int(body.get("attempt", 0)), body)
            gate = self._gate
            if gate is not None:
                self.held += 1
                try:
                    await gate.wait()
                finally:
                    self.held -= 1
            await asyncio.sleep(self.latency + reply.delay)
        finally:
            self.in_flight -= 1
        self.count += 1
        self.last_at = time.time()
        if self._record:
            call = Call(
                item_id=str(item.get("id", "")),
                row_id=item.get("rowId"),
                attempt=int(body.get("attempt", 0) or 0),
                idempotency_key=request.headers.get("Idempotency-Key"),
                status=reply.status,
                at=at,
                headers=dict(request.headers),
                body=body,
            )
            with self._lock:
                self._calls.append(call)
        return web.Response(
            body=reply.payload(),
            status=reply.status,
            headers=dict(reply.headers),
            content_type="application/json",
        )

    def hold(self) -> None:
        """From now on, calls wait (unanswered) until `release`: a caller's every slot fills up."""
        self._in_loop(self._close_gate)

    def release(self) -> None:
        self._in_loop(self._open_gate)

    def _close_gate(self) -> None:
        self._gate = asyncio.Event()

    def _open_gate(self) -> None:
        if self._gate is not None:
            self._gate.set()
        self._gate = None

    def _in_loop(self, action: Any) -> None:
        assert self._loop is not None

        async def run() -> None:
            action()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)

    async def serve(self, port: int = 0) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    def start(self) -> LoopbackProvider:
        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.serve())
            self._ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, name="loopback-provider", daemon=True)
        self._thread.start()
        self._ready.wait(10)
        return self

    def close(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> LoopbackProvider:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def _serve_forever(latency: float) -> None:
    provider = LoopbackProvider(latency, record=False)
    await provider.serve()
    print(f"port {provider.port}", flush=True)
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.1)
    asyncio.run(_serve_forever(parser.parse_args().latency))


if __name__ == "__main__":
    main()
