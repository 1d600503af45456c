"""Uids of objects this process stopped tracking, so a late event does not count them again."""

from __future__ import annotations

from collections.abc import Callable


class Tombstones:
    def __init__(self, clock: Callable[[], float], ttl_seconds: float = 3600.0) -> None:
        self._clock = clock
        self._ttl = ttl_seconds
        self._since: dict[str, float] = {}

    def add(self, uid: str) -> None:
        self._since[uid] = self._clock()
        self._purge()

    def __contains__(self, uid: object) -> bool:
        self._purge()
        return uid in self._since

    def __len__(self) -> int:
        return len(self._since)

    def _purge(self) -> None:
        cutoff = self._clock() - self._ttl
        for uid in [u for u, t in self._since.items() if t < cutoff]:
            del self._since[uid]
