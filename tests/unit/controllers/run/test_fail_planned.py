"""A run that fails after planning is stopped first: its Jobs deleted, its unfinished items failed,
its credits accounted, then the failed phase (one condition, one Event). Before, it only got a status
write: its Jobs kept calling providers with nobody capturing the credits they spent."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.nesting import MAX_INPUT_DEPTH
from oxygen.controllers.run.guard import DaemonMemory
from oxygen.controllers.run.reconcile import ACTIVE_INTERVAL, IDLE_INTERVAL
from oxygen.status.views import shard_view
from tests.support import builders as b
from tests.support.recording_kube import RecordingKube
from tests.unit.controllers.run.test_guard import nested
from tests.unit.controllers.run.test_reconcile import StubReader, _controller, _planned

JOB = "leads-r0-0000"


def _planned_body(**spec: Any) -> dict[str, Any]:
    return b.run_body(status=_planned(), **spec)


@pytest.mark.parametrize("levels", [MAX_INPUT_DEPTH + 1, 900, 5000])
def test_inputs_edited_too_deep_after_planning_do_not_fail_the_run(levels: int) -> None:
    kube = RecordingKube()
    running = b.shard_body(items=["running", ""])
    body = _planned_body(items=[{"inputs": nested(levels)}])
    controller = _controller(StubReader(bodies=[running]), kube)
    memory = DaemonMemory()
    controller.guarded(body, [(1, shard_view(running))], [b.job_view(JOB, active=1)], memory)
    assert ("event", "InputsTooDeep") not in kube.calls
    assert ("delete", JOB) not in kube.calls
    assert memory.state is not None and memory.state.status.phase == "running"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ({"batchSize": "many"}, "InvalidSpec"),
        ({"producer": {**b.ECHO, "costPerItem": "NaN"}}, "InvalidSpec"),
    ],
)
def test_a_planned_run_that_fails_is_stopped_before_it_says_failed(edit: dict[str, Any], reason: str) -> None:
    kube = RecordingKube()
    running = b.shard_body(items=["running", ""])
    reader = StubReader(bodies=[running], jobs_left=[JOB])
    controller = _controller(reader, kube)
    memory = DaemonMemory()
    shards = [(1, shard_view(running))]
    # A good pass: the run runs.
    controller.guarded(_planned_body(), shards, [b.job_view(JOB, active=1)], memory)
    assert memory.state is not None and memory.state.status.phase == "running"
    # The spec is edited into one the models refuse: the Job goes first, the run is not failed yet.
    kube.calls.clear()
    bad = _planned_body(**edit)
    assert controller.guarded(bad, shards, [b.job_view(JOB, active=1)], memory) == ACTIVE_INTERVAL
    assert kube.calls == [("delete", JOB)]
    assert memory.state.status.phase == "running"
    # The API server still has the Job: delete again, settle nothing.
    kube.calls.clear()
    assert controller.guarded(bad, shards, [], memory) == ACTIVE_INTERVAL
    assert kube.calls == [("delete", JOB)]
    # Gone: the unfinished items fail with the message, then the run fails, once.
    reader.left = []
    kube.calls.clear()
    assert controller.guarded(bad, shards, [], memory) == IDLE_INTERVAL
    assert kube.calls == [("status:runshards", JOB), ("status:runs", "leads"), ("event", reason)]
    status = memory.state.status
    assert status.phase == "failed"
    settled = kube.shards[JOB]["status"]["items"]
    assert [i["status"] for i in settled] == ["failed", "failed"]
    assert all(i["error"] == status.message for i in settled)
    kube.calls.clear()
    assert controller.guarded(bad, shards, [], memory) == IDLE_INTERVAL
    assert kube.calls == []


def test_an_object_refused_after_planning_stops_the_run_even_after_a_restart() -> None:
    kube = RecordingKube(refuse="job")
    pending = b.shard_body(items=["", ""])
    reader = StubReader(bodies=[pending])
    controller = _controller(reader, kube)
    memory = DaemonMemory()  # a new daemon: no pass of it saw this body before
    body = _planned_body()
    assert controller.guarded(body, [(1, shard_view(pending))], [], memory) == IDLE_INTERVAL
    stop = [("status:runshards", JOB), ("status:runs", "leads"), ("event", "ObjectRefused")]
    assert kube.calls[-3:] == stop
    assert memory.state is not None and memory.state.status.phase == "failed"
    assert [i["status"] for i in kube.shards[JOB]["status"]["items"]] == ["failed", "failed"]
