"""guard.py through RunController.guarded: whatever a Run holds ends as a phase or a condition.

An input error fails the run once (a status write and one Warning Event, then nothing); any other
error backs off (2 s, 4 s, … at most 60 s) and says `Stalled` on the run once per distinct message."""

from __future__ import annotations

from typing import Any

import pytest

from oxygen.api.nesting import MAX_INPUT_DEPTH
from oxygen.controllers.run import guard
from oxygen.controllers.run.guard import DaemonMemory
from oxygen.controllers.run.reconcile import IDLE_INTERVAL
from tests.support import builders as b
from tests.support.recording_kube import RecordingKube
from tests.unit.controllers.run.test_reconcile import StubReader, _controller


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def _run_once(body: dict[str, Any], kube: RecordingKube, memory: DaemonMemory | None = None) -> float:
    controller = _controller(StubReader(), kube)
    return controller.guarded(body, [], [], memory or DaemonMemory())


def _written(kube: RecordingKube) -> list[tuple[str, str]]:
    return [c for c in kube.calls if c[0] in ("status:runs", "event")]


@pytest.mark.parametrize("levels", [MAX_INPUT_DEPTH + 1, 900, 5000])
def test_deep_inputs_fail_the_run_once_naming_the_path(levels: int) -> None:
    kube = RecordingKube()
    body = b.run_body(items=[{"inputs": {"ok": 1}}, {"inputs": nested(levels)}])
    memory = DaemonMemory()
    controller = _controller(StubReader(), kube)
    assert controller.guarded(body, [], [], memory) == IDLE_INTERVAL
    assert kube.calls == [("status:runs", "leads"), ("event", "InputsTooDeep")]
    assert memory.state is not None and memory.state.status.phase == "failed"
    assert memory.state.status.message is not None
    assert memory.state.status.message.startswith("spec.items[1].inputs nests deeper than 32 levels")
    failed = {c.type: c for c in memory.state.status.conditions}
    assert failed["Failed"].status == "True" and failed["Failed"].reason == "InputsTooDeep"
    kube.calls.clear()
    assert controller.guarded(body, [], [], memory) == IDLE_INTERVAL
    assert kube.calls == []  # once, not in a loop


def test_inputs_at_the_depth_bound_run() -> None:
    kube = RecordingKube()
    _run_once(b.run_body(items=[{"inputs": nested(MAX_INPUT_DEPTH)}]), kube)
    assert ("event", "InputsTooDeep") not in kube.calls
    assert ("create", "leads-r0-0000") in kube.calls


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        ({"producer": {**b.ECHO, "costPerItem": "NaN"}}, "spec.producer.costPerItem"),
        ({"producer": {**b.ECHO, "costPerItem": "-1"}}, "spec.producer.costPerItem"),
        ({"producer": {**b.ECHO, "costPerItem": "1e999"}}, "spec.producer.costPerItem"),
        ({"batchSize": "many"}, "spec.batchSize"),
        ({"items": [{"inputs": None, "rowId": 7}]}, "spec.items.0"),
        ({"producer": {"provider": "p", "http": {"url": "http://127.0.0.1:99999/x"}}}, "port"),
    ],
)
def test_a_spec_the_models_refuse_fails_with_the_field(spec: dict[str, Any], text: str) -> None:
    kube = RecordingKube()
    memory = DaemonMemory()
    controller = _controller(StubReader(), kube)
    assert controller.guarded(b.run_body(**spec), [], [], memory) == IDLE_INTERVAL
    assert _written(kube) == [("status:runs", "leads"), ("event", "InvalidSpec")]
    assert memory.state is not None and text in (memory.state.status.message or "")
    assert memory.errors == 0


def test_an_object_the_api_server_refuses_fails_the_run_naming_it() -> None:
    kube = RecordingKube(refuse="create")
    memory = DaemonMemory()
    controller = _controller(StubReader(), kube)
    assert controller.guarded(b.run_body(), [], [], memory) == IDLE_INTERVAL
    assert _written(kube)[-2:] == [("status:runs", "leads"), ("event", "ObjectRefused")]
    assert kube.messages[-1] == (
        "the API server refused RunShard 'leads-r0-0000': leads-r0-0000 is invalid: metadata.labels"
    )
    kube.calls.clear()
    assert controller.guarded(b.run_body(), [], [], memory) == IDLE_INTERVAL
    assert kube.calls == []


def test_an_unexpected_error_backs_off_and_says_stalled_once() -> None:
    kube = RecordingKube(fail="create")
    memory = DaemonMemory()
    controller = _controller(StubReader(), kube)
    body = b.run_body()
    first = controller.guarded(body, [], [], memory)
    assert first == guard.FIRST_BACKOFF
    stalled = [c for c in memory.state.status.conditions if c.type == "Stalled"] if memory.state else []
    assert stalled and stalled[0].status == "True" and stalled[0].reason == "ReconcileError"
    assert "RuntimeError: create refused" in stalled[0].message
    assert ("event", "InvalidSpec") not in kube.calls
    # Woken early (the Stalled write changed the Run): no pass until the backoff is over.
    calls = len(kube.calls)
    assert 0 < controller.guarded(body, [], [], memory) <= first
    assert len(kube.calls) == calls
    # The next failures wait longer; the same message is not written again.
    memory.retry_at = 0
    assert controller.guarded(body, [], [], memory) == 2 * guard.FIRST_BACKOFF
    assert [c for c in kube.calls[calls:] if c[0] == "status:runs"] == []
    memory.errors = 20
    memory.retry_at = 0
    assert controller.guarded(body, [], [], memory) == guard.MAX_BACKOFF


def test_a_status_that_cannot_be_read_starts_empty() -> None:
    body = b.run_body(status={"phase": "nonsense", "creditsUsed": "NaN"})
    assert guard.state_of(body).status.phase == "queued"


@pytest.mark.parametrize(
    ("body", "gone"),
    [
        (
            '{"kind":"Status","reason":"NotFound","details":{"name":"leads","group":"oxygen.dev","kind":"runs"}}',
            True,
        ),
        (
            '{"kind":"Status","reason":"NotFound","details":{"name":"leads-r0-0000","kind":"runshards"}}',
            False,
        ),
        ('{"kind":"Status","reason":"NotFound","details":{"name":"other","kind":"runs"}}', False),
        ("not json", False),
    ],
)
def test_only_a_404_about_this_run_means_it_is_gone(body: str, gone: bool) -> None:
    from oxygen.kube.client import ApiException

    err = ApiException(status=404, reason="Not Found")
    err.body = body
    assert guard.run_gone(err, "leads") is gone
    assert not guard.run_gone(RuntimeError("x"), "leads")
