"""The operator's web app served in-process, on its own asyncio loop in a thread (for tests)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from oxygen.web.app import WebSettings, page_addresses, start_web


class WebThread:
    def __init__(self, api_client: Any, registry: CollectorRegistry | None = None) -> None:
        self.api_client = api_client
        self.registry = registry
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, name="web", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> WebThread:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            start_web("127.0.0.1", 0, self.api_client, self.registry, WebSettings(page_port=0)), self.loop
        )
        self.runner = future.result(timeout=30)
        # The run pages' listener (metrics listen apart, on runner.addresses).
        self.port = int(page_addresses(self.runner)[0][1])
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
