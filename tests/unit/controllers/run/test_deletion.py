"""A metered Run deleted mid-flight is stopped like a cancel, then marked Settled, and only then
folded into its account: calls its workers make after its last status write are not lost."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.common import Condition
from oxygen.api.run import RunStatus
from oxygen.controllers.run import deletion
from oxygen.controllers.run.guard import DaemonMemory
from oxygen.controllers.run.reconcile import ACTIVE_INTERVAL
from oxygen.credits import ledger
from oxygen.credits.gate import share_of
from oxygen.status.views import shard_view
from tests.support import builders as b
from tests.support.recording_kube import RecordingKube
from tests.unit.controllers.run.test_reconcile import StubReader, _controller, _planned

JOB = "leads-r0-0000"
GONE = "2026-01-01T00:00:09Z"
SETTLED = Condition(
    type="Settled", status="True", reason="RunDeleted", message="m", last_transition_time=b.NOW
)


def _deleting(status: RunStatus, finalizer: bool = True, deleted: bool = True) -> dict[str, Any]:
    body = b.run_body(status=status)
    if deleted:
        body["metadata"]["deletionTimestamp"] = GONE
    body["metadata"]["finalizers"] = [ledger.RETIRE_FINALIZER] if finalizer else []
    return body


@pytest.mark.parametrize(
    ("name", "body", "stop", "final"),
    [
        ("running, deleted, held for the account", _deleting(_planned("running")), True, False),
        ("paused (suspended Jobs) is stopped too", _deleting(_planned("paused")), True, False),
        ("queued with a round planned", _deleting(_planned("queued")), True, False),
        ("not being deleted", _deleting(_planned("running"), deleted=False), False, False),
        ("no credits finalizer", _deleting(_planned("running"), finalizer=False), False, False),
        ("never planned: no Job ever ran", _deleting(RunStatus(phase="queued")), False, True),
        ("already finished", _deleting(_planned("succeeded")), False, True),
        ("failed", _deleting(_planned("failed")), False, True),
        ("already settled", _deleting(_planned("canceled", conditions=[SETTLED])), False, True),
        ("settled, phase not yet written", _deleting(_planned("running", conditions=[SETTLED])), False, True),
    ],
)
def test_which_deleted_runs_are_stopped_and_which_the_account_may_fold(
    name: str, body: dict[str, Any], stop: bool, final: bool
) -> None:
    assert deletion.must_stop(body) is stop
    # The account folds a deleted run only once its figures are final (creditaccount/retire.py).
    assert share_of(body).settled is final


def test_a_run_deleted_mid_flight_is_canceled_then_settled_before_the_account_folds_it() -> None:
    kube = RecordingKube()
    running = b.shard_body(items=["running", ""])
    body = _deleting(_planned("running"))
    assert not share_of(body).settled
    reader = StubReader(bodies=[running], jobs_left=[JOB])
    controller = _controller(reader, kube)
    memory = DaemonMemory()
    shards = [(1, shard_view(running))]
    # Its Job is deleted; the run is not settled while the API server still has it.
    assert deletion.stop(controller, body, shards, [b.job_view(JOB, active=1)], memory) == ACTIVE_INTERVAL
    assert kube.calls[0] == ("delete", JOB)
    assert deletion.stop(controller, body, shards, [], memory) == ACTIVE_INTERVAL
    assert ("status:runshards", JOB) not in kube.calls
    # Gone: the items settled, the credits final (canceled), then the Settled mark.
    reader.left = []
    kube.calls.clear()
    assert deletion.stop(controller, body, shards, [], memory) is not None
    assert kube.calls == [("status:runshards", JOB), ("status:runs", "leads"), ("event", "Canceled")]
    kube.calls.clear()
    assert deletion.stop(controller, body, shards, [], memory) is None
    assert kube.calls == [("status:runs", "leads"), ("event", "Settled")]
    assert memory.state is not None and deletion.marked(memory.state.status)
    written = {**body, "status": memory.state.status.wire()}
    assert share_of(written).settled and not deletion.must_stop(written)
    kube.calls.clear()
    assert deletion.stop(controller, body, shards, [], memory) is None
    assert kube.calls == []
