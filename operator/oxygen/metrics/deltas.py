"""Positive deltas of the figures an object reports, with the baseline rule that prevents double counts.

Workers and the reconciler record cumulative figures in status (items succeeded, attempts, credits);
the operator turns each change it observes into counter increments. An object seen for the first
time either starts from its current figures (a *baseline*: it existed before this process, whose
predecessor already counted it) or from zero (it was created while this process was watching).
A figure that goes down (items superseded by a retry round) is remembered but never subtracted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from decimal import Decimal


def created_before(created: float | None, watch_start: float) -> bool:
    """True when an object created at `created` predates this process's watch (whole-second stamps).

    An object without a creation time counts as pre-existing: missing a few increments is better
    than counting them twice.
    """
    if created is None:
        return True
    return created < math.floor(watch_start)


class WatchStart:
    """The instant before which an object counts as pre-existing (the baseline rule's reference).

    Fixed when given (tests; a process start). Otherwise it is the time of this process's first
    observation: for a single operator that is its start (plus the seconds kopf takes to list), and
    for a kopf peering standby it is the moment it took over and began watching — objects created
    while it stood by were counted by the active peer, so they too are a baseline, never counted twice.
    """

    def __init__(self, clock: Callable[[], float], fixed: float | None = None) -> None:
        self._clock = clock
        self._at = fixed

    def get(self) -> float:
        if self._at is None:
            self._at = self._clock()
        return self._at


class DeltaTracker:
    """Last seen figures per object key; `update` returns what grew since."""

    def __init__(self) -> None:
        self._last: dict[str, dict[str, Decimal]] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._last

    def __len__(self) -> int:
        return len(self._last)

    def update(self, key: str, figures: Mapping[str, Decimal], baseline: bool) -> dict[str, Decimal]:
        """Store `figures` for `key`; return the positive deltas (nothing on a baseline first sight)."""
        previous = self._last.get(key)
        self._last[key] = dict(figures)
        if previous is None:
            if baseline:
                return {}
            previous = {}
        grown: dict[str, Decimal] = {}
        for name, value in figures.items():
            delta = value - previous.get(name, Decimal(0))
            if delta > 0:
                grown[name] = delta
        return grown

    def forget(self, key: str) -> None:
        self._last.pop(key, None)


def to_decimal(value: object) -> Decimal:
    """Status figures arrive as ints, floats or decimal strings ("0.25"); anything else is 0."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal(0)
    if isinstance(value, str):
        try:
            parsed = Decimal(value)
        except ArithmeticError:
            return Decimal(0)
        return parsed if parsed.is_finite() else Decimal(0)
    return Decimal(0)
