"""Seeded fuzzing of the Run controller with hostile manifests (issue 19.2), without an API server.

Every manifest — including those the API server's schema would refuse — ends the first pass as a
status with a phase, or failed with a message and one Warning Event; never as an exception, and never
as the unexpected-error path (that is for the API server being away, not for a user's spec)."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from oxygen.api.run import Run
from oxygen.controllers.run.guard import DaemonMemory
from tests.support import hostile
from tests.support.recording_kube import RecordingKube
from tests.unit.controllers.run.test_reconcile import StubReader, _controller

FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,  # seeded: the same manifests on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)


def stored(body: dict[str, Any]) -> dict[str, Any]:
    """The manifest as the API server would hand it over."""
    meta = {**body["metadata"], "namespace": "team-a", "uid": "uid-1", "generation": 1}
    return {**body, "metadata": meta}


@FUZZ
@given(hostile.runs)
def test_a_hostile_spec_gets_a_phase_or_fails_with_a_message(body: dict[str, Any]) -> None:
    # The model refuses only with a ValidationError (the guard's input error), never otherwise.
    with contextlib.suppress(ValidationError):
        Run.model_validate(stored(body))
    kube = RecordingKube()
    memory = DaemonMemory()
    controller = _controller(StubReader(), kube)
    controller.guarded(stored(body), [], [], memory)
    assert memory.errors == 0, "an input took the unexpected-error path"
    assert memory.state is not None
    status = memory.state.status
    if status.phase == "failed":
        assert status.message
        failed = [c for c in status.conditions if c.type == "Failed"]
        assert failed and failed[0].status == "True" and failed[0].message == status.message
        assert [c for c in kube.calls if c[0] == "event"] == [("event", failed[0].reason)]
    else:
        assert ("status:runs", body["metadata"]["name"]) in kube.calls or status.phase == "queued"
