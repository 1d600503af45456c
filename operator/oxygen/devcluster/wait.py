"""Polling with a deadline and a message that says what was last seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    pass


def wait_for(
    probe: Callable[[], T | Literal[False] | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
    describe: Callable[[], str] | None = None,
) -> T:
    """Call `probe` until it returns something truthy; return it.

    On timeout, raise with `what` and `describe()` (the state worth seeing when it fails).
    Exceptions from `probe` are retried and the last one is reported.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
            last_error = None
        except Exception as err:  # a probe may race object creation; keep the last error
            last_error = err
        if time.monotonic() >= deadline:
            detail = describe() if describe else ""
            error = f"; last error: {last_error!r}" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}{error}\n{detail}".rstrip())
        time.sleep(interval)
