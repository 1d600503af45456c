"""handlers._Run: a finished Run is kept packed between events and rebuilt like after a restart;
handlers.pass_ended: a bounded wait for a pass in flight."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc

import pytest

from oxygen.api.run import RunStatus
from oxygen.controllers.run import handlers
from oxygen.controllers.run.types import RunState
from tests.support import builders as b


def _finished_body() -> dict[str, object]:
    body = b.run_body()
    body["status"] = RunStatus(phase="succeeded", items_total=3, items_succeeded=3).model_dump(
        by_alias=True, mode="json", exclude_none=True
    )
    return body


def test_a_packed_run_keeps_its_body_and_forgets_its_memory() -> None:
    body = _finished_body()
    run = handlers._Run("ns", body)
    run.memory.state = RunState.from_body(body)
    run.memory.last_good = dict(body)
    assert handlers._finished(run) and not run.packed
    run.pack()
    assert run.packed and run.memory.state is None and run.memory.last_good is None
    assert handlers._finished(run)  # still finished: nothing queues it but its own events
    assert run.body == body  # the next pass reads the same body, and rebuilds the state from it
    assert not run.packed


def test_a_new_body_replaces_a_packed_one() -> None:
    run = handlers._Run("ns", _finished_body())
    run.pack()
    newer = _finished_body()
    newer["spec"]["retryFailed"] = 1  # type: ignore[index]
    run.body = newer
    assert not run.packed and run.body is newer


def test_packed_is_a_fraction_of_unpacked() -> None:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        runs = [handlers._Run("ns", _finished_body()) for _ in range(200)]
        for run in runs:
            run.memory.state = RunState.from_body(run.body)
        unpacked = tracemalloc.get_traced_memory()[0] - before
        for run in runs:
            run.pack()
        packed = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert packed < unpacked / 3, (packed, unpacked)
    assert sys.getsizeof(runs[0]._packed) < 2_000


def test_waiting_for_a_pass_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    class Busy:
        def processing(self, uid: str) -> bool:
            return uid == "stuck"

    class Controller:
        queue = Busy()

    monkeypatch.setattr(handlers, "_controller", Controller())
    assert asyncio.run(handlers.pass_ended("free", timeout=0.3))
    assert not asyncio.run(handlers.pass_ended("stuck", timeout=0.3))
