"""The Run controller's work queue (the controller-runtime model), in the operator's event loop.

Events of a Run, its RunShards and Jobs add the Run's key; a fixed set of workers drains the queue.
- A key is queued at most once however many events arrive (wake-ups coalesce), and one worker at a
  time holds it: a key added while it is processed is queued again when that pass ends.
- Per key, passes start at least `spacing` seconds apart: a burst of events (a pass's own writes
  echoing back) becomes one more pass, not one each.
- `add_after` is the requeue-after of a pass that must look again (a status write held back by its
  rate limit, a replacement Job due, a backoff); only the earliest timer of a key is kept.
- A key that is neither queued nor timed costs nothing: finished Runs have no task, timer or poll.
Keys are served first in, first out, so no Run waits behind another's repeated passes.
"""

from __future__ import annotations

import asyncio
from collections import deque


class WorkQueue:
    def __init__(self, spacing: float = 0.0) -> None:
        self.spacing = spacing
        self._ready: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._dirty: set[str] = set()  # queued, or to be queued again once its pass ends
        self._processing: set[str] = set()
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._started: dict[str, float] = {}  # when the key's last pass started (loop time)

    def __len__(self) -> int:
        """Keys waiting for a worker (the queue depth)."""
        return len(self._dirty)

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        loop = asyncio.get_running_loop()
        last = self._started.get(key)
        if last is not None and loop.time() - last < self.spacing:
            self.add_after(key, self.spacing - (loop.time() - last))
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._push(key)

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        held = self._timers.get(key)
        if held is not None:
            if held[0] <= due:
                return
            held[1].cancel()
        self._timers[key] = (due, loop.call_at(due, self._fire, key))

    def forget(self, key: str) -> None:
        """The object is gone: no timer, no memory of it (a pass in flight still ends with done())."""
        held = self._timers.pop(key, None)
        if held is not None:
            held[1].cancel()
        self._started.pop(key, None)
        self._dirty.discard(key)

    def processing(self, key: str) -> bool:
        return key in self._processing

    async def get(self) -> str:
        while True:
            while not self._ready:
                self._wakeup.clear()
                await self._wakeup.wait()
            key = self._ready.popleft()
            # A forgotten key (no longer dirty) or one queued twice (forget, then add again while its
            # entry still waited) is skipped: one worker at a time holds a key, and done() re-queues it.
            if key in self._dirty and key not in self._processing:
                break
        if self._ready:
            self._wakeup.set()  # another worker may take the next key
        self._dirty.discard(key)
        self._processing.add(key)
        self._started[key] = asyncio.get_running_loop().time()
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._push(key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._push(key)

    def _push(self, key: str) -> None:
        self._ready.append(key)
        self._wakeup.set()
